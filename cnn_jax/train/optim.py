"""Optimizers and learning-rate schedules from a config."""

from __future__ import annotations

import optax


def make_schedule(config, total_steps: int) -> optax.Schedule:
  """Learning-rate schedule from ``config.learning_rate`` and ``config.schedule``.

  Args:
    config: optimizer ConfigDict with ``learning_rate``, ``schedule`` (``'constant'``,
      ``'cosine'`` or ``'one_cycle'``) and ``warmup_steps``.
    total_steps: length of the run in steps.

  Returns:
    An optax schedule.
  """
  lr, name = config.learning_rate, config.get('schedule', 'constant')
  warmup = config.get('warmup_steps', 0)
  if name == 'constant':
    sched = optax.constant_schedule(lr)
    if warmup:
      sched = optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), sched], [warmup])
    return sched
  if name == 'cosine':
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1))
  if name == 'one_cycle':
    return optax.cosine_onecycle_schedule(total_steps, lr)
  raise ValueError(f"optimizer.schedule={name!r} is unknown; use 'constant', 'cosine' or "
                   f"'one_cycle'")


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
  """Builds the optimizer named by ``config.name`` (``'sgd'``, ``'adam'``, ``'adamw'``).

  Args:
    config: optimizer ConfigDict (``name``, ``learning_rate``, ``schedule``, and
      ``momentum``/``nesterov`` for SGD, ``weight_decay`` for AdamW).
    total_steps: length of the run in steps, for decaying schedules.

  Returns:
    An optax gradient transformation.
  """
  lr = make_schedule(config, total_steps)
  if config.name == 'sgd':
    return optax.sgd(lr, momentum=config.get('momentum', 0.9) or None,
                     nesterov=config.get('nesterov', False))
  if config.name == 'adam':
    return optax.adam(lr)
  if config.name == 'adamw':
    return optax.adamw(lr, weight_decay=config.get('weight_decay', 1e-4))
  raise ValueError(f"optimizer.name={config.name!r} is unknown; use 'sgd', 'adam' or "
                   f"'adamw'")
