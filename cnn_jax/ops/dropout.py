"""Inverted dropout as a pure function of an explicit PRNG key."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def _is_traced(value) -> bool:
  return isinstance(value, jax.core.Tracer)


def dropout(x, rate, key, *, deterministic: bool = False, broadcast_dims: Sequence[int] = ()):
  """Zeroes each element with probability ``rate`` and scales the rest by ``1 / (1 - rate)``.

  The scaling ("inverted" dropout) keeps the expected value of every element, so
  evaluation needs no rescaling: it is the identity.

  ``rate`` may be a traced value (for ``jax.vmap`` over dropout rates or a schedule
  inside ``jit``). Python and concrete rates are range-checked at trace time; a traced
  rate cannot be, so callers that vmap over rates must validate them beforehand
  (a traced rate of 1 gives zeros, never NaN).

  Args:
    x: array of any shape.
    rate: drop probability in ``[0, 1)``.
    key: a ``jax.random`` key; the same key gives the same mask.
    deterministic: if True, return ``x`` unchanged (evaluation); ``key`` may be None.
      The rate is still checked, so a bad setting fails in evaluation too.
    broadcast_dims: axes along which the mask is shared. On ``(N, H, W, C)`` features,
      ``broadcast_dims=(1, 2)`` drops whole channels per example (spatial dropout,
      Tompson et al. 2015); negative axes count from the end.

  Returns:
    Array like ``x``.

  Raises:
    ValueError: if a concrete ``rate`` is outside ``[0, 1)``, a broadcast axis is out
      of range or repeated, or ``key`` is missing when dropout is active.
  """
  x = jnp.asarray(x)
  if not _is_traced(rate):
    rate_value = float(rate)
    if not 0.0 <= rate_value < 1.0:
      hint = (' (rate=1 would drop everything; remove the layer instead)'
              if rate_value == 1.0 else '')
      raise ValueError(f'dropout: rate must be in [0, 1), got rate={rate!r}{hint}; '
                       f'x.shape={tuple(x.shape)}')
  if deterministic or (not _is_traced(rate) and float(rate) == 0.0):
    return x
  if key is None:
    raise ValueError(f'dropout: a PRNG key is required when deterministic=False and '
                     f'rate={rate!r} (x.shape={tuple(x.shape)}); pass key= or '
                     f'deterministic=True')
  axes = []
  for d in broadcast_dims:
    if not -x.ndim <= d < x.ndim:
      raise ValueError(f'dropout: broadcast_dims={tuple(broadcast_dims)} has axis {d}, '
                       f'out of range for x.shape={tuple(x.shape)}')
    axes.append(d % x.ndim)
  if len(set(axes)) != len(axes):
    raise ValueError(f'dropout: broadcast_dims={tuple(broadcast_dims)} repeats an axis')
  mask_shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
  keep = 1.0 - jnp.asarray(rate, jnp.float32)
  mask = jax.random.bernoulli(key, keep, mask_shape)
  # Guarding the reciprocal keeps rate=1 (possible only when traced) free of inf/NaN,
  # in the value and in the gradient.
  scale = jnp.where(keep > 0, 1.0 / jnp.where(keep > 0, keep, 1.0), 0.0).astype(x.dtype)
  return jnp.where(mask, x * scale, jnp.zeros((), x.dtype))
