"""The fully connected ("DNN") baseline: flatten -> dense stack -> classes.

The reference point for what convolution buys: it sees the same pixels with no notion
of locality or weight sharing, so it has no strides or pooling to ablate, only widths,
depth and dropout.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from cnn_jax import layers
from cnn_jax.models.common import activation, dense_head


class MLP(nn.Module):
  """Flatten, ``len(hidden)`` dense layers with activation and dropout, a dense output.

  Parameters: ``sum((n_in + 1) * n_out)`` over consecutive widths
  ``(H * W * C, *hidden, num_classes)``; with the defaults on 28x28x1 that is
  ``785 * 256 + 257 * 128 + 129 * 10 = 235,146``.

  Attributes:
    num_classes: size of the output layer.
    hidden: widths of the hidden layers (its length is the depth).
    dropout_rate: dropout after each hidden layer, one value or one per layer.
    input_dropout_rate: dropout on the flattened input (Srivastava et al. 2014 used 0.2).
    activation: ``'relu'``, ``'tanh'``, ``'lecun_tanh'``, ``'gelu'`` or ``'elu'``.
    dtype: computation dtype (None: float32 from the parameters).
  """
  num_classes: int = 10
  hidden: Sequence[int] = (256, 128)
  dropout_rate: Any = 0.0
  input_dropout_rate: float = 0.0
  activation: str = 'relu'
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: ``(N, ...)`` batch; everything after the batch axis is flattened.
      train: enables dropout (needs a ``'dropout'`` rng).

    Returns:
      Logits ``(N, num_classes)`` in float32.
    """
    x = x.reshape(x.shape[0], -1)
    x = layers.Dropout(self.input_dropout_rate, name='input_dropout')(x,
                                                                       deterministic=not train)
    return dense_head(x, self.hidden, self.num_classes, act=activation(self.activation),
                      dropout_rate=self.dropout_rate, train=train, dtype=self.dtype)
