"""LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, "Gradient-based learning applied
to document recognition"), in its original and its modern form.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from cnn_jax import layers
from cnn_jax.models.common import activation, check_image_batch, dense_head, downsample

# The paper's input field; smaller images (28x28 MNIST) are zero-padded up to it.
_FIELD = 32


class LeNet5(nn.Module):
  """C1 6@5x5 -> S2 -> C3 16@5x5 -> S4 -> C5 120@5x5 -> F6 84 -> output.

  Layer names follow the paper (``c1``, ``s2``, ``c3``, ``s4``, ``c5``, ``f6``,
  ``output``). On a 32x32 input the maps are 28, 14, 10, 5 and 1 pixels wide; on
  28x28 the default ``c1_padding`` pads 2 pixels per side first, so both give the same
  network. The two forms:

  * original (the defaults): ``activation='tanh'``, ``pool='avg'`` (use
    ``'lecun_tanh'`` for the paper's scaled ``1.7159 tanh(2a/3)``);
  * modern: ``activation='relu'``, ``pool='max'``.

  Parameters: 61,706 in both forms (C1 156, C3 2,416, C5 48,120, F6 10,164, output
  850), the count usually quoted for LeNet-5. The paper's own total is 60,840: its
  C3 connects each map to only some S2 maps (1,516 parameters), its subsampling layers
  have a trainable coefficient and bias per map (12 + 32), and its output is 84x10
  Euclidean RBF units without bias (840). None of those are modelled here.

  Attributes:
    num_classes: size of the output layer.
    features: channels of C1, C3 and C5.
    kernel_size: the convolutions' kernel size.
    hidden: widths of the dense layers after C5 (F6).
    c1_padding: C1's padding; None pads inputs smaller than 32x32 up to 32x32
      (2 pixels per side on 28x28) and leaves larger ones unpadded.
    stem_stride: C1's stride.
    c3_stride: C3's stride. With ``stem_stride=2``, ``c3_stride=2`` and ``pool='none'``
      the strided convolutions replace S2 and S4 at their map sizes (14 and 5 pixels).
    pool: the subsampling layers S2 and S4: ``'avg'``, ``'max'``, ``'conv'`` (a
      learned strided conv) or ``'none'``.
    pool_window: S2 and S4 window and stride.
    activation: ``'tanh'``, ``'lecun_tanh'``, ``'relu'``, ``'gelu'`` or ``'elu'``.
    dropout_rate: dropout after each dense hidden layer (the paper has none).
    dtype: computation dtype (None: float32 from the parameters).
  """
  num_classes: int = 10
  features: Sequence[int] = (6, 16, 120)
  kernel_size: int = 5
  hidden: Sequence[int] = (84,)
  c1_padding: Any = None
  stem_stride: int = 1
  c3_stride: int = 1
  pool: str = 'avg'
  pool_window: int = 2
  activation: str = 'tanh'
  dropout_rate: float = 0.0
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: ``(N, H, W, C)`` batch.
      train: enables dropout (needs a ``'dropout'`` rng).

    Returns:
      Logits ``(N, num_classes)`` in float32.
    """
    check_image_batch('LeNet5', x)
    if len(self.features) != 3:
      raise ValueError(f'features={self.features!r} must give the channels of C1, C3 and '
                       f'C5 (3 values)')
    act = activation(self.activation)
    c1_padding = self.c1_padding
    if c1_padding is None:
      short = [max(_FIELD - n, 0) for n in x.shape[1:3]]
      c1_padding = tuple((d // 2, d - d // 2) for d in short)
    k = (self.kernel_size,) * 2
    c1, c3, c5 = self.features
    x = act(layers.Conv(c1, k, strides=self.stem_stride, padding=c1_padding, dtype=self.dtype,
                        name='c1')(x))
    x = downsample(x, self.pool, self.pool_window, self.pool_window, 'VALID', act=act,
                   dtype=self.dtype, name='s2')
    x = act(layers.Conv(c3, k, strides=self.c3_stride, padding='VALID', dtype=self.dtype,
                        name='c3')(x))
    x = downsample(x, self.pool, self.pool_window, self.pool_window, 'VALID', act=act,
                   dtype=self.dtype, name='s4')
    x = act(layers.Conv(c5, k, padding='VALID', dtype=self.dtype, name='c5')(x))
    return dense_head(x, self.hidden, self.num_classes, act=act, dropout_rate=self.dropout_rate,
                      train=train, dtype=self.dtype,
                      names=lambda i: (f'f{6 + i}', f'dropout{6 + i}'), head='output')
