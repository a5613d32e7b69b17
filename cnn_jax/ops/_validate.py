"""Input checks shared by the ops, run at trace time on static shapes."""

from __future__ import annotations

import jax.numpy as jnp

_LAYOUTS = {1: '(N, W, C)', 2: '(N, H, W, C)', 3: '(N, D, H, W, C)'}


def layout(spatial_dims: int, batched: bool = True) -> str:
  """Human-readable layout name such as ``(N, H, W, C)`` for error messages."""
  name = _LAYOUTS.get(spatial_dims, f'(N, <{spatial_dims} spatial>, C)')
  return name if batched else '(' + name[4:]


def add_batch_axis(op: str, x, spatial_dims: int, arg: str = 'x'):
  """Returns ``(x_batched, was_unbatched)`` after checking the rank of ``x``.

  The ops take channels-last inputs with or without a leading batch axis; they run
  batched internally and drop the axis again for unbatched inputs.

  Args:
    op: name of the calling op, for the message.
    x: the input array.
    spatial_dims: number of spatial dimensions the op works on.
    arg: name of the argument, for the message.

  Returns:
    The input with a batch axis, and whether one was added.

  Raises:
    ValueError: if ``x`` has neither ``spatial_dims + 2`` nor ``spatial_dims + 1`` axes.
  """
  x = jnp.asarray(x)
  if x.ndim == spatial_dims + 2:
    return x, False
  if x.ndim == spatial_dims + 1:
    return x[None], True
  raise ValueError(
      f'{op}: {arg} must have shape {layout(spatial_dims)} or {layout(spatial_dims, False)} '
      f'({spatial_dims + 2} or {spatial_dims + 1} axes), got {arg}.shape={tuple(x.shape)} '
      f'with {x.ndim} axes')


def spatial_dims_from(op: str, x_ndim: int, window, spatial_dims: int | None) -> int:
  """Number of spatial dimensions of a pooling op, from its window or the input rank.

  A tuple window says it directly. An int window (or a global pool) leaves only the
  input rank, and a 3-axis input is ambiguous: ``(N, W, C)`` batched 1-D or
  ``(H, W, C)`` unbatched 2-D.

  Args:
    op: name of the calling op, for the message.
    x_ndim: number of axes of the input.
    window: the window argument (int, sequence, or None for global pools).
    spatial_dims: explicit number of spatial dimensions, or None to infer.

  Returns:
    1 or 2 (or the explicit value).

  Raises:
    ValueError: if the rank is ambiguous or inconsistent.
  """
  if spatial_dims is not None:
    if spatial_dims not in (1, 2, 3):
      raise ValueError(f'{op}: spatial_dims must be 1, 2 or 3, got {spatial_dims}')
    return spatial_dims
  if window is not None and not isinstance(window, int):
    return len(tuple(window))
  if x_ndim == 4:
    return 2
  if x_ndim == 2:
    return 1
  if x_ndim == 3:
    hint = ('window=(k,) for (N, W, C) batched 1-D or window=(k, k) for (H, W, C) '
            'unbatched 2-D' if window is not None else
            'spatial_dims=1 for (N, W, C) batched 1-D or spatial_dims=2 for (H, W, C) '
            'unbatched 2-D')
    raise ValueError(f'{op}: a 3-axis input is ambiguous; pass {hint}')
  raise ValueError(f'{op}: x must have 2 to 4 axes (1-D or 2-D, batched or not), got '
                   f'an input with {x_ndim} axes')
