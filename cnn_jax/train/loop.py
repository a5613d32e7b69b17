"""The training loop: config -> data -> model -> jitted steps -> metrics.

Small datasets live on the device for the whole run; each step gathers its batch there
from a per-epoch permutation that depends only on (seed, epoch), so there are no
per-step host-to-device copies and the batch order is reproducible.
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import data as data_lib
from cnn_jax import models
from cnn_jax.train import optim
from cnn_jax.train.steps import create_train_state, eval_step, train_step


def _to_float(images):
  # uint8 on the device (4x less memory), scaled to [0, 1] inside the step.
  return images.astype(jnp.float32) / 255.0


@functools.partial(jax.jit, static_argnames='batch_size', donate_argnums=0)
def _train_on_slice(state, images, labels, perm, index, key, *, batch_size):
  """Gathers batch ``index`` of the epoch permutation on device and takes one step."""
  idx = jax.lax.dynamic_slice(perm, (index * batch_size,), (batch_size,))
  batch = {'image': _to_float(images[idx]), 'label': labels[idx]}
  return train_step(state, batch, key)


@jax.jit
def _eval_batch(state, images, labels, mask):
  return eval_step(state, {'image': _to_float(images), 'label': labels, 'mask': mask})


def evaluate(state, images: np.ndarray, labels: np.ndarray, batch_size: int) -> dict:
  """Loss and accuracy over a whole split; the last batch is padded and masked.

  Args:
    state: the TrainState to evaluate.
    images: uint8 images.
    labels: int labels.
    batch_size: evaluation batch size (every batch has this shape: one compile).

  Returns:
    ``{'loss', 'accuracy'}`` as Python floats.
  """
  n = len(labels)
  totals = None
  for start in range(0, n, batch_size):
    x, y = images[start:start + batch_size], labels[start:start + batch_size]
    pad = batch_size - len(y)
    mask = np.r_[np.ones(len(y), bool), np.zeros(pad, bool)]
    if pad:
      x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
    out = _eval_batch(state, x, y, mask)
    totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
  totals = jax.device_get(totals)
  return {'loss': float(totals['loss_sum'] / totals['count']),
          'accuracy': float(totals['correct'] / totals['count'])}


def train_and_evaluate(config, log=print) -> dict:
  """Trains ``config.model`` on ``config.dataset`` and reports test metrics.

  Args:
    config: ConfigDict with ``seed``, ``dataset``, ``model`` (``name`` plus the model's
      fields), ``optimizer``, ``batch_size``, ``eval_batch_size``, ``num_epochs``.
    log: called with one formatted line per epoch.

  Returns:
    A summary dict: final test loss/accuracy, per-epoch history, parameter count,
    wall and compile time, mean train images/s.
  """
  t_start = time.perf_counter()
  splits = data_lib.load(config.dataset)
  train_x, train_y = splits['train']
  test_x, test_y = splits['test']
  batch_size = config.batch_size
  steps_per_epoch = len(train_y) // batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'batch_size={batch_size} is larger than the training set '
                     f'({len(train_y)} examples)')
  total_steps = steps_per_epoch * config.num_epochs

  model_kwargs = dict(config.model)
  model = models.create(model_kwargs.pop('name'), **model_kwargs)
  tx = optim.make_optimizer(config.optimizer, total_steps)
  init_key, dropout_key, data_key = jax.random.split(jax.random.key(config.seed), 3)
  sample = jax.ShapeDtypeStruct((batch_size,) + train_x.shape[1:], jnp.float32)
  state = create_train_state(model, tx, init_key, sample)
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))

  images, labels = jax.device_put(train_x), jax.device_put(train_y)
  t_compile = time.perf_counter()
  compiled = _train_on_slice.lower(state, images, labels, jnp.arange(len(train_y)), 0,
                                   dropout_key, batch_size=batch_size).compile()
  compile_s = time.perf_counter() - t_compile

  history, train_time = [], 0.0
  for epoch in range(config.num_epochs):
    perm = jax.random.permutation(jax.random.fold_in(data_key, epoch), len(train_y))
    t0 = time.perf_counter()
    sums = None
    for i in range(steps_per_epoch):
      state, metrics = compiled(state, images, labels, perm, i, dropout_key)
      sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
    sums = jax.device_get(sums)  # one host sync per epoch
    epoch_s = time.perf_counter() - t0
    train_time += epoch_s
    test = evaluate(state, test_x, test_y, config.eval_batch_size)
    record = {'epoch': epoch + 1, 'train_loss': float(sums['loss'] / steps_per_epoch),
              'train_accuracy': float(sums['accuracy'] / steps_per_epoch),
              'test_loss': test['loss'], 'test_accuracy': test['accuracy'],
              'images_per_sec': steps_per_epoch * batch_size / epoch_s}
    if not all(math.isfinite(v) for v in record.values()):
      raise FloatingPointError(f'non-finite metrics in epoch {epoch + 1}: {record}; lower '
                               f'optimizer.learning_rate or check the data')
    history.append(record)
    log(f"epoch {record['epoch']}/{config.num_epochs}  train loss {record['train_loss']:.4f} "
        f"acc {record['train_accuracy']:.4f}  test loss {record['test_loss']:.4f} "
        f"acc {record['test_accuracy']:.4f}  {record['images_per_sec']:.0f} img/s  "
        f"{epoch_s:.1f}s")
  return {'test_accuracy': history[-1]['test_accuracy'],
          'test_loss': history[-1]['test_loss'], 'num_params': num_params,
          'history': history, 'compile_s': compile_s,
          'wall_s': time.perf_counter() - t_start,
          'train_images_per_sec': steps_per_epoch * batch_size * config.num_epochs / train_time}
