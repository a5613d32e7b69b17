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


class TrainState(train_state.TrainState):
  """Flax's TrainState (step, params, opt_state) plus BatchNorm statistics."""
  batch_stats: Any = None


def create_train_state(model, tx: optax.GradientTransformation, key, sample_input):
  """Initialises parameters (and batch statistics) from a sample batch.

  Args:
    model: a Flax module taking ``(x, train=...)``.
    tx: the optax optimizer.
    key: PRNG key for the initialisation.
    sample_input: an array (or ``jax.ShapeDtypeStruct``) shaped like one batch.

  Returns:
    A :class:`TrainState` at step 0.
  """
  variables = model.init(key, jnp.zeros(sample_input.shape, sample_input.dtype), train=False)
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables.get('batch_stats'))


def _variables(state: TrainState, params) -> dict:
  variables = {'params': params}
  if state.batch_stats is not None:
    variables['batch_stats'] = state.batch_stats
  return variables


def train_step(state: TrainState, batch: dict, key):
  """One optimisation step on a batch; pure, meant to be jitted with donated state.

  Args:
    state: current :class:`TrainState`.
    batch: ``{'image': (B, ...) float, 'label': (B,) int}``.
    key: the run's dropout key; the step's key is ``fold_in(key, state.step)``.

  Returns:
    ``(new_state, metrics)`` with the batch's mean ``loss`` and ``accuracy``.
  """
  dropout_key = jax.random.fold_in(key, state.step)
  mutable = ['batch_stats'] if state.batch_stats is not None else []

  def loss_fn(params):
    # With a list for `mutable` (even an empty one) apply returns (out, updates).
    logits, updates = state.apply_fn(_variables(state, params), batch['image'], train=True,
                                     rngs={'dropout': dropout_key}, mutable=mutable)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    return loss, (logits, updates)

  (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads)
  if mutable:
    state = state.replace(batch_stats=updates['batch_stats'])
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  return state, {'loss': loss, 'accuracy': accuracy}


def eval_step(state: TrainState, batch: dict) -> dict:
  """Sums of loss and correct predictions over the valid examples of a batch.

  Args:
    state: the :class:`TrainState` to evaluate.
    batch: ``{'image', 'label', 'mask'}``; ``mask`` (B,) marks real examples, so a
      padded last batch counts correctly.

  Returns:
    ``{'loss_sum', 'correct', 'count'}``; divide the sums by ``count``.
  """
  logits = state.apply_fn(_variables(state, state.params), batch['image'], train=False)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
  mask = batch['mask'].astype(jnp.float32)
  correct = (jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32)
  return {'loss_sum': jnp.sum(loss * mask), 'correct': jnp.sum(correct * mask),
          'count': jnp.sum(mask)}
