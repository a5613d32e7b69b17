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


def flatten_config(d: dict, prefix: str = '') -> dict:
  """A nested dict as one level of dotted keys (``{"model.name": ...}``)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten_config(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def _check_same_config(workdir: str, config_dict: dict, variants=None) -> None:
  """Refuses to resume a workdir written by a different config (names the fields)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved_file = json.load(f)
  saved = saved_file['config']
  old_variants = saved_file.get('variants')
  if json.loads(json.dumps(variants)) != old_variants:
    raise ValueError(f'{workdir} holds a run with replicas {old_variants}, not {variants}. '
                     f'Resuming it would mix two experiments; use a new --workdir. '
                     f'Nothing was changed.')
  # Round-trip through JSON so tuples and lists compare equal.
  old, new = flatten_config(saved), flatten_config(json.loads(json.dumps(config_dict)))
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


def is_vmappable(key: str) -> bool:
  """Whether a dotted config key can differ between the replicas of one program.

  Seeds and dropout rates are values inside the compiled program (keys and a traced
  rate), so replicas can differ in them. Anything that changes an array's shape
  (stride, kernel size, widths, depth, batch size) or the program's structure needs
  its own compiled program.

  Args:
    key: a dotted config key, e.g. ``'model.dropout_rate'``.

  Returns:
    True for ``'seed'`` and for ``model.*dropout_rate`` fields.
  """
  return key == 'seed' or (key.startswith('model.') and key.count('.') == 1 and
                           key.endswith('dropout_rate'))


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict):
  """A copy of ``config`` with dotted-key overrides (``{'model.dropout_rate': 0.3}``).

  Raises:
    ValueError: for a key the config does not have.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in overrides.items():
    node, *path = config, *key.split('.')
    for part in path[:-1]:
      node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or path[-1] not in node:
      raise ValueError(f'unknown config key {key!r} in the overrides {overrides}')
    node[path[-1]] = value
  return config


def _check_variants(config, variants):
  """Completes every variant to the same keys (missing ones from ``config``)."""
  if variants is None:
    return None
  if not variants:
    raise ValueError('variants is empty: give at least one replica')
  keys = sorted({k for v in variants for k in v})
  bad = [k for k in keys if not is_vmappable(k)]
  if bad:
    raise ValueError(f'{bad} cannot differ between vmapped replicas: only seed and '
                     f'model.*dropout_rate can (they are values inside one program); a '
                     f'field that changes shapes needs its own run')
  for key in keys:
    apply_overrides(config, {key: None})  # raises for unknown keys
  return [{k: v.get(k, config[k] if k == 'seed' else config.model[k.split('.')[1]])
           for k in keys} for v in variants]


def _run_keys(seed):
  """The (init, dropout, data, augmentation) keys of a run; a function of its seed."""
  return tuple(jax.random.split(jax.random.key(seed), 4))


def resolve_steps_per_call(config, steps_per_epoch: int, streamed: bool = False) -> int:
  """Steps per compiled call: ``config.steps_per_call`` (0: a whole epoch), checked.

  Raises:
    ValueError: if it does not divide the epoch, the log and checkpoint intervals, or
      is above 1 with streamed data.
  """
  calls = config.get('steps_per_call', 1)
  n = steps_per_epoch if calls == 0 else calls
  if not isinstance(n, int) or n < 1:
    raise ValueError(f'steps_per_call={calls!r} must be an int >= 1, or 0 for an epoch')
  if streamed and n > 1:
    raise ValueError(f'steps_per_call={calls} needs the data in device memory; streamed '
                     f'datasets run one step per call (set steps_per_call=1)')
  for name, every in (('steps per epoch', steps_per_epoch),
                      ('log_every_steps', config.get('log_every_steps', 0)),
                      ('checkpoint_every_steps', config.get('checkpoint_every_steps', 0))):
    if every and every % n:
      raise ValueError(f'steps_per_call={n} must divide {name} ({every}): the loop can '
                       f'only log, evaluate and checkpoint between calls')
  return n


class Trainer:
  """Holds the compiled steps and the data of one run; see :func:`train_and_evaluate`.

  Small datasets are loaded once and kept on the devices (replicated); every step
  gathers its batch there. Large ones (``catalog`` marks them, or
  ``dataset.stream=True``) are streamed from the host by :func:`cnn_jax.data.stream`,
  each process reading its share, and assembled into globally sharded batches. Either
  way the batch of step ``s`` depends only on (seed, ``s``).

  With ``config.steps_per_call = L > 1`` one compiled call runs L steps as a
  ``lax.scan`` (0: a whole epoch), so the host syncs once per L steps.

  With ``variants``, the trainer holds K replicas of the run in one program: every
  array of the state gets a leading replica axis and the step is ``jax.vmap``-ed over
  it. Replica ``i`` uses its own seed (init, data order, dropout and augmentation
  keys) and dropout rates (traced values), so it computes what a separate run of its
  config would, batched with the others.

  Args:
    config: the experiment ConfigDict.
    mesh: the device mesh (default: all devices).
    splits: host arrays to hold in memory instead of reading ``config.dataset``, keyed
      like the result of :func:`cnn_jax.data.load` (benchmarks pass synthetic data);
      default: read the dataset.
    variants: None for one run, or one dict per replica of dotted vmappable keys
      (:func:`is_vmappable`) to values, e.g. ``[{'seed': 0}, {'seed': 1}]``.
  """

  def __init__(self, config, mesh=None, splits=None, variants=None):
    self.config = config
    self.variants = _check_variants(config, variants)
    self.num_replicas = None if variants is None else len(self.variants)
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
      if variants is not None:
        raise ValueError('vmapped replicas need the dataset in device memory; '
                         f'{ds.name} is streamed from the host')
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
    self.steps_per_call = resolve_steps_per_call(config, self.steps_per_epoch,
                                                 self.streamed)
    self.num_train = num_train
    self.total_steps = self.steps_per_epoch * config.num_epochs
    self.model = build_model(config)
    self.tx = optim.make_optimizer(config.optimizer, self.total_steps)
    self.schedule = optim.make_schedule(config.optimizer, self.total_steps)

    vmap = (lambda f, in_axes=0: f) if variants is None else jax.vmap
    if variants is None:
      seeds, self.rates = config.seed, {}
    else:
      seeds = np.array([v.get('seed', config.seed) for v in self.variants])
      # Model field -> (K, ...) values; tuples (per-block rates) stay per-block.
      self.rates = {k.split('.')[1]: jax.tree.map(lambda *xs: np.array(xs, np.float32),
                                                  *[v[k] for v in self.variants])
                    for k in self.variants[0] if k != 'seed'}
    self.init_key, dropout_key, self.data_key, aug_key = vmap(_run_keys)(seeds)
    self.keys = (dropout_key, aug_key)

    self.batched = batched = sharding.batch_sharded(self.mesh)
    sample = jax.eval_shape(
        lambda x: data_lib.augment(x, None, aug, train=False),
        jax.ShapeDtypeStruct((config.batch_size,) + tuple(example[0]), example[1]))
    use_ema = bool(config.get('ema_decay', 0.0))
    eval_flip = bool(config.get('eval_flip', False))
    self._init = jax.jit(vmap(functools.partial(create_train_state, self.model, self.tx,
                                                sample_input=sample, use_ema=use_ema)),
                         out_shardings=replicated)
    step_fn = functools.partial(train_step, label_smoothing=config.get('label_smoothing', 0.0),
                                ema_decay=config.get('ema_decay', 0.0),
                                aux_loss_weight=config.get('aux_loss_weight', 0.0))
    batch_size, model = config.batch_size, self.model

    def train_on_batch(state, images, labels, keys, rates):
      # A replica's traced dropout rates become fields of its copy of the model.
      apply_fn = model.clone(**rates).apply if rates else None
      dropout_key, aug_key = keys
      # Augmentation randomness, like dropout's, is a function of the step alone.
      inputs = data_lib.augment(images, jax.random.fold_in(aug_key, state.step), aug)
      batch = jax.lax.with_sharding_constraint({'image': inputs, 'label': labels}, batched)
      return step_fn(state, batch, dropout_key, apply_fn=apply_fn)

    def train_on_slice(state, images, labels, perm, index, keys, rates):
      idx = jax.lax.dynamic_slice(perm, (index * batch_size,), (batch_size,))
      return train_on_batch(state, images[idx], labels[idx], keys, rates)

    def train_on_slices(state, images, labels, perm, start, keys, rates):
      def body(carry, i):
        state, totals = carry
        state, metrics = train_on_slice(state, images, labels, perm, start + i, keys, rates)
        return (state, accumulate(totals, metrics)), None
      shapes = jax.eval_shape(train_on_slice, state, images, labels, perm, start, keys,
                              rates)[1]
      zeros = {k: jnp.full(v.shape, NO_BAD_STEP if k == 'bad_step' else 0, v.dtype)
               for k, v in shapes.items()}
      (state, totals), _ = jax.lax.scan(body, (state, zeros),
                                        jnp.arange(self.steps_per_call))
      return state, totals

    def eval_on_batch(state, images, labels, mask):
      inputs = data_lib.augment(images, None, aug, train=False)
      batch = {'image': inputs, 'label': labels, 'mask': mask}
      batch = jax.lax.with_sharding_constraint(batch, batched)
      return eval_step(state, batch, use_ema=use_ema, flip=eval_flip)

    def eval_on_slice(state, images, labels, idx, mask):
      return eval_on_batch(state, images[idx], labels[idx], mask)

    if self.streamed:
      train_fn, data_axes = train_on_batch, (None, None)
    else:
      train_fn = train_on_slice if self.steps_per_call == 1 else train_on_slices
      data_axes = (None, None, 0, None)  # images, labels, per-replica order, index
    self._train = jax.jit(vmap(train_fn, in_axes=(0, *data_axes, 0, 0)),
                          donate_argnums=0, out_shardings=(replicated, replicated))
    eval_fn = eval_on_batch if self.streamed else eval_on_slice
    self._eval = jax.jit(vmap(eval_fn, in_axes=(0, None, None, None) +
                              (() if self.streamed else (None,))),
                         out_shardings=replicated)
    self._permutation = jax.jit(vmap(data_lib.epoch_permutation, in_axes=(0, None, None)),
                                static_argnums=2)

  def init_state(self) -> TrainState:
    """A fresh, replicated train state (with a leading replica axis for variants)."""
    return self._init(self.init_key)

  def abstract_state(self):
    """Shapes/dtypes/shardings of the train state, for restoring without initialising."""
    return jax.eval_shape(self._init, self.init_key)

  def batches(self, start_step: int) -> Iterator[tuple]:
    """The data arguments of the train calls from ``start_step`` on.

    In memory: the device arrays, the epoch's permutation (a function of (seed,
    epoch); one per replica) and the index in it of the call's first batch; one item
    per call of ``steps_per_call`` steps. Streamed: the global image and label
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
    for step in itertools.count(start_step, self.steps_per_call):
      if step // self.steps_per_epoch != epoch:
        epoch = step // self.steps_per_epoch
        perm = self._permutation(self.data_key, epoch, self.num_train)
      yield images, labels, perm, step % self.steps_per_epoch

  def compile(self, state, start_step: int = 0):
    """Compiles the train call ahead of time for this run's data.

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
    self._train = self._train.lower(state, *first, self.keys, self.rates).compile()
    return time.perf_counter() - t0, itertools.chain([first], batches)

  def train_step(self, state, args):
    """One call (``steps_per_call`` steps) on the data arguments from :meth:`batches`.

    Returns:
      ``(state, metrics)``: metrics summed over the call's steps (see
      :func:`~cnn_jax.train.steps.accumulate`), per replica with variants.
    """
    return self._train(state, *args, self.keys, self.rates)

  def _eval_batches(self, split: str) -> Iterator[tuple]:
    if self.streamed:
      name = {'train': self.config.dataset.train_split,
              'eval': self.config.dataset.eval_split,
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
    """Loss, accuracy (and top-5 with more than 10 classes) over a split.

    Args:
      state: the state to evaluate.
      split: ``'train'`` (the training split, in evaluation mode), ``'eval'`` or
        ``'test'``.

    Returns:
      ``{'loss', 'accuracy'[, 'top5_accuracy']}``: floats, or (K,) float arrays for
      K replicas.
    """
    totals = None
    for args in self._eval_batches(split):
      out = self._eval(state, *args)
      totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
    totals = jax.device_get(totals)
    value = float if self.num_replicas is None else np.asarray
    result = {'loss': value(totals['loss_sum'] / totals['count']),
              'accuracy': value(totals['correct'] / totals['count'])}
    if self.config.model.get('num_classes', 10) > 10:
      result['top5_accuracy'] = value(totals['correct_top5'] / totals['count'])
    return result


def _progress(total: int, initial: int):
  """A tqdm bar on interactive terminals, None otherwise (logs stay line-based)."""
  if not sys.stderr.isatty() or jax.process_index() != 0:
    return None
  return tqdm.tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True)


def _meta(replicas: int | None = None, best_eval_accuracy=-1.0, best_eval_step=-1,
          elapsed_s: float = 0.0, epoch_sums=None, epoch_steps: int = 0) -> dict:
  """Run bookkeeping saved beside the state, so a resumed run reports like an unbroken one.

  ``epoch_sums`` are the running (loss, accuracy) sums of the current epoch, kept in
  float32 on both sides so a resumed epoch mean is bitwise the uninterrupted one. With
  K replicas the best-eval and epoch fields get a leading (K,) axis.
  """
  lead = () if replicas is None else (replicas,)
  sums = np.zeros(lead + (2,)) if epoch_sums is None else epoch_sums
  return {'best_eval_accuracy': np.broadcast_to(best_eval_accuracy, lead).astype(np.float32),
          'best_eval_step': np.broadcast_to(best_eval_step, lead).astype(np.int32),
          'elapsed_s': np.array(elapsed_s, np.float32),
          'epoch_sums': np.asarray(sums, np.float32),
          'epoch_steps': np.array(epoch_steps, np.int32)}


def _read_workdir_record(workdir: str) -> dict:
  """The parsed ``config.json`` of a workdir (its config, variants and environment)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir} is not a training workdir')
  with open(path) as f:
    return json.load(f)


def _config_from_record(record: dict) -> ml_collections.ConfigDict:
  def tuples(value):
    if isinstance(value, dict):
      return {k: tuples(v) for k, v in value.items()}
    return tuple(tuples(v) for v in value) if isinstance(value, list) else value

  return ml_collections.ConfigDict(tuples(record['config']))


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (JSON lists turned back into tuples).

  Args:
    workdir: a run directory written by :func:`train_and_evaluate`.

  Returns:
    The ConfigDict.

  Raises:
    FileNotFoundError: if the workdir has no ``config.json``.
  """
  return _config_from_record(_read_workdir_record(workdir))


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
  record = _read_workdir_record(workdir)
  config, variants = _config_from_record(record), record.get('variants')
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{workdir} has no checkpoints/ folder: train it first with '
                            f'python -m experiments.train --workdir {workdir}')
  if variants is not None and which == 'best':
    raise ValueError(f'{workdir} holds {len(variants)} vmapped replicas, each with its own '
                     f'best step (see replica_*/summary.json); name a step instead of best')
  trainer = Trainer(config, variants=variants)
  mngr = checkpoint.manager(directory, read_only=True)
  target = {'state': trainer.abstract_state(), 'meta': _meta(trainer.num_replicas)}
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
    ``{'step', 'split', 'loss', 'accuracy'[, 'top5_accuracy']}`` (lists, one value per
    replica, for a workdir of vmapped replicas).

  Raises:
    FileNotFoundError: if there is no such checkpoint.
    ValueError: for ``split='eval'`` on a run without an eval split.
    checkpoint.CheckpointError: if it cannot be restored.
  """
  trainer, step, state = restore_workdir(workdir, which)
  if split == 'eval' and not trainer.has_eval:
    raise ValueError(f'the run in {workdir} has no eval split')
  result = trainer.evaluate(state, split)
  return {'step': step, 'split': split,
          **{k: np.asarray(v).tolist() for k, v in result.items()}}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, log=print,
                       mesh=None, variants=None):
  """Trains ``config.model`` on ``config.dataset``, resuming from ``workdir`` if possible.

  Args:
    config: the experiment config (see ``experiments/configs/fashion_mnist_cnn.py``).
    workdir: run directory; created if missing, resumed if it holds checkpoints.
    log: called with human-readable progress lines.
    mesh: device mesh (default: every device, data parallel).
    variants: None for one run; or one dict of vmappable overrides per replica to
      train them all in one vmapped program (see :func:`cnn_jax.train.replicas.
      train_replicas`, which documents the workdir layout).

  Returns:
    The summary dict also written to ``workdir/summary.json``; with variants, the
    list of per-replica summaries.

  Raises:
    ValueError: for a bad config or a workdir holding a different experiment.
    FloatingPointError: when the loss or gradients become non-finite (the step is
      named; the last checkpoint is left intact).
    checkpoint.CheckpointError: when the workdir's checkpoint cannot be restored.
  """
  t_start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  _check_same_config(workdir, config.to_dict(), _check_variants(config, variants))
  trainer = Trainer(config, mesh, variants=variants)

  mngr = checkpoint.manager(os.path.join(workdir, 'checkpoints'),
                            keep=config.get('keep_checkpoints', 2))
  try:
    return _train(config, workdir, trainer, mngr, log, t_start)
  finally:
    mngr.close()


def replica_dir(index: int) -> str:
  """The folder, inside a workdir of vmapped replicas, of replica ``index``'s files."""
  return f'replica_{index:02d}'


def _replica_dirs(workdir: str, trainer: Trainer) -> list:
  """Where each replica's metrics and summary go: the workdir itself for one run."""
  if trainer.num_replicas is None:
    return [workdir]
  return [os.path.join(workdir, replica_dir(i)) for i in range(trainer.num_replicas)]


def _train(config, workdir: str, trainer: Trainer, mngr, log, t_start: float):
  """The body of :func:`train_and_evaluate` once the workdir and trainer are set up.

  Host-side bookkeeping keeps one entry per replica (a single run is one replica
  whose arrays have no replica axis on the device).
  """
  k = trainer.num_replicas
  meta = _meta(k)
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
    saved = {'config': config.to_dict(), 'environment': environment()}
    if k is not None:
      saved['variants'] = trainer.variants
    with open(config_path, 'w') as f:
      json.dump(saved, f, indent=2, default=str)
  summary_path = os.path.join(workdir, SUMMARY_FILE)
  if start_step >= trainer.total_steps and os.path.exists(summary_path):
    with open(summary_path) as f:  # a finished run: report it again, rewrite nothing
      saved = json.load(f)
    return saved if k is None else saved['replicas']
  dirs = _replica_dirs(workdir, trainer)
  for directory in dirs:
    os.makedirs(directory, exist_ok=True)
  r = len(dirs)
  # Host bookkeeping has a leading (R,) axis; a single run's checkpoint has none.
  per_replica = lambda x: np.asarray(x).reshape(r, *np.shape(x)[1 if k else 0:])
  unbatch = (lambda x: x) if k else (lambda x: x[0])
  prior_elapsed = float(meta['elapsed_s'])
  best_acc = per_replica(meta['best_eval_accuracy']).astype(np.float64)
  best_step = per_replica(meta['best_eval_step']).astype(np.int64)
  epoch_sums = per_replica(meta['epoch_sums']).astype(np.float32)  # (R, 2): loss, accuracy
  epoch_steps = int(meta['epoch_steps'])
  num_params = sum(int(np.prod(p.shape[1 if k else 0:])) for p in jax.tree.leaves(state.params))
  writers = [MetricsWriter(d, start_step, tensorboard=config.get('tensorboard', True))
             for d in dirs]
  compile_s, batches = trainer.compile(state, start_step)

  spe, total, per_call = trainer.steps_per_epoch, trainer.total_steps, trainer.steps_per_call
  log_every = config.get('log_every_steps', 0) or spe
  ckpt_every = config.get('checkpoint_every_steps', 0) or spe
  elapsed = lambda: prior_elapsed + time.perf_counter() - t_start

  def save(step, eval_accuracy=None):
    meta_now = _meta(k, unbatch(best_acc), unbatch(best_step), elapsed(),
                     unbatch(epoch_sums), epoch_steps)
    checkpoint.save(mngr, step, {'state': state, 'meta': meta_now}, eval_accuracy)

  def replica_name(i):
    return '' if k is None else f' (replica {i}: {trainer.variants[i]})'

  bar = _progress(total, start_step)
  acc, t_interval, images_seen, train_time = None, time.perf_counter(), 0, 0.0
  for step, args in zip(range(start_step, total, per_call), batches):
    state, metrics = trainer.train_step(state, args)
    acc = accumulate(acc, metrics)
    done = step + per_call
    end_of_epoch = done % spe == 0
    if done % log_every and done % ckpt_every and not end_of_epoch and done != total:
      if bar is not None:
        bar.update(per_call)
      continue
    # A sync point: fetch the interval's metrics (one host transfer), check finiteness.
    acc = jax.tree.map(per_replica, jax.device_get(acc))
    bad = np.flatnonzero(acc['bad_step'] != NO_BAD_STEP)
    if bad.size:
      i = bad[np.argmin(acc['bad_step'][bad])]
      bad_step = int(acc['bad_step'][i])
      raise FloatingPointError(
          f'non-finite loss or gradients at step {bad_step} (epoch {bad_step // spe + 1})'
          f'{replica_name(i)}; training stopped. The last checkpoint in '
          f'{workdir}/checkpoints (step {mngr.latest_step()}) is intact. Lower '
          f'optimizer.learning_rate, enable optimizer.grad_clip_norm, or check the data.')
    seconds = time.perf_counter() - t_interval
    n = int(acc['count'][0])
    images_seen += n * config.batch_size * r
    train_time += seconds
    epoch_sums = epoch_sums + np.stack([acc['loss'], acc['accuracy']], -1).astype(np.float32)
    epoch_steps += n
    means = [{} for _ in dirs]
    if end_of_epoch:  # the epoch's mean, beside the interval's
      means = [{'epoch_loss': sums[0] / epoch_steps, 'epoch_accuracy': sums[1] / epoch_steps}
               for sums in epoch_sums]
      epoch_sums, epoch_steps = np.zeros_like(epoch_sums), 0
    records = [writer.write(done, 'train', epoch=done / spe, loss=acc['loss'][i] / n,
                            accuracy=acc['accuracy'][i] / n,
                            learning_rate=float(trainer.schedule(step + per_call - 1)),
                            images_per_sec=n * config.batch_size * r / seconds,
                            elapsed_s=elapsed(), **means[i])
               for i, writer in enumerate(writers)]
    acc = None
    eval_accuracy = None
    if end_of_epoch and trainer.has_eval:
      result = {key: per_replica(v) for key, v in trainer.evaluate(state, 'eval').items()}
      better = result['accuracy'] >= best_acc  # ties: the later step, as checkpoint.py keeps
      best_acc = np.where(better, result['accuracy'], best_acc)
      best_step = np.where(better, done, best_step)
      eval_accuracy = float(np.mean(result['accuracy']))
      for i, (writer, record) in enumerate(zip(writers, records)):
        values = {key: float(v[i]) for key, v in result.items()}
        writer.write(done, 'eval', epoch=done / spe, elapsed_s=elapsed(), **values)
        record.update({f'eval_{key}': v for key, v in values.items()})
    if bar is not None:
      bar.update(per_call)
      bar.set_postfix(epoch=f'{done / spe:.2f}', loss=f'{records[0]["loss"]:.4f}',
                      acc=f'{records[0]["accuracy"]:.4f}',
                      img_s=f'{records[0]["images_per_sec"]:.0f}')
    elif end_of_epoch:
      mean = lambda key: np.mean([rec[key] for rec in records])
      span = lambda key: (f' (mean of {r}: {min(rec[key] for rec in records):.4f}-'
                          f'{max(rec[key] for rec in records):.4f})' if k else '')
      extra = (f'  eval loss {mean("eval_loss"):.4f} acc {mean("eval_accuracy"):.4f}'
               f'{span("eval_accuracy")}' if 'eval_accuracy' in records[0] else '')
      eta = (total - done) * seconds / max(n, 1)
      log(f'epoch {done // spe}/{config.num_epochs}  step {done}/{total}  train loss '
          f'{mean("epoch_loss"):.4f} acc {mean("epoch_accuracy"):.4f}{extra}  '
          f'{records[0]["images_per_sec"]:.0f} img/s  ETA {eta:.0f}s')
    # Every evaluated step is saved too, so the best one can be kept and restored.
    if done % ckpt_every == 0 or eval_accuracy is not None or done == total:
      save(done, eval_accuracy)
    t_interval = time.perf_counter()
  if bar is not None:
    bar.close()

  test = {key: per_replica(v) for key, v in trainer.evaluate(state, 'test').items()}
  train_eval = ({key: per_replica(v) for key, v in trainer.evaluate(state, 'train').items()}
                if config.get('evaluate_train', False) else None)
  summaries = []
  for i, (writer, directory) in enumerate(zip(writers, dirs)):
    values = {key: float(v[i]) for key, v in test.items()}
    writer.write(total, 'test', epoch=total / spe, elapsed_s=elapsed(), **values)
    writer.close()
    summary = {
        'test_accuracy': values['accuracy'], 'test_loss': values['loss'],
        **({'test_top5_accuracy': values['top5_accuracy']} if 'top5_accuracy' in values
           else {}),
        **({'train_accuracy': float(train_eval['accuracy'][i]),
            'train_loss': float(train_eval['loss'][i])} if train_eval else {}),
        'best_eval_accuracy': float(best_acc[i]) if best_step[i] >= 0 else None,
        'best_eval_step': int(best_step[i]) if best_step[i] >= 0 else None,
        'steps': total, 'epochs': config.num_epochs, 'wall_s': elapsed(),
        'compile_s': compile_s,
        'train_images_per_sec': images_seen / train_time if train_time else None,
        'num_params': num_params,
    }
    if k is not None:
      summary.update(replicas=k, variant=trainer.variants[i])
    summaries.append(summary)
    if jax.process_index() == 0 and k is not None:
      with open(os.path.join(directory, SUMMARY_FILE), 'w') as f:
        json.dump(summary, f, indent=2)
  result = summaries[0] if k is None else summaries
  if jax.process_index() == 0:
    with open(summary_path, 'w') as f:
      json.dump(result if k is None else {'replicas': summaries}, f, indent=2)
  return result


def format_summary(summary: dict) -> str:
  """The final results as a small markdown table."""
  def fmt(v):
    if isinstance(v, float):
      return f'{v:.4f}' if abs(v) < 10 else f'{v:,.1f}'
    return f'{v:,}' if isinstance(v, int) else str(v)
  rows = [f'| {k} | {fmt(v)} |' for k, v in summary.items()]
  return '\n'.join(['| result | value |', '|---|---|'] + rows)
