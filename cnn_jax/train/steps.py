"""Training state and pure train/eval steps.

``train_step(state, batch, key) -> (state, metrics)`` derives its dropout key from
``fold_in(key, state.step)``, so the randomness of step ``s`` depends only on the run's
key and ``s``: a resumed run sees the same masks as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

# Sentinel for "no non-finite step seen": larger than any real step.
NO_BAD_STEP = jnp.iinfo(jnp.int32).max
# Top-5 accuracy is reported for models with more classes than this (it is 100% below).
TOP5_MIN_CLASSES = 10


class TrainState(train_state.TrainState):
  """Flax's TrainState (step, params, opt_state) plus BatchNorm statistics and EMA.

  Attributes:
    batch_stats: BatchNorm running statistics, or None for models without BatchNorm.
    ema_params: exponential moving average of ``params`` (used for evaluation), or
      None when EMA is off.
  """
  batch_stats: Any = None
  ema_params: Any = None


def create_train_state(model, tx: optax.GradientTransformation, key, sample_input,
                       use_ema: bool = False) -> TrainState:
  """Initialises parameters (and batch statistics) from a sample batch.

  Args:
    model: a Flax module taking ``(x, train=...)``.
    tx: the optax optimizer.
    key: PRNG key for the initialisation.
    sample_input: an array or ``jax.ShapeDtypeStruct`` shaped like one batch.
    use_ema: keep an exponential moving average of the parameters.

  Returns:
    A :class:`TrainState` at step 0.
  """
  variables = model.init(key, jnp.zeros(sample_input.shape, sample_input.dtype), train=False)
  params = variables['params']
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                           batch_stats=variables.get('batch_stats'),
                           ema_params=params if use_ema else None)


def _variables(state: TrainState, params) -> dict:
  variables = {'params': params}
  if state.batch_stats is not None:
    variables['batch_stats'] = state.batch_stats
  return variables


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  """Per-example softmax cross-entropy with integer labels and optional smoothing."""
  if not label_smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def train_step(state: TrainState, batch: dict, key, *, label_smoothing: float = 0.0,
               ema_decay: float = 0.0, aux_loss_weight: float = 0.0, apply_fn=None):
  """One optimisation step; pure, meant to be jitted with the state donated.

  A step whose loss or gradients are not finite leaves the state unchanged (so the
  last good parameters survive) and reports its number in ``bad_step``; the loop
  stops at its next sync with an error naming that step.

  Args:
    state: current :class:`TrainState`.
    batch: ``{'image': (B, ...) float, 'label': (B,) int}``.
    key: the run's dropout key; the step's key is ``fold_in(key, state.step)``.
    label_smoothing: mass moved uniformly to all classes in the targets.
    ema_decay: decay of the parameter EMA (used only if ``state.ema_params`` is set).
    aux_loss_weight: weight of each auxiliary classifier's loss (GoogLeNet: 0.3); the
      model sows their logits as ``'*_logits'`` in the ``'intermediates'`` collection.
    apply_fn: the forward pass to train, default ``state.apply_fn`` (a vmapped replica
      passes its copy of the model, built with its traced dropout rates).

  Returns:
    ``(new_state, metrics)``: batch ``loss`` and ``accuracy`` (means), ``count`` (1) and
    ``bad_step`` (the step number if non-finite, else :data:`NO_BAD_STEP`).
  """
  dropout_key = jax.random.fold_in(key, state.step)
  apply_fn = apply_fn or state.apply_fn
  mutable = ['batch_stats'] if state.batch_stats is not None else []
  if aux_loss_weight:
    mutable.append('intermediates')

  def loss_fn(params):
    # With a list for `mutable` (even an empty one) apply returns (out, updates).
    logits, updates = apply_fn(_variables(state, params), batch['image'], train=True,
                                     rngs={'dropout': dropout_key}, mutable=mutable)
    loss = cross_entropy(logits, batch['label'], label_smoothing).mean()
    aux = updates.pop('intermediates', {})
    for name, (aux_logits,) in aux.items():
      if name.endswith('_logits'):
        loss += aux_loss_weight * cross_entropy(aux_logits, batch['label'],
                                                label_smoothing).mean()
    return loss, (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads)
  if state.batch_stats is not None:
    new_state = new_state.replace(batch_stats=updates['batch_stats'])
  if state.ema_params is not None:
    new_state = new_state.replace(ema_params=optax.incremental_update(
        new_state.params, state.ema_params, 1.0 - ema_decay))
  ok = jnp.isfinite(loss) & _all_finite(grads)
  # Keep the old state (but still count the step) when this one went non-finite.
  new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state,
                           state.replace(step=state.step + 1))
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  return new_state, {'loss': jnp.where(ok, loss, 0.0), 'accuracy': accuracy,
                     'count': jnp.ones((), jnp.int32),
                     'bad_step': jnp.where(ok, NO_BAD_STEP, state.step).astype(jnp.int32)}


def accumulate(total: dict | None, metrics: dict) -> dict:
  """Adds a step's metrics to running totals (``bad_step`` keeps the earliest)."""
  if total is None:
    return metrics
  return {k: jnp.minimum(total[k], v) if k == 'bad_step' else total[k] + v
          for k, v in metrics.items()}


def eval_step(state: TrainState, batch: dict, use_ema: bool = False,
              flip: bool = False) -> dict:
  """Sums of loss and correct predictions over the valid examples of a batch.

  Args:
    state: the :class:`TrainState` to evaluate.
    batch: ``{'image', 'label', 'mask'}``; ``mask`` (B,) marks real examples, so a
      padded last batch counts correctly.
    use_ema: evaluate the EMA parameters instead of the raw ones.
    flip: test-time augmentation: average the logits of each input and of its mirror
      image (reversed along the width, the last spatial axis). Meant for models
      trained with random flips.

  Returns:
    ``{'loss_sum', 'correct', 'count'}`` and, for more than
    :data:`TOP5_MIN_CLASSES` classes, ``'correct_top5'``; divide the sums by ``count``.
  """
  variables = _variables(state, state.ema_params if use_ema else state.params)
  images = batch['image']
  logits = state.apply_fn(variables, images, train=False)
  if flip:
    mirrored = state.apply_fn(variables, jnp.flip(images, axis=-2), train=False)
    logits = (logits + mirrored) / 2
  loss = cross_entropy(logits, batch['label'])
  mask = batch['mask'].astype(jnp.float32)
  correct = (jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32)
  sums = {'loss_sum': jnp.sum(loss * mask), 'correct': jnp.sum(correct * mask),
          'count': jnp.sum(mask)}
  # Top-5 is reported from the logits' width, so a preset's class count is enough.
  if logits.shape[-1] > TOP5_MIN_CLASSES:
    top5 = jnp.any(jax.lax.top_k(logits, 5)[1] == batch['label'][:, None], axis=-1)
    sums['correct_top5'] = jnp.sum(top5.astype(jnp.float32) * mask)
  return sums
