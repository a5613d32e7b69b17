"""The simple CNN: conv -> pool -> dropout blocks, then a dense head.

The model most ablations run on, so every per-block setting is a field: a scalar
applies to every block, a sequence gives one value per block.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from cnn_jax import layers
from cnn_jax.models.common import activation, conv_bn, dense_head, downsample, per_block

# The names the ``head`` field takes: what sits between the last conv block and the
# dense layers.
HEADS = ('dense', 'global_avg')


class SimpleCNN(nn.Module):
  """Conv blocks (conv -> [BatchNorm] -> activation -> pool -> dropout), then [a global
  average pool and] dense layers.

  Works on 2-D ``(N, H, W, C)`` and 1-D ``(N, W, C)`` inputs; the kernel and pooling
  windows get the input's spatial rank.

  Attributes:
    num_classes: size of the output layer.
    features: output channels of each conv block (its length is the number of blocks).
    kernel_size: conv kernel size, per block or one for all.
    strides: conv stride, per block or one for all.
    padding: conv padding, per block or one for all.
    batch_norm: BatchNorm between the conv and the activation (the conv then has no
      bias), per block or one for all.
    pool: ``'max'``, ``'avg'``, ``'none'``, or ``'conv'`` (a learned strided conv in the
      pool's place), per block or one for all.
    pool_window: pooling window (and stride), per block or one for all.
    dropout_rate: dropout after each conv block, per block or one for all.
    head: ``'dense'``: the dense layers read the flattened feature maps, one weight
      per position and channel; ``'global_avg'``: they read the mean of each channel
      over all positions (a global average pool), so where a feature lies no longer
      matters and the parameters do not depend on the input size.
    hidden: widths of the dense layers between the features and the output.
    dense_dropout_rate: dropout after each hidden dense layer.
    activation: ``'relu'``, ``'tanh'``, ``'lecun_tanh'``, ``'gelu'`` or ``'elu'``.
    bn_momentum: BatchNorm running-average decay (PyTorch's momentum 0.1 is 0.9 here).
    bn_epsilon: BatchNorm epsilon.
    dtype: computation dtype (None: float32 from the parameters).
  """
  num_classes: int = 10
  features: Sequence[int] = (32, 64)
  kernel_size: Any = 3
  strides: Any = 1
  padding: Any = 'SAME'
  batch_norm: Any = False
  pool: Any = 'max'
  pool_window: Any = 2
  dropout_rate: Any = 0.0
  head: str = 'dense'
  hidden: Sequence[int] = (128,)
  dense_dropout_rate: float = 0.0
  activation: str = 'relu'
  bn_momentum: float = 0.9
  bn_epsilon: float = 1e-5
  dtype: Any = None

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Runs the network.

    Args:
      x: ``(N, H, W, C)`` or ``(N, W, C)`` batch.
      train: enables dropout (needs a ``'dropout'`` rng) and BatchNorm's batch
        statistics (``batch_stats`` must then be mutable).

    Returns:
      Logits ``(N, num_classes)``.
    """
    if x.ndim not in (3, 4):
      raise ValueError(f'SimpleCNN expects a batch (N, H, W, C) or (N, W, C), got shape '
                       f'{x.shape}')
    if self.head not in HEADS:
      raise ValueError(f"head={self.head!r}; use 'dense' (flattened maps) or 'global_avg' "
                       f"(the mean over positions)")
    n = len(self.features)
    act = activation(self.activation)
    blocks = zip(self.features, per_block(self.kernel_size, n, 'kernel_size'),
                 per_block(self.strides, n, 'strides'), per_block(self.padding, n, 'padding'),
                 per_block(self.batch_norm, n, 'batch_norm'),
                 per_block(self.pool, n, 'pool'), per_block(self.pool_window, n, 'pool_window'),
                 per_block(self.dropout_rate, n, 'dropout_rate'))
    for i, (feat, k, s, pad, bn, pool, window, rate) in enumerate(blocks):
      x = conv_bn(x, feat, k, strides=s, padding=pad, train=train, batch_norm=bn, act=act,
                  dtype=self.dtype, bn_momentum=self.bn_momentum,
                  bn_epsilon=self.bn_epsilon, name=f'conv{i}')
      x = downsample(x, pool, window, window, 'VALID', act=act, dtype=self.dtype,
                     name=f'pool{i}')
      x = layers.Dropout(rate, name=f'dropout{i}')(x, deterministic=not train)
    if self.head == 'global_avg':
      x = layers.GlobalAvgPool(spatial_dims=x.ndim - 2, name='global_pool')(x)
    return dense_head(x, self.hidden, self.num_classes, act=act,
                      dropout_rate=self.dense_dropout_rate, train=train, dtype=self.dtype,
                      names=lambda i: (f'dense{i}', f'dense_dropout{i}'))
