"""Flax Linen layers over :mod:`cnn_jax.ops`.

Each layer is a thin shell: it declares parameters (plain pytrees, Flax's usual
``(*kernel_size, C_in // groups, C_out)`` kernel layout) and calls the pure op.
``init``/``apply`` stay pure; dropout randomness comes from the ``'dropout'`` rng
collection. ``Dense`` and ``BatchNorm`` are Flax's own, re-exported so that models
import their building blocks from one place.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax import ops
from cnn_jax.ops.shapes import Padding

Dense = nn.Dense
BatchNorm = nn.BatchNorm

Initializer = Callable[..., Any]


@contextlib.contextmanager
def _named_errors(module: nn.Module):
  """Prefixes a ValueError raised inside ``module`` with its path in the model.

  The ops name the shapes; the path (``'stage2_block0/conv1'``, ``'pool2'``) says
  which layer of a deep model they belong to, e.g. where an input too small for the
  model's strides stops fitting. Unbound and top-level layers have no path to add.
  """
  try:
    yield
  except ValueError as e:
    path = '/'.join(module.path) if module.scope is not None else ''
    if not path:
      raise
    raise ValueError(f'{path}: {e}') from e


class Conv(nn.Module):
  """1-D, 2-D or 3-D convolution (cross-correlation), the rank set by ``kernel_size``.

  Attributes:
    features: number of output channels.
    kernel_size: a tuple: ``(k,)`` for 1-D on ``(N, W, C)``, ``(kh, kw)`` for 2-D on
      ``(N, H, W, C)``. A bare int is rejected because it cannot tell the two apart.
    strides: int or tuple.
    padding: as :func:`cnn_jax.ops.conv`; default ``'SAME'`` as in Flax.
    dilation: int or tuple.
    groups: feature groups (``groups == C_in``: depthwise).
    use_bias: add a learned bias per output channel.
    dtype: computation dtype (e.g. ``jnp.bfloat16``); None keeps the input's.
    param_dtype: parameter dtype.
    precision: passed to the op.
    fast_grad: the op's scan-friendly reverse-mode gradient (see
      :func:`cnn_jax.ops.conv`); False for forward-mode differentiation.
    kernel_init: kernel initialiser (LeCun normal, Flax's default).
    bias_init: bias initialiser.
  """
  features: int
  kernel_size: Sequence[int]
  strides: int | Sequence[int] = 1
  padding: Padding = 'SAME'
  dilation: int | Sequence[int] = 1
  groups: int = 1
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  fast_grad: bool = True
  kernel_init: Initializer = nn.initializers.lecun_normal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    """Applies the convolution.

    Args:
      x: ``(N, *spatial, C_in)`` or unbatched ``(*spatial, C_in)``.

    Returns:
      ``(N, *out_spatial, features)`` (batched like ``x``).
    """
    with _named_errors(self):
      return self._conv(x)

  def _conv(self, x):
    if isinstance(self.kernel_size, int):
      raise TypeError(f'Conv: kernel_size must be a tuple, got the int {self.kernel_size}; '
                      f'write ({self.kernel_size},) for 1-D or '
                      f'({self.kernel_size}, {self.kernel_size}) for 2-D')
    kernel_size = tuple(self.kernel_size)
    c_in = jnp.shape(x)[-1]
    if isinstance(self.groups, int) and self.groups >= 1 and c_in % self.groups:
      raise ValueError(f'Conv: groups={self.groups} must divide the input channels, got '
                       f'x.shape={tuple(jnp.shape(x))}')
    kernel = self.param('kernel', self.kernel_init,
                        kernel_size + (c_in // max(self.groups, 1), self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = ops.conv(x, kernel, stride=self.strides, padding=self.padding,
                 dilation=self.dilation, groups=self.groups, precision=self.precision,
                 fast_grad=self.fast_grad)
    return y + bias if bias is not None else y


class MaxPool(nn.Module):
  """Max pooling layer over :func:`cnn_jax.ops.max_pool`.

  Attributes:
    window: tuple window (its length sets 1-D or 2-D), or an int on an unambiguous input.
    strides: defaults to ``window``.
    padding: ``'VALID'``, ``'SAME'``, int or pairs.
  """
  window: int | Sequence[int]
  strides: int | Sequence[int] | None = None
  padding: Padding = 'VALID'

  def __call__(self, x):
    with _named_errors(self):
      return ops.max_pool(x, self.window, stride=self.strides, padding=self.padding)


class AvgPool(nn.Module):
  """Average pooling layer over :func:`cnn_jax.ops.avg_pool`.

  Attributes:
    window: tuple window (its length sets 1-D or 2-D), or an int on an unambiguous input.
    strides: defaults to ``window``.
    padding: ``'VALID'``, ``'SAME'``, int or pairs.
    count_include_pad: whether padded zeros count in the divisor.
  """
  window: int | Sequence[int]
  strides: int | Sequence[int] | None = None
  padding: Padding = 'VALID'
  count_include_pad: bool = True

  def __call__(self, x):
    with _named_errors(self):
      return ops.avg_pool(x, self.window, stride=self.strides, padding=self.padding,
                          count_include_pad=self.count_include_pad)


class GlobalAvgPool(nn.Module):
  """Mean over all spatial positions: ``(N, *spatial, C) -> (N, C)``.

  Attributes:
    spatial_dims: number of spatial axes (needed for 3-axis inputs).
  """
  spatial_dims: int | None = None

  def __call__(self, x):
    with _named_errors(self):
      return ops.global_avg_pool(x, spatial_dims=self.spatial_dims)


class GlobalMaxPool(nn.Module):
  """Maximum over all spatial positions: ``(N, *spatial, C) -> (N, C)``.

  Attributes:
    spatial_dims: number of spatial axes (needed for 3-axis inputs).
  """
  spatial_dims: int | None = None

  def __call__(self, x):
    with _named_errors(self):
      return ops.global_max_pool(x, spatial_dims=self.spatial_dims)


class Dropout(nn.Module):
  """Inverted dropout over :func:`cnn_jax.ops.dropout`.

  The key comes from the ``'dropout'`` rng collection:
  ``model.apply(v, x, train=True, rngs={'dropout': key})``. ``rate`` may be a traced
  scalar, so a model can be built inside ``jax.vmap`` over dropout rates.

  Attributes:
    rate: drop probability in ``[0, 1)``.
    broadcast_dims: axes sharing one mask (``(1, 2)`` on NHWC: spatial dropout).
    deterministic: default for ``__call__``; exactly one of the two must be set.
  """
  rate: Any
  broadcast_dims: Sequence[int] = ()
  deterministic: bool | None = None

  def __call__(self, x, deterministic: bool | None = None):
    """Applies dropout.

    Args:
      x: input array.
      deterministic: True for evaluation (identity), False for training.

    Returns:
      Array like ``x``.
    """
    deterministic = nn.merge_param('deterministic', self.deterministic, deterministic)
    # Like Flax's Dropout, a concrete zero rate needs no 'dropout' rng.
    inactive = deterministic or (isinstance(self.rate, (int, float)) and self.rate == 0)
    key = None if inactive else self.make_rng('dropout')
    with _named_errors(self):
      return ops.dropout(x, self.rate, key, deterministic=deterministic,
                         broadcast_dims=self.broadcast_dims)
