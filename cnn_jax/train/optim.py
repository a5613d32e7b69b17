"""Optimizers and learning-rate schedules from a config.

Every knob is a field of ``config.optimizer``:

* ``name``: ``'sgd'`` (``momentum``, ``nesterov``), ``'adam'``, ``'adamw'``.
* ``learning_rate`` and ``schedule``: ``'constant'``, ``'cosine'``, ``'one_cycle'``,
  ``'piecewise'`` (``boundaries`` as fractions of the whole run, warm-up included, so
  ``(1/3, 2/3)`` of 90 epochs decays at epochs 30 and 60 whatever the warm-up;
  ``decay_factor`` at each); ``warmup_steps`` prepends a linear warm-up to constant,
  cosine and piecewise (cosine decays over the steps after it).
* ``weight_decay``: decoupled for AdamW, added to the gradient for SGD/Adam; only on
  kernels (arrays with 2+ dims): biases and BatchNorm scales/offsets are not decayed.
* ``grad_clip_norm``: clip the global gradient norm (0: off).
"""

from __future__ import annotations

import jax
import optax

SCHEDULES = ('constant', 'cosine', 'one_cycle', 'piecewise')
OPTIMIZERS = ('sgd', 'adam', 'adamw')


def make_schedule(config, total_steps: int) -> optax.Schedule:
  """Learning-rate schedule from ``config.learning_rate`` and ``config.schedule``.

  Args:
    config: optimizer ConfigDict (see the module docstring).
    total_steps: length of the run in steps.

  Returns:
    An optax schedule.

  Raises:
    ValueError: for an unknown schedule, or boundaries that are not increasing
      fractions in (0, 1) or fall inside the warm-up.
  """
  lr = config.learning_rate
  name = config.schedule
  warmup = int(config.warmup_steps)
  if name == 'one_cycle':
    # One-cycle has its own warm-up (the first 30% of the run).
    return optax.cosine_onecycle_schedule(max(total_steps, 1), lr)
  decay_steps = max(total_steps - warmup, 1)
  if name == 'constant':
    main = optax.constant_schedule(lr)
  elif name == 'cosine':
    main = optax.cosine_decay_schedule(lr, decay_steps)
  elif name == 'piecewise':
    boundaries = tuple(config.boundaries)
    if any(not 0 < b < 1 for b in boundaries) or list(boundaries) != sorted(boundaries):
      raise ValueError(f'optimizer.boundaries={boundaries} must be increasing fractions '
                       f'of the run in (0, 1)')
    # Boundaries are steps of the run; the schedule after the warm-up counts from its end.
    steps = [int(b * total_steps) for b in boundaries]
    if warmup and steps[0] <= warmup:
      raise ValueError(f'optimizer.boundaries={boundaries} put the first decay at step '
                       f'{steps[0]} of {total_steps}, inside the warm-up of {warmup} steps')
    factor = config.decay_factor
    main = optax.piecewise_constant_schedule(lr, {s - warmup: factor for s in steps})
  else:
    raise ValueError(f'optimizer.schedule={name!r} is unknown; use one of {SCHEDULES}')
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def decay_mask(params):
  """True for kernels (2+ dims); biases and normalisation parameters are not decayed."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """Builds the optimizer described by ``config`` (see the module docstring).

  Args:
    config: optimizer ConfigDict.
    total_steps: length of the run in steps, for decaying schedules.

  Returns:
    An optax gradient transformation.

  Raises:
    ValueError: for an unknown optimizer or schedule.
  """
  lr = make_schedule(config, total_steps)
  name = config.name
  wd = config.weight_decay
  if name == 'sgd':
    base = optax.sgd(lr, momentum=config.momentum or None,
                     nesterov=config.nesterov)
  elif name == 'adam':
    base = optax.adam(lr)
  elif name == 'adamw':
    base = optax.adamw(lr, weight_decay=wd, mask=decay_mask)
  else:
    raise ValueError(f'optimizer.name={name!r} is unknown; use one of {OPTIMIZERS}')
  parts = []
  if config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  if wd and name != 'adamw':
    # L2 added to the gradient before the update rule (classic SGD weight decay).
    parts.append(optax.add_decayed_weights(wd, mask=decay_mask))
  return optax.chain(*parts, base) if parts else base
