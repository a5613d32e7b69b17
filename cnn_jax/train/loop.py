"""The training loop: config -> data -> model -> jitted steps -> workdir.

Small datasets live on the devices for the whole run (replicated); each step gathers
its batch there from a per-epoch permutation that depends only on (seed, epoch), and
the dropout key of step ``s`` is ``fold_in(key, s)``. A run restored from the
checkpoint at step ``S`` therefore continues exactly as an uninterrupted run would.

The workdir holds ``config.json``, ``metrics.jsonl``, ``summary.json`` and
``checkpoints/`` (see the README for the fields).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import subprocess
import sys
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from cnn_jax import data as data_lib
from cnn_jax import models
from cnn_jax.data import catalog
from cnn_jax.train import checkpoint, optim, sharding
from cnn_jax.train.metrics import MetricsWriter
from cnn_jax.train.steps import (NO_BAD_STEP, TrainState, accumulate, create_train_state,
                                 eval_step, train_step)

CONFIG_FILE = 'config.json'
SUMMARY_FILE = 'summary.json'


def _git_commit() -> str:
  try:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          cwd=os.path.dirname(__file__), check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def environment() -> dict:
  """Versions, devices and git commit of this run, for config.json and benchmarks."""
  import flax
  import optax
  return {'jax': jax.__version__, 'flax': flax.__version__, 'optax': optax.__version__,
          'python': sys.version.split()[0], 'git_commit': _git_commit(),
          'devices': [str(d) for d in jax.devices()], 'process_count': jax.process_count()}


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _check_same_config(workdir: str, config_dict: dict) -> None:
  """Refuses to resume a workdir written by a different config (names the fields)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)['config']
  # Round-trip through JSON so tuples and lists compare equal.
  old, new = _flatten(saved), _flatten(json.loads(json.dumps(config_dict)))
  diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
  if diff:
    details = ', '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in diff[:8])
    raise ValueError(f'{workdir} holds a run with a different config ({details}). '
                     f'Resuming it would mix two experiments; use a new --workdir. '
                     f'Nothing was changed.')


def build_model(config):
  """The model named by ``config.model`` (``half_precision`` -> bfloat16 compute)."""
  kwargs = dict(config.model)
  name = kwargs.pop('name')
  if config.get('half_precision', False):
    kwargs['dtype'] = jnp.bfloat16
  return models.create(name, **kwargs)


def _eval_indices(n: int, batch_size: int):
  """Index and mask arrays covering ``n`` examples in whole batches (padded, masked)."""
  num_batches = -(-n // batch_size)
  idx = np.arange(num_batches * batch_size)
  mask = idx < n
  return np.where(mask, idx, 0).reshape(num_batches, batch_size), mask.reshape(
      num_batches, batch_size)


class Trainer:
  """Holds the compiled steps and the data of one run; see :func:`train_and_evaluate`.

  Small datasets are loaded once and kept on the devices (replicated); every step
  gathers its batch there. Large ones (``catalog`` marks them, or
  ``dataset.stream=True``) are streamed from the host by :func:`cnn_jax.data.stream`,
  each process reading its share, and assembled into globally sharded batches. Either
  way the batch of step ``s`` depends only on (seed, ``s``).

  Args:
    config: the experiment ConfigDict.
    mesh: the device mesh (default: all devices).
    splits: host arrays to hold in memory instead of reading ``config.dataset``, keyed
      like the result of :func:`cnn_jax.data.load` (benchmarks pass synthetic data);
      default: read the dataset.
  """

  def __init__(self, config, mesh=None, splits=None):
    self.config = config
    self.mesh = mesh or sharding.make_mesh()
    sharding.check_batch_size(config.batch_size, self.mesh)
    sharding.check_batch_size(config.eval_batch_size, self.mesh, 'eval_batch_size')
    ds = config.dataset
    self.replicated = replicated = sharding.replicated(self.mesh)
    self.streamed = splits is None and (catalog.get(ds.name).stream or
                                        ds.get('stream', False))
    self.has_eval = bool(ds.eval_split)
    aug = data_lib.augment_config(ds)
    if self.streamed:
      builder = data_lib.ensure_prepared(ds)
      num_train = builder.info.splits[ds.train_split].num_examples
      feature = builder.info.features[builder.info.supervised_keys[0]]
      example = (tuple(feature.shape), feature.np_dtype)
      if None in example[0]:  # variable-size images: the host crops and resizes them
        example = ((aug.image_size,) * 2 + example[0][-1:], example[1])
        aug = aug.after_host_crop()
    else:
      splits = data_lib.load(ds) if splits is None else splits
      train_x, train_y = splits['train']
      num_train, example = len(train_y), (train_x.shape[1:], train_x.dtype)
      self._splits = {'train': data_lib.to_global_array((train_x, train_y), replicated)}
      self._host_splits = {k: v for k, v in splits.items() if k != 'train'}
    self.steps_per_epoch = num_train // config.batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f'batch_size={config.batch_size} is larger than the training set '
                       f'({num_train} examples)')
    self.num_train = num_train
    self.total_steps = self.steps_per_epoch * config.num_epochs
    self.model = build_model(config)
    self.tx = optim.make_optimizer(config.optimizer, self.total_steps)
    self.schedule = optim.make_schedule(config.optimizer, self.total_steps)
    root = jax.random.key(config.seed)
    self.init_key, self.dropout_key, self.data_key, aug_key = jax.random.split(root, 4)

    self.batched = batched = sharding.batch_sharded(self.mesh)
    sample = jax.eval_shape(
        lambda x: data_lib.augment(x, None, aug, train=False),
        jax.ShapeDtypeStruct((config.batch_size,) + tuple(example[0]), example[1]))
    use_ema = bool(config.get('ema_decay', 0.0))
    self._init = jax.jit(functools.partial(create_train_state, self.model, self.tx,
                                           sample_input=sample, use_ema=use_ema),
                         out_shardings=replicated)
    step_fn = functools.partial(train_step, label_smoothing=config.get('label_smoothing', 0.0),
                                ema_decay=config.get('ema_decay', 0.0),
                                aux_loss_weight=config.get('aux_loss_weight', 0.0))
    batch_size = config.batch_size

    def train_on_batch(state, images, labels, key):
      # Augmentation randomness, like dropout's, is a function of the step alone.
      inputs = data_lib.augment(images, jax.random.fold_in(aug_key, state.step), aug)
      batch = jax.lax.with_sharding_constraint({'image': inputs, 'label': labels}, batched)
      return step_fn(state, batch, key)

    def train_on_slice(state, images, labels, perm, index, key):
      idx = jax.lax.dynamic_slice(perm, (index * batch_size,), (batch_size,))
      return train_on_batch(state, images[idx], labels[idx], key)

    def eval_on_batch(state, images, labels, mask):
      inputs = data_lib.augment(images, None, aug, train=False)
      batch = {'image': inputs, 'label': labels, 'mask': mask}
      batch = jax.lax.with_sharding_constraint(batch, batched)
      return eval_step(state, batch, use_ema=use_ema)

    def eval_on_slice(state, images, labels, idx, mask):
      return eval_on_batch(state, images[idx], labels[idx], mask)

    self._train = jax.jit(train_on_batch if self.streamed else train_on_slice,
                          donate_argnums=0, out_shardings=(replicated, replicated))
    self._eval = jax.jit(eval_on_batch if self.streamed else eval_on_slice,
                         out_shardings=replicated)

  def init_state(self) -> TrainState:
    """A fresh, replicated train state."""
    return self._init(self.init_key)

  def abstract_state(self):
    """Shapes/dtypes/shardings of the train state, for restoring without initialising."""
    return jax.eval_shape(self._init, self.init_key)

  def batches(self, start_step: int) -> Iterator[tuple]:
    """The data arguments of the train step for steps ``start_step, start_step + 1, ...``.

    In memory: the device arrays, the epoch's permutation (a function of (seed,
    epoch)) and the index of the batch in it. Streamed: the global image and label
    batches of :func:`cnn_jax.data.stream` resumed at ``start_step``.
    """
    if self.streamed:
      stream = data_lib.stream(self.config.dataset, self.config.dataset.train_split,
                               batch_size=self.config.batch_size, seed=self.config.seed,
                               start_step=start_step)
      for batch in data_lib.prefetch_to_device(stream, self.batched):
        yield batch['image'], batch['label']
      return
    images, labels = self._splits['train']
    epoch, perm = None, None
    for step in itertools.count(start_step):
      if step // self.steps_per_epoch != epoch:
        epoch = step // self.steps_per_epoch
        perm = data_lib.epoch_permutation(self.data_key, epoch, self.num_train)
      yield images, labels, perm, step % self.steps_per_epoch

  def compile(self, state, start_step: int = 0):
    """Compiles the train step ahead of time for this run's data.

    Args:
      state: the train state the run starts from.
      start_step: the first step to run.

    Returns:
      ``(seconds, batches)``: the compile time, and :meth:`batches` from
      ``start_step`` (the batch used to compile included).
    """
    batches = self.batches(start_step)
    first = next(batches)
    t0 = time.perf_counter()
    self._train = self._train.lower(state, *first, self.dropout_key).compile()
    return time.perf_counter() - t0, itertools.chain([first], batches)

  def train_step(self, state, args):
    """One step on the data arguments from :meth:`batches`."""
    return self._train(state, *args, self.dropout_key)

  def _eval_batches(self, split: str) -> Iterator[tuple]:
    if self.streamed:
      name = {'eval': self.config.dataset.eval_split,
              'test': self.config.dataset.test_split}[split]
      stream = data_lib.stream(self.config.dataset, name,
                               batch_size=self.config.eval_batch_size,
                               seed=self.config.seed, train=False)
      for batch in data_lib.prefetch_to_device(stream, self.batched):
        yield batch['image'], batch['label'], batch['mask']
      return
    if split not in self._splits:
      self._splits[split] = data_lib.to_global_array(self._host_splits[split],
                                                     self.replicated)
    images, labels = self._splits[split]
    idx, mask = _eval_indices(labels.shape[0], self.config.eval_batch_size)
    for b in range(idx.shape[0]):
      yield images, labels, idx[b], mask[b]

  def evaluate(self, state, split: str) -> dict:
    """Loss, accuracy (and top-5 with more than 10 classes) over ``'eval'`` or ``'test'``.

    Args:
      state: the state to evaluate.
      split: which split.

    Returns:
      ``{'loss', 'accuracy'[, 'top5_accuracy']}`` as floats.
    """
    totals = None
    for args in self._eval_batches(split):
      out = self._eval(state, *args)
      totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
    totals = jax.device_get(totals)
    result = {'loss': float(totals['loss_sum'] / totals['count']),
              'accuracy': float(totals['correct'] / totals['count'])}
    if self.config.model.get('num_classes', 10) > 10:
      result['top5_accuracy'] = float(totals['correct_top5'] / totals['count'])
    return result


def _progress(total: int, initial: int):
  """A tqdm bar on interactive terminals, None otherwise (logs stay line-based)."""
  if not sys.stderr.isatty() or jax.process_index() != 0:
    return None
  return tqdm.tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True)


def _meta(best_eval_accuracy: float = -1.0, best_eval_step: int = -1,
          elapsed_s: float = 0.0, epoch_sums=(0.0, 0.0, 0)) -> dict:
  """Run bookkeeping saved beside the state, so a resumed run reports like an unbroken one.

  ``epoch_sums`` are the running (loss, accuracy, steps) sums of the current epoch, kept
  in float32 on both sides so a resumed epoch mean is bitwise the uninterrupted one.
  """
  return {'best_eval_accuracy': np.array(best_eval_accuracy, np.float32),
          'best_eval_step': np.array(best_eval_step, np.int32),
          'elapsed_s': np.array(elapsed_s, np.float32),
          'epoch_sums': np.array(epoch_sums[:2], np.float32),
          'epoch_steps': np.array(epoch_sums[2], np.int32)}


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (JSON lists turned back into tuples).

  Args:
    workdir: a run directory written by :func:`train_and_evaluate`.

  Returns:
    The ConfigDict.

  Raises:
    FileNotFoundError: if the workdir has no ``config.json``.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir} is not a training workdir')
  with open(path) as f:
    saved = json.load(f)['config']

  def tuples(value):
    if isinstance(value, dict):
      return {k: tuples(v) for k, v in value.items()}
    return tuple(tuples(v) for v in value) if isinstance(value, list) else value

  return ml_collections.ConfigDict(tuples(saved))


def restore_workdir(workdir: str, which: str = 'latest'):
  """Restores a saved train state of a workdir, read-only.

  Args:
    workdir: a run directory written by :func:`train_and_evaluate`.
    which: ``'latest'``, ``'best'`` (by eval accuracy) or a step number.

  Returns:
    ``(trainer, step, state)``: the run's :class:`Trainer` (model, data, steps), the
    restored step and its :class:`TrainState`.

  Raises:
    FileNotFoundError: if the directory is not a workdir or there is no such checkpoint.
    checkpoint.CheckpointError: if it cannot be restored.
  """
  config = load_workdir_config(workdir)
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{workdir} has no checkpoints/ folder: train it first with '
                            f'python -m experiments.train --workdir {workdir}')
  trainer = Trainer(config)
  mngr = checkpoint.manager(directory, read_only=True)
  target = {'state': trainer.abstract_state(), 'meta': _meta()}
  step = None if which in ('latest', 'best') else int(which)
  if step is not None and step not in mngr.all_steps():
    raise FileNotFoundError(f'no checkpoint at step {step} in {workdir}; saved steps: '
                            f'{sorted(mngr.all_steps())}')
  step, items = checkpoint.restore(mngr, target, step)
  if step is None:
    raise FileNotFoundError(f'no checkpoint in {directory}: train the workdir first (or '
                            f'let a run finish its first save)')
  if which == 'best':
    best_step = int(items['meta']['best_eval_step'])
    if best_step < 0:
      raise FileNotFoundError(f'{workdir} has no evaluated checkpoint (no eval split)')
    step, items = checkpoint.restore(mngr, target, best_step)
  mngr.close()
  return trainer, step, items['state']


def evaluate_checkpoint(workdir: str, which: str = 'latest', split: str = 'test') -> dict:
  """Evaluates a saved checkpoint of a workdir (read-only: nothing is written).

  Args:
    workdir: a run directory.
    which: ``'latest'``, ``'best'`` (by eval accuracy) or a step number.
    split: ``'test'`` or ``'eval'``.

  Returns:
    ``{'step', 'split', 'loss', 'accuracy'[, 'top5_accuracy']}``.

  Raises:
    FileNotFoundError: if there is no such checkpoint.
    ValueError: for ``split='eval'`` on a run without an eval split.
    checkpoint.CheckpointError: if it cannot be restored.
  """
  trainer, step, state = restore_workdir(workdir, which)
  if split == 'eval' and not trainer.has_eval:
    raise ValueError(f'the run in {workdir} has no eval split')
  return {'step': step, 'split': split, **trainer.evaluate(state, split)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, log=print,
                       mesh=None) -> dict:
  """Trains ``config.model`` on ``config.dataset``, resuming from ``workdir`` if possible.

  Args:
    config: the experiment config (see ``experiments/configs/fashion_mnist_cnn.py``).
    workdir: run directory; created if missing, resumed if it holds checkpoints.
    log: called with human-readable progress lines.
    mesh: device mesh (default: every device, data parallel).

  Returns:
    The summary dict also written to ``workdir/summary.json``.

  Raises:
    ValueError: for a bad config or a workdir holding a different experiment.
    FloatingPointError: when the loss or gradients become non-finite (the step is
      named; the last checkpoint is left intact).
    checkpoint.CheckpointError: when the workdir's checkpoint cannot be restored.
  """
  t_start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  _check_same_config(workdir, config.to_dict())
  trainer = Trainer(config, mesh)

  mngr = checkpoint.manager(os.path.join(workdir, 'checkpoints'),
                            keep=config.get('keep_checkpoints', 2))
  try:
    return _train(config, workdir, trainer, mngr, log, t_start)
  finally:
    mngr.close()


def _train(config, workdir: str, trainer: Trainer, mngr, log, t_start: float) -> dict:
  """The body of :func:`train_and_evaluate` once the workdir and trainer are set up."""
  meta = _meta()
  restored_step, items = checkpoint.restore(
      mngr, {'state': trainer.abstract_state(), 'meta': meta})
  if restored_step is None:
    state, start_step = trainer.init_state(), 0
  else:
    state, meta, start_step = items['state'], items['meta'], int(restored_step)
    log(f'resumed from step {start_step} in {workdir}')
  config_path = os.path.join(workdir, CONFIG_FILE)
  if jax.process_index() == 0 and not os.path.exists(config_path):
    # Written only once the workdir is known to be usable, and never rewritten: a
    # failed resume must not change what the workdir says about its run.
    with open(config_path, 'w') as f:
      json.dump({'config': config.to_dict(), 'environment': environment()}, f, indent=2,
                default=str)
  summary_path = os.path.join(workdir, SUMMARY_FILE)
  if start_step >= trainer.total_steps and os.path.exists(summary_path):
    with open(summary_path) as f:
      return json.load(f)  # a finished run: report it again, rewrite nothing
  prior_elapsed = float(meta['elapsed_s'])
  best = {'accuracy': float(meta['best_eval_accuracy']), 'step': int(meta['best_eval_step'])}
  epoch_sums = np.asarray(meta['epoch_sums'], np.float32)  # (loss, accuracy) this epoch
  epoch_steps = int(meta['epoch_steps'])
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))
  writer = MetricsWriter(workdir, start_step, tensorboard=config.get('tensorboard', True))
  compile_s, batches = trainer.compile(state, start_step)

  spe, total = trainer.steps_per_epoch, trainer.total_steps
  log_every = config.get('log_every_steps', 0) or spe
  ckpt_every = config.get('checkpoint_every_steps', 0) or spe
  elapsed = lambda: prior_elapsed + time.perf_counter() - t_start

  def save(step, eval_accuracy=None):
    meta_now = _meta(best['accuracy'], best['step'], elapsed(), (*epoch_sums, epoch_steps))
    checkpoint.save(mngr, step, {'state': state, 'meta': meta_now}, eval_accuracy)

  bar = _progress(total, start_step)
  acc, t_interval, images_seen, train_time = None, time.perf_counter(), 0, 0.0
  for step, args in zip(range(start_step, total), batches):
    state, metrics = trainer.train_step(state, args)
    acc = accumulate(acc, metrics)
    done = step + 1
    end_of_epoch = done % spe == 0
    if done % log_every and done % ckpt_every and not end_of_epoch and done != total:
      if bar is not None:
        bar.update(1)
      continue
    # A sync point: fetch the interval's metrics (one host transfer), check finiteness.
    acc = jax.device_get(acc)
    if int(acc['bad_step']) != NO_BAD_STEP:
      raise FloatingPointError(
          f'non-finite loss or gradients at step {int(acc["bad_step"])} (epoch '
          f'{int(acc["bad_step"]) // spe + 1}); training stopped. The last checkpoint in '
          f'{workdir}/checkpoints (step {mngr.latest_step()}) is intact. Lower '
          f'optimizer.learning_rate, enable optimizer.grad_clip_norm, or check the data.')
    seconds = time.perf_counter() - t_interval
    n = int(acc['count'])
    images_seen += n * config.batch_size
    train_time += seconds
    epoch_sums = epoch_sums + np.array([acc['loss'], acc['accuracy']], np.float32)
    epoch_steps += n
    means = {}
    if end_of_epoch:  # the epoch's mean, beside the interval's
      means = {'epoch_loss': epoch_sums[0] / epoch_steps,
               'epoch_accuracy': epoch_sums[1] / epoch_steps}
      epoch_sums, epoch_steps = np.zeros(2, np.float32), 0
    record = writer.write(done, 'train', epoch=done / spe, loss=acc['loss'] / n,
                          accuracy=acc['accuracy'] / n,
                          learning_rate=float(trainer.schedule(step)),
                          images_per_sec=n * config.batch_size / seconds,
                          elapsed_s=elapsed(), **means)
    acc = None
    eval_accuracy = None
    if end_of_epoch and trainer.has_eval:
      result = trainer.evaluate(state, 'eval')
      eval_accuracy = result['accuracy']
      if eval_accuracy >= best['accuracy']:  # ties: the later step, as checkpoint.py keeps
        best = {'accuracy': eval_accuracy, 'step': done}
      writer.write(done, 'eval', epoch=done / spe, elapsed_s=elapsed(), **result)
      record.update({f'eval_{k}': v for k, v in result.items()})
    if bar is not None:
      bar.update(1)
      bar.set_postfix(epoch=f'{done / spe:.2f}', loss=f'{record["loss"]:.4f}',
                      acc=f'{record["accuracy"]:.4f}',
                      img_s=f'{record["images_per_sec"]:.0f}')
    elif end_of_epoch:
      extra = (f'  eval loss {record["eval_loss"]:.4f} acc {record["eval_accuracy"]:.4f}'
               if 'eval_accuracy' in record else '')
      eta = (total - done) * seconds / max(n, 1)
      log(f'epoch {done // spe}/{config.num_epochs}  step {done}/{total}  train loss '
          f'{record["epoch_loss"]:.4f} acc {record["epoch_accuracy"]:.4f}{extra}  '
          f'{record["images_per_sec"]:.0f} img/s  ETA {eta:.0f}s')
    if done % ckpt_every == 0 or end_of_epoch or done == total:
      save(done, eval_accuracy)
    t_interval = time.perf_counter()
  if bar is not None:
    bar.close()

  test = trainer.evaluate(state, 'test')
  writer.write(total, 'test', epoch=total / spe, elapsed_s=elapsed(), **test)
  writer.close()
  summary = {
      'test_accuracy': test['accuracy'], 'test_loss': test['loss'],
      **({'test_top5_accuracy': test['top5_accuracy']} if 'top5_accuracy' in test else {}),
      'best_eval_accuracy': best['accuracy'] if best['step'] >= 0 else None,
      'best_eval_step': best['step'] if best['step'] >= 0 else None,
      'steps': total, 'epochs': config.num_epochs, 'wall_s': elapsed(),
      'compile_s': compile_s,
      'train_images_per_sec': images_seen / train_time if train_time else None,
      'num_params': num_params,
  }
  if jax.process_index() == 0:
    with open(summary_path, 'w') as f:
      json.dump(summary, f, indent=2)
  return summary


def format_summary(summary: dict) -> str:
  """The final results as a small markdown table."""
  def fmt(v):
    if isinstance(v, float):
      return f'{v:.4f}' if abs(v) < 10 else f'{v:,.1f}'
    return f'{v:,}' if isinstance(v, int) else str(v)
  rows = [f'| {k} | {fmt(v)} |' for k, v in summary.items()]
  return '\n'.join(['| result | value |', '|---|---|'] + rows)
