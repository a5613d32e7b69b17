"""Residual networks (He, Zhang, Ren and Sun 2015, "Deep residual learning for image
recognition"): the ImageNet ResNet-18/34/50/101/152 and the CIFAR ResNet-20 to 110.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.common import check_image_batch, conv_bn, downsample

_EXPANSION = {'basic': 1, 'bottleneck': 4}


class ResidualBlock(nn.Module):
  """A basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block plus its shortcut.

  Attributes:
    features: channels of the block's 3x3 conv; the output has ``features`` (basic)
      or ``4 * features`` (bottleneck) channels.
    strides: the block's stride (on the first 3x3 conv, or on the first 1x1 conv of a
      bottleneck with ``stride_in_1x1``).
    block: ``'basic'`` or ``'bottleneck'``.
    shortcut: when the shape changes, ``'B'`` projects with a 1x1 conv + BatchNorm,
      ``'A'`` subsamples and zero-pads the new channels (no parameters).
    stride_in_1x1: bottleneck only: stride on the first 1x1 conv (the paper's
      ResNet v1) instead of the 3x3 conv (torchvision's "v1.5").
    bn_momentum: BatchNorm running-average decay.
    bn_epsilon: BatchNorm epsilon.
    dtype: computation dtype.
  """
  features: int
  strides: int = 1
  block: str = 'basic'
  shortcut: str = 'B'
  stride_in_1x1: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = dict(train=train, bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                dtype=self.dtype)
    s = self.strides
    if self.block == 'basic':
      y = conv_bn(x, self.features, 3, strides=s, name='conv1', **conv)
      y = conv_bn(y, self.features, 3, act=None, name='conv2', **conv)
    else:
      s1, s3 = (s, 1) if self.stride_in_1x1 else (1, s)
      y = conv_bn(x, self.features, 1, strides=s1, name='conv1', **conv)
      y = conv_bn(y, self.features, 3, strides=s3, name='conv2', **conv)
      y = conv_bn(y, 4 * self.features, 1, act=None, name='conv3', **conv)
    out_features = y.shape[-1]
    if s != 1 or x.shape[-1] != out_features:
      if self.shortcut == 'B':
        x = conv_bn(x, out_features, 1, strides=s, act=None, name='proj', **conv)
      else:
        if s != 1:
          # Option A: a 1x1 window with the block's stride picks every s-th pixel.
          x = layers.MaxPool((1, 1), strides=(s, s), name='subsample')(x)
        x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, out_features - x.shape[-1])))
    return nn.relu(y + x)


class ResNet(nn.Module):
  """Stem, ``len(stage_sizes)`` stages of residual blocks, global average pool, dense.

  Stem: a ``stem_kernel`` conv with ``stem_stride`` (ImageNet: 7x7/2, 64 channels),
  BatchNorm, ReLU, then ``stem_pool`` (ImageNet: 3x3/2 max pool; CIFAR: none). Stage
  ``i`` has ``stage_sizes[i]`` blocks of ``stage_features[i]`` channels; its first block
  has stride ``stage_strides[i]``. Convolutions have no bias (BatchNorm follows every
  one; its scale and offset are the ``params``, its running statistics
  ``batch_stats``). Padding is PyTorch's symmetric ``k // 2``.

  Parameter counts (the ``params`` collection), matching torchvision exactly at
  224x224x3 with 1000 classes: ResNet-18 11,689,512; ResNet-34 21,797,672;
  ResNet-50 25,557,032; ResNet-101 44,549,160; ResNet-152 60,192,808 (the count is the
  same with ``stride_in_1x1`` and does not depend on the input size). The CIFAR
  ResNets (option A, 32x32x3, 10 classes) match the reference implementation
  (akamaster/pytorch_resnet_cifar10) and the paper's Table 6: ResNet-20 269,722
  (0.27M); ResNet-32 464,154 (0.46M); ResNet-44 658,586 (0.66M); ResNet-56 853,018
  (0.85M); ResNet-110 1,727,962 (1.7M). Option B adds the two projections'
  16*32 + 64 + 32*64 + 128 = 2,752.

  Attributes:
    stage_sizes: number of blocks per stage (its length is the number of stages).
    block: ``'basic'`` or ``'bottleneck'``.
    num_classes: size of the output layer.
    stage_features: channels of each stage's 3x3 convs.
    stage_strides: stride of each stage's first block.
    stem_features: channels of the stem conv.
    stem_kernel: kernel size of the stem conv.
    stem_stride: stride of the stem conv.
    stem_pool: ``'max'``, ``'avg'``, ``'conv'`` (a learned strided conv) or ``'none'``,
      a 3x3 window with stride 2 and padding 1.
    shortcut: ``'B'`` (projection where the shape changes) or ``'A'`` (zero padding).
    stride_in_1x1: see :class:`ResidualBlock`.
    dropout_rate: dropout before the classifier (the paper has none).
    bn_momentum: BatchNorm running-average decay (PyTorch's momentum 0.1).
    bn_epsilon: BatchNorm epsilon.
    dtype: computation dtype (None: float32 from the parameters).
  """
  stage_sizes: Sequence[int]
  block: str = 'basic'
  num_classes: int = 1000
  stage_features: Sequence[int] = (64, 128, 256, 512)
  stage_strides: Sequence[int] = (1, 2, 2, 2)
  stem_features: int = 64
  stem_kernel: int = 7
  stem_stride: int = 2
  stem_pool: str = 'max'
  shortcut: str = 'B'
  stride_in_1x1: bool = False
  dropout_rate: float = 0.0
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: ``(N, H, W, C)`` batch.
      train: BatchNorm uses (and updates) batch statistics, dropout is on.

    Returns:
      Logits ``(N, num_classes)`` in float32.
    """
    check_image_batch('ResNet', x)
    if self.block not in _EXPANSION:
      raise ValueError(f"block={self.block!r}; use 'basic' or 'bottleneck'")
    if self.shortcut not in ('A', 'B'):
      raise ValueError(f"shortcut={self.shortcut!r}; use 'A' (zero padding) or 'B' "
                       f"(projection)")
    if not len(self.stage_sizes) == len(self.stage_features) == len(self.stage_strides):
      raise ValueError(f'stage_sizes={self.stage_sizes!r}, stage_features='
                       f'{self.stage_features!r} and stage_strides={self.stage_strides!r} '
                       f'must have one entry per stage')
    bn = dict(bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    x = conv_bn(x, self.stem_features, self.stem_kernel, strides=self.stem_stride,
                train=train, name='stem_conv', **bn)
    x = downsample(x, self.stem_pool, 3, 2, 1, act=nn.relu, dtype=self.dtype,
                   name='stem_pool')
    for i, (size, features, stride) in enumerate(zip(self.stage_sizes, self.stage_features,
                                                     self.stage_strides)):
      for j in range(size):
        x = ResidualBlock(features, stride if j == 0 else 1, self.block, self.shortcut,
                          self.stride_in_1x1, name=f'stage{i + 1}_block{j}', **bn)(x, train)
    x = layers.GlobalAvgPool(name='avgpool')(x)
    x = layers.Dropout(self.dropout_rate, name='dropout')(x, deterministic=not train)
    x = layers.Dense(self.num_classes, dtype=self.dtype, name='head')(x)
    return x.astype(jnp.float32)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block='basic')
ResNet34 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block='basic')
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block='bottleneck')
ResNet101 = functools.partial(ResNet, stage_sizes=(3, 4, 23, 3), block='bottleneck')
ResNet152 = functools.partial(ResNet, stage_sizes=(3, 8, 36, 3), block='bottleneck')

# CIFAR ResNets (paper section 4.2): 6n + 2 layers, three stages of n basic blocks with
# 16, 32, 64 channels, a 3x3 stride-1 stem without pooling, option A shortcuts.
_CIFAR = dict(block='basic', num_classes=10, stage_features=(16, 32, 64),
              stage_strides=(1, 2, 2), stem_features=16, stem_kernel=3, stem_stride=1,
              stem_pool='none', shortcut='A')
ResNet20 = functools.partial(ResNet, stage_sizes=(3, 3, 3), **_CIFAR)
ResNet32 = functools.partial(ResNet, stage_sizes=(5, 5, 5), **_CIFAR)
ResNet44 = functools.partial(ResNet, stage_sizes=(7, 7, 7), **_CIFAR)
ResNet56 = functools.partial(ResNet, stage_sizes=(9, 9, 9), **_CIFAR)
ResNet110 = functools.partial(ResNet, stage_sizes=(18, 18, 18), **_CIFAR)
