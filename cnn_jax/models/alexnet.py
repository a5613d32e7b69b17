"""AlexNet (Krizhevsky, Sutskever and Hinton 2012, "ImageNet classification with deep
convolutional neural networks") and a variant for 32x32 inputs.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn

from cnn_jax import layers
from cnn_jax.models.common import (activation, check_image_batch, dense_head, downsample,
                                   per_block)


class AlexNet(nn.Module):
  """Five convolutions, overlapping max pooling, three dense layers with dropout.

  conv1 (stride-4 11x11 stem) -> pool1 -> conv2 (5x5) -> pool2 -> conv3, conv4, conv5
  (3x3) -> pool5 -> fc6 -> fc7 -> head; ReLU after every conv and hidden dense layer,
  dropout after fc6 and fc7 as in the paper, pools 3x3 with stride 2 ("overlapping
  pooling"). conv2-conv5 are padded to keep their size (``k // 2``). The paper's local
  response normalisation after conv1 and conv2 is left out, as in torchvision.

  Variants and their parameter counts at 224x224x3 with 1000 classes:

  * the defaults: torchvision's ``alexnet`` (the single-GPU channel widths 64, 192,
    384, 256, 256 of Krizhevsky's 2014 "One weird trick" paper), 61,100,840;
  * the 2012 paper: ``features=(96, 256, 384, 384, 256), groups=(1, 2, 1, 2, 2)``
    (conv2, conv4 and conv5 only saw the maps on their own GPU), 60,965,224, the
    count of Caffe's ``bvlc_alexnet``. The paper's 224x224 crops give the 55x55 maps
    it reports only with ``stem_padding=2`` (or unpadded 227x227 inputs).

  Spatial sizes at 224: 55, 27, 27, 13, 13, 13, 13, 6, so fc6 sees 6 * 6 * C5 inputs.
  An input too small for the strides (28x28 fails at ``pool2``) raises a ValueError
  naming the layer; :data:`AlexNetSmall` is the variant for 32x32 images.

  Attributes:
    num_classes: size of the output layer.
    features: output channels of the convolutions (pools follow the first two and the
      last).
    kernel_size: kernel size of each conv, or one for all.
    groups: feature groups of each conv, or one for all.
    stem_stride: conv1's stride.
    stem_padding: conv1's padding.
    pool: ``'max'``, ``'avg'``, ``'conv'`` (a learned strided conv) or ``'none'``.
    pool_window: pooling window (3: overlapping, 2 with stride 2: the paper's
      non-overlapping ablation).
    pool_stride: pooling stride.
    hidden: widths of the hidden dense layers (fc6, fc7).
    dropout_rate: dropout after each hidden dense layer.
    activation: ``'relu'``, ``'tanh'``, ``'lecun_tanh'``, ``'gelu'`` or ``'elu'``.
    dtype: computation dtype (None: float32 from the parameters).
  """
  num_classes: int = 1000
  features: Sequence[int] = (64, 192, 384, 256, 256)
  kernel_size: Any = (11, 5, 3, 3, 3)
  groups: Any = 1
  stem_stride: int = 4
  stem_padding: Any = 2
  pool: str = 'max'
  pool_window: int = 3
  pool_stride: int = 2
  hidden: Sequence[int] = (4096, 4096)
  dropout_rate: float = 0.5
  activation: str = 'relu'
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
    check_image_batch('AlexNet', x)
    n = len(self.features)
    if n < 3:
      raise ValueError(f'features={self.features!r} needs at least 3 convolutions (pools '
                       f'follow the first two and the last)')
    act = activation(self.activation)
    kernels = per_block(self.kernel_size, n, 'kernel_size')
    groups = per_block(self.groups, n, 'groups')
    for i, (feat, k, g) in enumerate(zip(self.features, kernels, groups)):
      stride, padding = (self.stem_stride, self.stem_padding) if i == 0 else (1, k // 2)
      x = act(layers.Conv(feat, (k, k), strides=stride, padding=padding, groups=g,
                          dtype=self.dtype, name=f'conv{i + 1}')(x))
      if i in (0, 1, n - 1):
        x = downsample(x, self.pool, self.pool_window, self.pool_stride, 'VALID', act=act,
                       dtype=self.dtype, name=f'pool{i + 1}')
    return dense_head(x, self.hidden, self.num_classes, act=act, dropout_rate=self.dropout_rate,
                      train=train, dtype=self.dtype,
                      names=lambda i: (f'fc{n + 1 + i}', f'dropout{n + 1 + i}'))


# 32x32 inputs (CIFAR): a 5x5 stride-1 stem instead of the 11x11 stride-4 one, and
# 1024-unit dense layers. Spatial sizes 32, 15, 15, 7, 7, 7, 7, 3; 5,871,434 parameters
# on 32x32x3 with 10 classes (conv 4,864 + 307,392 + 663,936 + 884,992 + 590,080,
# dense 2,360,320 + 1,049,600 + 10,250). Also fits 28x28 (final maps 2x2).
AlexNetSmall = functools.partial(AlexNet, num_classes=10, kernel_size=(5, 5, 3, 3, 3),
                                 stem_stride=1, stem_padding=2, hidden=(1024, 1024))
