"""GoogLeNet, Inception v1 (Szegedy et al. 2014, "Going deeper with convolutions")."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax import layers
from cnn_jax.models.common import check_image_batch, conv_bn, downsample

# Table 1 of the paper: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
INCEPTION = {
    '3a': (64, 96, 128, 16, 32, 32),
    '3b': (128, 128, 192, 32, 96, 64),
    '4a': (192, 96, 208, 16, 48, 64),
    '4b': (160, 112, 224, 24, 64, 64),
    '4c': (128, 128, 256, 24, 64, 64),
    '4d': (112, 144, 288, 32, 64, 64),
    '4e': (256, 160, 320, 32, 128, 128),
    '5a': (256, 160, 320, 32, 128, 128),
    '5b': (384, 192, 384, 48, 128, 128),
}
# Stage-boundary pools come after these blocks; auxiliary heads read these blocks.
_POOL_AFTER = ('3b', '4e')
_AUX_AFTER = {'4a': 'aux1', '4d': 'aux2'}


def _scaled(channels: int, width: float) -> int:
  return max(1, round(channels * width))


class Inception(nn.Module):
  """Four parallel branches concatenated on channels.

  The branches: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool (stride 1) -> 1x1. Every
  conv is followed by ReLU (and BatchNorm before it with ``batch_norm``).

  Attributes:
    channels: the six numbers of the paper's Table 1 row.
    branch3_kernel: kernel of the third branch (5 in the paper, 3 in torchvision).
    batch_norm: BatchNorm after every conv (torchvision's variant).
    bn_momentum: BatchNorm running-average decay.
    bn_epsilon: BatchNorm epsilon.
    dtype: computation dtype.
  """
  channels: tuple[int, int, int, int, int, int]
  branch3_kernel: int = 5
  batch_norm: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    n1, n3r, n3, n5r, n5, npool = self.channels
    conv = dict(train=train, batch_norm=self.batch_norm, bn_momentum=self.bn_momentum,
                bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    b1 = conv_bn(x, n1, 1, name='b1', **conv)
    b2 = conv_bn(conv_bn(x, n3r, 1, name='b2_reduce', **conv), n3, 3, name='b2', **conv)
    b3 = conv_bn(conv_bn(x, n5r, 1, name='b3_reduce', **conv), n5, self.branch3_kernel,
                 name='b3', **conv)
    b4 = layers.MaxPool((3, 3), strides=(1, 1), padding='SAME', name='b4_pool')(x)
    b4 = conv_bn(b4, npool, 1, name='b4', **conv)
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class InceptionAux(nn.Module):
  """Auxiliary classifier: 5x5/3 average pool, 1x1 conv, dense + dropout, dense.

  Attributes:
    num_classes: output size.
    features: channels of the 1x1 conv (128 in the paper).
    hidden: width of the hidden dense layer (1024 in the paper).
    dropout_rate: dropout after the hidden layer (0.7 in the paper).
    batch_norm: BatchNorm after the conv.
    bn_momentum: BatchNorm running-average decay.
    bn_epsilon: BatchNorm epsilon.
    dtype: computation dtype.
  """
  num_classes: int
  features: int = 128
  hidden: int = 1024
  dropout_rate: float = 0.7
  batch_norm: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    # 14x14 -> 4x4 at 224 input: fc1 sees 4 * 4 * 128 = 2048 features.
    x = layers.AvgPool((5, 5), strides=(3, 3), name='pool')(x)
    x = conv_bn(x, self.features, 1, train=train, batch_norm=self.batch_norm,
                bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon, dtype=self.dtype,
                name='conv')
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(layers.Dense(self.hidden, dtype=self.dtype, name='fc1')(x))
    x = layers.Dropout(self.dropout_rate, name='dropout')(x, deterministic=not train)
    return layers.Dense(self.num_classes, dtype=self.dtype, name='fc2')(x)


class GoogLeNet(nn.Module):
  """Inception v1: stem, inception blocks 3a-5b, global average pool, dropout, dense.

  Stem: conv1 7x7/2 -> pool1 3x3/2 -> conv2 1x1 -> conv3 3x3 -> pool2 3x3/2. Every
  conv has ReLU. Then inception 3a, 3b -> pool3 -> 4a-4e -> pool4 -> 5a, 5b. Pools are
  3x3 with stride 2 and ``'SAME'`` padding (at 224 the sizes of torchvision's
  ``ceil_mode`` pools): 224 -> 112, 56, 28, 14, 7. The paper's local response
  normalisation is left out, as in torchvision.

  The auxiliary heads (``aux_logits=True``) exist only for training: they are built
  at ``init`` and computed only when ``train=True``, when their logits are sown into
  the ``'intermediates'`` collection as ``'aux1_logits'`` and ``'aux2_logits'``
  (``apply(..., train=True, mutable=['intermediates'])``); the paper adds them to
  the loss with weight 0.3. ``__call__`` returns the main logits only. They need 4a's
  map to be at least 5x5 (inputs of 65x65 and up).

  Variants and their parameter counts at 224x224x3 with 1000 classes:

  * the defaults (the paper: conv biases, no BatchNorm, 5x5 third branch): 6,998,552
    without the auxiliary heads, 13,378,280 with them (heads 3,188,840 + 3,190,888);
  * torchvision's ``googlenet`` (``batch_norm=True, branch3_kernel=3``: BatchNorm with
    epsilon 1e-3 after every bias-free conv, and the 3x3 third branch torchvision
    keeps for weight compatibility, pytorch/vision#906): 6,624,904 without the
    auxiliary heads (its pretrained model), 13,004,888 with them (torchvision's
    default ``aux_logits=True``). torchvision's classifier dropout is 0.2; set
    ``dropout_rate=0.2`` to match it too (dropout has no parameters).

  Attributes:
    num_classes: size of the output layer.
    width: multiplier on every conv's channels (1.0: the paper's widths).
    stem_stride: conv1's stride.
    pool: the four stride-2 pools (pool1-pool4): ``'max'``, ``'avg'``, ``'conv'`` (a
      learned strided conv) or ``'none'``.
    pool_stride: their stride.
    branch3_kernel: kernel of each inception block's third branch (5 or 3).
    batch_norm: BatchNorm after every conv, whose bias it replaces.
    bn_momentum: BatchNorm running-average decay.
    bn_epsilon: BatchNorm epsilon.
    dropout_rate: dropout before the classifier (0.4 in the paper).
    aux_logits: build the two auxiliary classifiers.
    aux_dropout_rate: dropout in the auxiliary classifiers (0.7 in the paper).
    dtype: computation dtype (None: float32 from the parameters).
  """
  num_classes: int = 1000
  width: float = 1.0
  stem_stride: int = 2
  pool: str = 'max'
  pool_stride: int = 2
  branch3_kernel: int = 5
  batch_norm: bool = False
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-3
  dropout_rate: float = 0.4
  aux_logits: bool = False
  aux_dropout_rate: float = 0.7
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: ``(N, H, W, C)`` batch.
      train: enables dropout and the auxiliary heads, and makes BatchNorm use (and
        update) batch statistics.

    Returns:
      Logits ``(N, num_classes)`` in float32.
    """
    check_image_batch('GoogLeNet', x)
    bn = dict(batch_norm=self.batch_norm, bn_momentum=self.bn_momentum,
              bn_epsilon=self.bn_epsilon, dtype=self.dtype)
    conv = dict(train=train, **bn)
    pool = dict(pool=self.pool, window=3, stride=self.pool_stride, padding='SAME',
                act=nn.relu, dtype=self.dtype)
    w = self.width
    x = conv_bn(x, _scaled(64, w), 7, strides=self.stem_stride, name='conv1', **conv)
    x = downsample(x, name='pool1', **pool)
    x = conv_bn(x, _scaled(64, w), 1, name='conv2', **conv)
    x = conv_bn(x, _scaled(192, w), 3, name='conv3', **conv)
    x = downsample(x, name='pool2', **pool)
    # Built at init whatever `train` is, so a model initialised for evaluation can
    # still be trained with its auxiliary heads.
    run_aux = self.aux_logits and (train or self.is_initializing())
    for block, channels in INCEPTION.items():
      x = Inception(tuple(_scaled(c, w) for c in channels), self.branch3_kernel,
                    name=f'inception{block}', **bn)(x, train)
      if block in _AUX_AFTER and run_aux:
        aux = InceptionAux(self.num_classes, _scaled(128, w),
                           dropout_rate=self.aux_dropout_rate, name=_AUX_AFTER[block],
                           **bn)(x, train)
        self.sow('intermediates', f'{_AUX_AFTER[block]}_logits', aux.astype(jnp.float32))
      if block in _POOL_AFTER:
        x = downsample(x, name=f'pool{block[0]}', **pool)
    x = layers.GlobalAvgPool(name='avgpool')(x)
    x = layers.Dropout(self.dropout_rate, name='dropout')(x, deterministic=not train)
    x = layers.Dense(self.num_classes, dtype=self.dtype, name='head')(x)
    return x.astype(jnp.float32)
