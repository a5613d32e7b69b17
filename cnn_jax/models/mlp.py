"""The fully connected ("DNN") baseline: flatten -> dense stack -> classes.

The reference point for what convolution buys: it sees the same pixels with no notion
of locality or weight sharing, so it has no strides or pooling to ablate, only widths,
depth and dropout.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.common import activation, per_block


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
    act = activation(self.activation)
    rates = per_block(self.dropout_rate, len(self.hidden), 'dropout_rate',
                      'hidden layers (len(hidden))')
    x = x.reshape(x.shape[0], -1)
    x = layers.Dropout(self.input_dropout_rate, name='input_dropout')(x,
                                                                       deterministic=not train)
    for i, (width, rate) in enumerate(zip(self.hidden, rates)):
      x = act(layers.Dense(width, dtype=self.dtype, name=f'dense{i}')(x))
      x = layers.Dropout(rate, name=f'dropout{i}')(x, deterministic=not train)
    x = layers.Dense(self.num_classes, dtype=self.dtype, name='head')(x)
    return x.astype(jnp.float32)
