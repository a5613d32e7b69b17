"""Pooling as pure functions on channels-last arrays (1-D and 2-D, batched or not).

The spatial rank comes from ``window`` when it is a tuple (``(2,)`` is 1-D, ``(2, 2)``
is 2-D); an int window is used for every spatial dimension of an unambiguous input
(2 axes: unbatched 1-D, 4 axes: batched 2-D).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax.ops import _validate
from cnn_jax.ops.shapes import Padding, check_fits, normalize_tuple, resolve_padding


def _pool_geometry(op: str, x, window, stride, padding, spatial_dims=None):
  """Validates a pooling call; returns (x_batched, unbatched, window, strides, pads)."""
  x = jnp.asarray(x)
  nsp = _validate.spatial_dims_from(op, x.ndim, window, spatial_dims)
  x, unbatched = _validate.add_batch_axis(op, x, nsp)
  given_shape = x.shape[1:] if unbatched else x.shape  # quote the caller's shape in errors
  window = normalize_tuple(window, nsp, 'window')
  strides = window if stride is None else normalize_tuple(stride, nsp, 'stride')
  sizes = x.shape[1:-1]
  pads = resolve_padding(padding, sizes, window, strides)
  for k, (lo, hi) in zip(window, pads):
    if max(lo, hi) >= k:
      raise ValueError(
          f'{op}: padding {(lo, hi)} is not smaller than the window {k}, so some windows '
          f'would hold only padding (padding={padding!r}, window={window}, input shape '
          f'{given_shape}); use padding < window')
  check_fits(op, given_shape, sizes, window, pads, what='window')
  return x, unbatched, window, strides, pads


def _full(x, pads):
  return ((0, 0),) + tuple(pads) + ((0, 0),)


def _lowest(dtype):
  if jnp.issubdtype(dtype, jnp.floating):
    return -jnp.inf
  return jnp.iinfo(dtype).min


def max_pool(x, window, *, stride=None, padding: Padding = 'VALID'):
  """Max pooling: the largest value in each window.

  A 2x2 window with stride 2 keeps one value of every four (25%). Padded positions
  count as -inf (never chosen).

  Non-overlapping windows (``stride == window``, the common case) run on a reshaped
  view with a custom derivative that routes the gradient to the first maximum of
  each window, as PyTorch and XLA's own rule do; this avoids ``select_and_scatter``,
  which dominated a small CNN's CPU step. A window of one element (ResNet's option-A
  shortcut subsamples with a 1x1 window and stride 2) is a strided slice, whose
  gradient is a pad. Overlapping windows use ``lax.reduce_window``.

  Args:
    x: ``(N, W, C)``/``(W, C)`` or ``(N, H, W, C)``/``(H, W, C)``.
    window: int or tuple (its length sets the spatial rank).
    stride: int or tuple, default ``window``.
    padding: ``'VALID'``, ``'SAME'``, an int or per-dimension (lo, hi) pairs; each side
      must be smaller than the window.

  Returns:
    The pooled array, batched like ``x``.

  Raises:
    ValueError: for a wrong rank, window/stride < 1, bad padding or a window larger
      than the padded input.
  """
  x, unbatched, window, strides, pads = _pool_geometry('max_pool', x, window, stride,
                                                       padding)
  if all(k == 1 for k in window):
    # No padding fits a 1-element window, so this is every stride-th element; its
    # gradient is a pad instead of reduce_window's argmax iotas and scatter.
    y = x[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
  elif strides == window and jnp.issubdtype(x.dtype, jnp.floating):
    y = _max_pool_blocks(x, window, pads)
  else:
    # A numpy (not traced) init value lets lax pick reduce_window_max, which has a
    # derivative rule; a traced one falls back to the generic, non-differentiable form.
    y = lax.reduce_window(x, np.array(_lowest(x.dtype), x.dtype), lax.max,
                          (1,) + window + (1,), (1,) + strides + (1,), _full(x, pads))
  return y[0] if unbatched else y


def _to_blocks(x, window, pads, fill):
  """Pads with ``fill``, crops to whole windows, reshapes to (N, o1, k1, o2, k2, ..., C)."""
  x = jnp.pad(x, _full(x, pads), constant_values=fill)
  shape, crop = [x.shape[0]], [slice(None)]
  for n, k in zip(x.shape[1:-1], window):
    shape += [n // k, k]
    crop.append(slice(0, n // k * k))
  crop.append(slice(None))
  return x[tuple(crop)].reshape(shape + [x.shape[-1]])


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _max_pool_blocks(x, window, pads):
  blocks = _to_blocks(x, window, pads, -jnp.inf)
  return jnp.max(blocks, axis=tuple(range(2, 2 * len(window) + 1, 2)))


@_max_pool_blocks.defjvp
def _max_pool_blocks_jvp(window, pads, primals, tangents):
  # The tangent is linear in t (a masked sum), so JAX derives the reverse-mode rule by
  # transposition: the cotangent goes to exactly one element per window.
  (x,), (t,) = primals, tangents
  blocks = _to_blocks(x, window, pads, -jnp.inf)
  axes = tuple(range(2, 2 * len(window) + 1, 2))
  y = jnp.max(blocks, axis=axes, keepdims=True)
  mask = _first_max_mask(blocks, y, axes)
  # Zero fill keeps the tangent map linear (and transposable) in t.
  t_blocks = _to_blocks(t, window, pads, 0)
  t_out = jnp.sum(jnp.where(mask, t_blocks, 0), axis=axes)
  return jnp.squeeze(y, axes), t_out


def _first_max_mask(blocks, y, axes):
  """Boolean mask of the first element (row-major within the window) equal to the max.

  Ties matter on plateaus (zero-padded or ReLU-saturated inputs): marking every tied
  element would multiply the gradient. An exclusive running "already found" flag over
  the window positions keeps only the first.
  """
  hits = blocks == y
  window_shape = [blocks.shape[a] for a in axes]
  taken = jnp.zeros(y.shape, bool)
  pieces = np.empty(window_shape, dtype=object)
  for offsets in np.ndindex(*window_shape):
    index = [slice(None)] * blocks.ndim
    for a, o in zip(axes, offsets):
      index[a] = slice(o, o + 1)
    hit = hits[tuple(index)] & ~taken
    taken = taken | hit
    pieces[offsets] = hit
  return _assemble(pieces, axes)


def _assemble(pieces, axes):
  """Concatenates an N-D grid of blocks back along the given array axes."""
  if len(axes) == 1:
    return jnp.concatenate(list(pieces), axis=axes[0])
  return jnp.concatenate([_assemble(p, axes[1:]) for p in pieces], axis=axes[0])


def avg_pool(x, window, *, stride=None, padding: Padding = 'VALID',
             count_include_pad: bool = True):
  """Average pooling.

  Args:
    x: ``(N, W, C)``/``(W, C)`` or ``(N, H, W, C)``/``(H, W, C)``.
    window: int or tuple (its length sets the spatial rank).
    stride: int or tuple, default ``window``.
    padding: ``'VALID'``, ``'SAME'``, an int or per-dimension (lo, hi) pairs; each side
      must be smaller than the window.
    count_include_pad: if True, padded zeros count in the divisor (every window divides
      by its full size, as PyTorch's default); if False, only real inputs count
      (TensorFlow's ``'SAME'`` average pooling).

  Returns:
    The pooled array, batched like ``x``, in a floating dtype.
  """
  x, unbatched, window, strides, pads = _pool_geometry('avg_pool', x, window, stride,
                                                       padding)
  if not jnp.issubdtype(x.dtype, jnp.inexact):
    x = x.astype(jnp.float32)
  dims, strides_full = (1,) + window + (1,), (1,) + strides + (1,)
  total = lax.reduce_window(x, np.array(0, x.dtype), lax.add, dims, strides_full,
                            _full(x, pads))
  if count_include_pad:
    y = total / np.prod(window)
  else:
    # Counts depend only on static shapes: computed at trace time they become a constant.
    ones = np.ones((1,) + x.shape[1:-1] + (1,), np.float32)
    with jax.ensure_compile_time_eval():
      counts = np.asarray(lax.reduce_window(ones, np.float32(0), lax.add, dims,
                                            strides_full, _full(ones, pads)))
    y = total / counts.astype(x.dtype)
  return y[0] if unbatched else y


def _global(op: str, reducer, x, spatial_dims, keepdims):
  x = jnp.asarray(x)
  nsp = _validate.spatial_dims_from(op, x.ndim, None, spatial_dims)
  x, unbatched = _validate.add_batch_axis(op, x, nsp)
  y = reducer(x, axis=tuple(range(1, nsp + 1)), keepdims=keepdims)
  return y[0] if unbatched else y


def global_avg_pool(x, *, spatial_dims: int | None = None, keepdims: bool = False):
  """Mean over all spatial positions, one value per channel.

  Args:
    x: ``(N, *spatial, C)`` or ``(*spatial, C)``.
    spatial_dims: number of spatial axes; inferred for 2-axis (unbatched 1-D) and
      4-axis (batched 2-D) inputs, required for 3-axis ones, which are ambiguous.
    keepdims: keep the spatial axes with size 1.

  Returns:
    ``(N, C)`` (or ``(C,)`` unbatched), or with size-1 spatial axes if ``keepdims``.
  """
  return _global('global_avg_pool', jnp.mean, x, spatial_dims, keepdims)


def global_max_pool(x, *, spatial_dims: int | None = None, keepdims: bool = False):
  """Maximum over all spatial positions, one value per channel.

  Args:
    x: ``(N, *spatial, C)`` or ``(*spatial, C)``.
    spatial_dims: as in :func:`global_avg_pool`.
    keepdims: keep the spatial axes with size 1.

  Returns:
    ``(N, C)`` (or ``(C,)`` unbatched), or with size-1 spatial axes if ``keepdims``.
  """
  return _global('global_max_pool', jnp.max, x, spatial_dims, keepdims)
