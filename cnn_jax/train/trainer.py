"""The trainer: one run's model, optimizer, data on the devices and compiled calls.

Small datasets live on the devices for the whole run (replicated); each step gathers
its batch there from a per-epoch permutation that depends only on (seed, epoch), and
the dropout key of step ``s`` is ``fold_in(key, s)``. A run restored from the
checkpoint at step ``S`` therefore continues exactly as an uninterrupted run would.

The compiled bodies are module-level functions; :class:`Trainer` binds the run's
settings to them with ``functools.partial`` and jits the result once.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import data as data_lib
from cnn_jax import models
from cnn_jax.data import catalog
from cnn_jax.train import optim, replicas, sharding
from cnn_jax.train.steps import NO_BAD_STEP, TrainState, accumulate, create_train_state
from cnn_jax.train.steps import eval_step, train_step


def build_model(config):
  """The model named by ``config.model`` (``half_precision`` -> bfloat16 compute)."""
  kwargs = dict(config.model)
  name = kwargs.pop('name')
  if config.half_precision:
    kwargs['dtype'] = jnp.bfloat16
  return models.create(name, **kwargs)


def eval_indices(num_examples: int, batch_size: int):
  """Index and mask arrays covering ``num_examples`` in whole batches (padded, masked)."""
  num_batches = -(-num_examples // batch_size)
  idx = np.arange(num_batches * batch_size)
  mask = idx < num_examples
  return (np.where(mask, idx, 0).reshape(num_batches, batch_size),
          mask.reshape(num_batches, batch_size))


def run_keys(seed):
  """The (init, dropout, data, augmentation) keys of a run; a function of its seed."""
  return tuple(jax.random.split(jax.random.key(seed), 4))


def resolve_steps_per_call(config, steps_per_epoch: int, streamed: bool = False) -> int:
  """Steps per compiled call: ``config.steps_per_call`` (0: a whole epoch), checked.

  Raises:
    ValueError: if it does not divide the epoch, the log and checkpoint intervals, or
      is above 1 with streamed data.
  """
  calls = config.steps_per_call
  num_steps = steps_per_epoch if calls == 0 else calls
  if not isinstance(num_steps, int) or num_steps < 1:
    raise ValueError(f'steps_per_call={calls!r} must be an int >= 1, or 0 for an epoch')
  if streamed and num_steps > 1:
    raise ValueError(f'steps_per_call={calls} needs the data in device memory; streamed '
                     f'datasets run one step per call (set steps_per_call=1)')
  for name, every in (('steps per epoch', steps_per_epoch),
                      ('log_every_steps', config.log_every_steps),
                      ('checkpoint_every_steps', config.checkpoint_every_steps)):
    if every and every % num_steps:
      raise ValueError(f'steps_per_call={num_steps} must divide {name} ({every}): the '
                       f'loop can only log, evaluate and checkpoint between calls')
  return num_steps


# The compiled bodies. `keys` is a replica's (dropout, augmentation) key pair; `rates`
# maps model fields to its traced dropout rates (empty for a single run).

def train_on_batch(state, images, labels, keys, rates, *, model, step_fn, augment,
                   batch_sharding):
  """Augments one batch and takes a train step on it."""
  # A replica's traced dropout rates become fields of its copy of the model.
  apply_fn = model.clone(**rates).apply if rates else None
  dropout_key, aug_key = keys
  # Augmentation randomness, like dropout's, is a function of the step alone.
  inputs = data_lib.augment(images, jax.random.fold_in(aug_key, state.step), augment)
  batch = jax.lax.with_sharding_constraint({'image': inputs, 'label': labels},
                                           batch_sharding)
  return step_fn(state, batch, dropout_key, apply_fn=apply_fn)


def train_on_slice(state, images, labels, perm, index, keys, rates, *, batch_size,
                   on_batch):
  """A train step on batch ``index`` of the epoch's permutation ``perm``."""
  idx = jax.lax.dynamic_slice(perm, (index * batch_size,), (batch_size,))
  return on_batch(state, images[idx], labels[idx], keys, rates)


def train_on_slices(state, images, labels, perm, start, keys, rates, *, num_steps,
                    on_slice):
  """``num_steps`` train steps from batch ``start`` on, as one ``lax.scan``.

  Returns:
    ``(state, metrics)`` with the metrics summed over the steps.
  """
  def body(carry, i):
    state, totals = carry
    state, metrics = on_slice(state, images, labels, perm, start + i, keys, rates)
    return (state, accumulate(totals, metrics)), None
  shapes = jax.eval_shape(on_slice, state, images, labels, perm, start, keys, rates)[1]
  zeros = {k: jnp.full(v.shape, NO_BAD_STEP if k == 'bad_step' else 0, v.dtype)
           for k, v in shapes.items()}
  (state, totals), _ = jax.lax.scan(body, (state, zeros), jnp.arange(num_steps))
  return state, totals


def eval_on_batch(state, images, labels, mask, *, augment, batch_sharding, use_ema,
                  flip):
  """Evaluation sums over one (masked) batch."""
  inputs = data_lib.augment(images, None, augment, train=False)
  batch = {'image': inputs, 'label': labels, 'mask': mask}
  batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
  return eval_step(state, batch, use_ema=use_ema, flip=flip)


def eval_on_slice(state, images, labels, idx, mask, *, on_batch):
  """Evaluation sums over the examples ``idx`` of a split held on the devices."""
  return on_batch(state, images[idx], labels[idx], mask)


class Trainer:
  """Holds the compiled steps and the data of one run; see ``loop.train_and_evaluate``.

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
      (:func:`cnn_jax.train.replicas.is_vmappable`) to values, e.g.
      ``[{'seed': 0}, {'seed': 1}]``.
    prepare_data: False for read-only tools: a dataset that is not prepared raises
      ``NotPreparedError`` instead of being prepared or downloaded.

  Raises:
    ValueError: for batch sizes below 1, not divisible by the devices, or larger than
      the run's splits (checked before anything is compiled or written).
  """

  def __init__(self, config, mesh=None, splits=None, variants=None,
               prepare_data: bool = True):
    self.config = config
    self.variants = replicas.check_variants(config, variants)
    self.num_replicas = None if variants is None else len(self.variants)
    self.mesh = mesh or sharding.make_mesh()
    for name in ('batch_size', 'eval_batch_size'):
      if not isinstance(config[name], int) or config[name] < 1:
        raise ValueError(f'{name}={config[name]!r} must be an int >= 1')
    sharding.check_batch_size(config.batch_size, self.mesh)
    sharding.check_batch_size(config.eval_batch_size, self.mesh, 'eval_batch_size')
    self.replicated = sharding.replicated(self.mesh)
    self.batched = sharding.batch_sharded(self.mesh)
    dataset = config.dataset
    self.streamed = splits is None and (catalog.get(dataset.name).stream or dataset.stream)
    self.has_eval = bool(dataset.eval_split)
    self.augment = data_lib.augment_config(dataset)
    example = self._load_data(splits, prepare_data)
    largest = max(self.split_sizes.values())
    if config.eval_batch_size > largest:
      # Evaluation pads to whole batches: beyond the largest split a batch is padding.
      raise ValueError(f'eval_batch_size={config.eval_batch_size} is larger than the '
                       f'largest split of the run ({largest} examples); use at most that')
    self.steps_per_epoch = self.num_train // config.batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f'batch_size={config.batch_size} is larger than the training set '
                       f'({self.num_train} examples)')
    self.steps_per_call = resolve_steps_per_call(config, self.steps_per_epoch,
                                                 self.streamed)
    self.total_steps = self.steps_per_epoch * config.num_epochs
    self.model = build_model(config)
    self.tx = optim.make_optimizer(config.optimizer, self.total_steps)
    self.schedule = optim.make_schedule(config.optimizer, self.total_steps)
    self._make_keys()
    self._jit_calls(example)

  def _load_data(self, splits, may_prepare: bool) -> tuple:
    """Puts the training split on the devices (or opens its stream).

    Sets ``num_train`` and ``split_sizes`` (``{'train' | 'eval' | 'test': examples}``).

    Returns:
      ``(shape, dtype)`` of one training example as the train call receives it.
    """
    dataset = self.config.dataset
    if self.streamed:
      if self.num_replicas is not None:
        raise ValueError('vmapped replicas need the dataset in device memory; '
                         f'{dataset.name} is streamed from the host')
      builder = data_lib.ensure_prepared(dataset, may_prepare)
      names = {'train': dataset.train_split, 'eval': dataset.eval_split,
               'test': dataset.test_split}
      self.split_sizes = {key: builder.info.splits[name].num_examples
                          for key, name in names.items() if name}
      self.num_train = self.split_sizes['train']
      feature = builder.info.features[builder.info.supervised_keys[0]]
      shape, dtype = tuple(feature.shape), feature.np_dtype
      if None in shape:  # variable-size images: the host crops and resizes them
        shape = (self.augment.image_size,) * 2 + shape[-1:]
        self.augment = self.augment.after_host_crop()
      return shape, dtype
    splits = data_lib.load(dataset, may_prepare) if splits is None else splits
    train_x, train_y = splits['train']
    self.num_train = len(train_y)
    self.split_sizes = {key: len(labels) for key, (_, labels) in splits.items()}
    self._splits = {'train': data_lib.to_global_array((train_x, train_y), self.replicated)}
    self._host_splits = {k: v for k, v in splits.items() if k != 'train'}
    return train_x.shape[1:], train_x.dtype

  def _make_keys(self):
    """Per-replica seeds, PRNG keys and traced dropout rates."""
    vmap = jax.vmap if self.num_replicas else (lambda f: f)
    if self.num_replicas is None:
      seeds, self.rates = self.config.seed, {}
    else:
      seeds = np.array([v.get('seed', self.config.seed) for v in self.variants])
      # Model field -> (K, ...) values; tuples (per-block rates) stay per-block.
      self.rates = {k.split('.')[1]: jax.tree.map(lambda *xs: np.array(xs, np.float32),
                                                  *[v[k] for v in self.variants])
                    for k in self.variants[0] if k != 'seed'}
    self.init_key, dropout_key, self.data_key, aug_key = vmap(run_keys)(seeds)
    self.keys = (dropout_key, aug_key)

  def _jit_calls(self, example):
    """Jits the init, train, eval and permutation calls (vmapped over replicas)."""
    config = self.config
    vmap = jax.vmap if self.num_replicas else (lambda f, in_axes=0: f)
    sample = jax.eval_shape(
        lambda x: data_lib.augment(x, None, self.augment, train=False),
        jax.ShapeDtypeStruct((config.batch_size,) + tuple(example[0]), example[1]))
    use_ema = bool(config.ema_decay)
    self._init = jax.jit(vmap(functools.partial(create_train_state, self.model, self.tx,
                                                sample_input=sample, use_ema=use_ema)),
                         out_shardings=self.replicated)
    step_fn = functools.partial(train_step, label_smoothing=config.label_smoothing,
                                ema_decay=config.ema_decay,
                                aux_loss_weight=config.aux_loss_weight)
    on_batch = functools.partial(train_on_batch, model=self.model, step_fn=step_fn,
                                 augment=self.augment, batch_sharding=self.batched)
    evaluate = functools.partial(eval_on_batch, augment=self.augment,
                                 batch_sharding=self.batched, use_ema=use_ema,
                                 flip=config.eval_flip)
    if self.streamed:
      train_fn, data_axes = on_batch, (None, None)
      eval_fn, eval_axes = evaluate, (None, None, None)
    else:
      on_slice = functools.partial(train_on_slice, batch_size=config.batch_size,
                                   on_batch=on_batch)
      train_fn = (on_slice if self.steps_per_call == 1 else
                  functools.partial(train_on_slices, num_steps=self.steps_per_call,
                                    on_slice=on_slice))
      data_axes = (None, None, 0, None)  # images, labels, per-replica order, index
      eval_fn = functools.partial(eval_on_slice, on_batch=evaluate)
      eval_axes = (None, None, None, None)  # images, labels, idx, mask
    self._train_fn = jax.jit(vmap(train_fn, in_axes=(0, *data_axes, 0, 0)),
                             donate_argnums=0,
                             out_shardings=(self.replicated, self.replicated))
    self._train = self._train_fn
    self._eval = jax.jit(vmap(eval_fn, in_axes=(0, *eval_axes)),
                         out_shardings=self.replicated)
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

    Calling it again recompiles from the jitted function (e.g. for another state).

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
    self._train = self._train_fn.lower(state, *first, self.keys, self.rates).compile()
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
      dataset = self.config.dataset
      name = {'train': dataset.train_split, 'eval': dataset.eval_split,
              'test': dataset.test_split}[split]
      stream = data_lib.stream(dataset, name, batch_size=self.config.eval_batch_size,
                               seed=self.config.seed, train=False)
      for batch in data_lib.prefetch_to_device(stream, self.batched):
        yield batch['image'], batch['label'], batch['mask']
      return
    if split not in self._splits:
      self._splits[split] = data_lib.to_global_array(self._host_splits[split],
                                                     self.replicated)
    images, labels = self._splits[split]
    idx, mask = eval_indices(labels.shape[0], self.config.eval_batch_size)
    for b in range(idx.shape[0]):
      yield images, labels, idx[b], mask[b]

  def evaluate(self, state, split: str) -> dict:
    """Loss, accuracy (and top-5 for models with more than 10 classes) over a split.

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
    if 'correct_top5' in totals:
      result['top5_accuracy'] = value(totals['correct_top5'] / totals['count'])
    return result
