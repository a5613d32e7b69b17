"""The config schema: every field the library reads, with its default and meaning.

The one home for defaults. Library code reads ``config.x`` (a missing field is an
error naming it), so every experiment config starts from :func:`get_config` here and
overrides what it changes. A new knob is added here first (see the README's "add a
config knob").

As an experiment this is the simple CNN on Fashion-MNIST, offline: two 3x3 conv blocks
(32, 64 channels) with 2x2 max pooling and dropout, a 128-unit dense layer, Adam with a
one-cycle schedule. Fashion-MNIST is read through TFDS; when it is not prepared yet it
is built once from the real IDX files of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``), so it needs no download.

The rules of the fields live here too: :func:`validate` checks a resolved config
before anything is built, traced or written, and raises :class:`ConfigError`, one line
naming the field, its value and what is allowed. The entry points under
``experiments/`` turn it into ``error: ...`` on stderr and exit code 2. A new knob with
a domain gets its rule in ``_RULES`` (a model field: ``_MODEL_RULES``, by field name).
"""

from __future__ import annotations

import difflib
import math
import numbers

import ml_collections

from cnn_jax import config_utils, models, summary
from cnn_jax.data import catalog, tfds_data
from cnn_jax.data.augmentation import PADDING_MODES as AUGMENT_PADDING_MODES
from cnn_jax.models.common import ACTIVATIONS, POOLS
from cnn_jax.models.simple_cnn import HEADS
from cnn_jax.ops.shapes import PADDING_MODES
from cnn_jax.train import optim
from cnn_jax.train.trainer import build_model, resolve_steps_per_call


def get_config() -> ml_collections.ConfigDict:
  """Every field the library reads, at its default value."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # initialisation, batch order, dropout and augmentation keys

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'fashion_mnist'  # see cnn_jax.data.catalog for the known names
  # TFDS data folder; empty: $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.dataset.data_dir = ''
  # Prepared from the Debian package's IDX files on first use when missing (offline).
  config.dataset.prepare_from_dir = '/usr/share/datasets/fashion-mnist'
  config.dataset.download = False  # True lets TFDS download a missing dataset
  config.dataset.train_split = 'train'  # e.g. 'train[:90%]' with eval_split 'train[90%:]'
  config.dataset.eval_split = ''  # empty: no validation split
  config.dataset.test_split = 'test'  # evaluated once, at the end
  config.dataset.stream = False  # stream from the host even if it fits in memory
  config.dataset.read_threads = 4  # streamed (large) datasets: batches read ahead on host
  # 'tfds', or 'files': read the IDX/CIFAR files of prepare_from_dir without TensorFlow
  config.dataset.reader = 'tfds'
  # >= 0: one fixed random permutation of the input positions (pixels, sequence steps),
  # drawn from this seed and applied to every split: removes locality, keeps the values
  # (the locality controls); -1: inputs as stored
  config.dataset.permute_seed = -1
  config.dataset.augment = ml_collections.ConfigDict()
  config.dataset.augment.crop_padding = 0  # CIFAR: 4
  config.dataset.augment.padding_mode = 'constant'  # crop padding: or 'reflect', 'edge'
  config.dataset.augment.flip = False  # random horizontal flips
  config.dataset.augment.random_resized_crop = False  # ImageNet-style
  config.dataset.augment.area_range = (0.08, 1.0)  # random resized crop: area fraction
  config.dataset.augment.aspect_ratio_range = (3 / 4, 4 / 3)  # and its aspect ratio
  config.dataset.augment.image_size = 0  # e.g. 224 for GoogLeNet; 0 keeps the stored size
  config.dataset.augment.eval_crop_fraction = 0.875  # central crop at evaluation (resized)
  config.dataset.augment.normalize = False  # subtract mean, divide by std per channel
  config.dataset.augment.mean = ()  # empty with normalize: the dataset's published stats
  config.dataset.augment.std = ()  # likewise

  # Per-block fields take one value or a tuple, so a config built on this one may
  # replace an int with a tuple (strides = (1, 2, 2)): no type locking here.
  config.model = ml_collections.ConfigDict(type_safe=False)
  # The model's fields are its constructor's (cnn_jax.models.<name>); these are simple_cnn's.
  config.model.name = 'simple_cnn'  # a registered name, cnn_jax.models.names()
  config.model.features = (32, 64)  # output channels of each conv block
  config.model.kernel_size = 3  # per block or one for all
  config.model.strides = 1  # conv stride, per block or one for all
  config.model.batch_norm = False  # BatchNorm after each conv (per block or one for all)
  config.model.pool = 'max'  # after each block: 'max', 'avg', 'none' or 'conv' (strided)
  config.model.dropout_rate = 0.25  # after each conv block, in [0, 1)
  # between the last block and the dense layers: 'dense' (flattened maps) or
  # 'global_avg' (each channel's mean over all positions: a global average pool)
  config.model.head = 'dense'
  config.model.hidden = (128,)  # dense layers of the head
  config.model.dense_dropout_rate = 0.5  # after each dense layer of the head

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'  # 'sgd', 'adam' or 'adamw'
  config.optimizer.learning_rate = 3e-3  # the peak of the schedule
  config.optimizer.schedule = 'one_cycle'  # 'constant', 'cosine', 'one_cycle', 'piecewise'
  config.optimizer.warmup_steps = 0  # constant/cosine/piecewise only
  config.optimizer.momentum = 0.9  # sgd only
  config.optimizer.nesterov = False  # sgd only
  config.optimizer.weight_decay = 0.0  # kernels only, never biases or BatchNorm
  config.optimizer.grad_clip_norm = 0.0  # 0: off
  # piecewise only: decay points as fractions of the run, each multiplying by decay_factor
  config.optimizer.boundaries = (0.5, 0.75)
  config.optimizer.decay_factor = 0.1

  config.batch_size = 128  # global: split over the devices
  config.eval_batch_size = 1000  # global; the last batch is padded and masked
  config.num_epochs = 6  # passes over the training split
  config.label_smoothing = 0.0  # target mass spread uniformly over the classes
  config.aux_loss_weight = 0.0  # auxiliary classifiers (GoogLeNet: 0.3)
  config.ema_decay = 0.0  # > 0: evaluate an EMA of the parameters
  config.eval_flip = False  # evaluate on each image and its mirror (with augment.flip)
  config.half_precision = False  # bfloat16 compute, float32 parameters

  config.steps_per_call = 1  # steps per compiled call, as one lax.scan; 0: a whole epoch
  config.evaluate_train = False  # also evaluate on the training split at the end (the gap)
  # Evaluate eval_split every N epochs (and after the last): long runs on small training
  # sets (hundreds of 1k-image epochs) would otherwise spend more time evaluating than
  # training. Each evaluated step is also checkpointed.
  config.eval_every_epochs = 1

  config.log_every_steps = 100  # train metrics every N steps (0: every epoch)
  # 0: every epoch; N: every N steps (and always after an evaluation and at the end)
  config.checkpoint_every_steps = 0
  config.keep_checkpoints = 2  # the latest K, plus the best by eval accuracy
  config.tensorboard = True  # if TensorFlow is installed

  # What one group (one compiled program) needs on a Dask cluster (--cluster): tasks
  # are submitted with these Dask worker resources, so a gpu=1 group only lands on a
  # worker started with --resources "GPU=1". 0: not requested. Ignored without --cluster.
  config.resources = ml_collections.ConfigDict()
  config.resources.cpu = 0  # Dask resource CPU (workers: --resources "CPU=N")
  config.resources.gpu = 0  # Dask resource GPU (workers: --resources "GPU=N")
  config.resources.memory_gb = 0.0  # Dask resource MEMORY in bytes (x 1e9)
  return config


# ---------------------------------------------------------------------------------------
# The rules. Each checker returns None for a good value, else what is allowed.


class ConfigError(ValueError):
  """A config value outside its field's domain; the message is one line."""

  def __init__(self, message: str):
    # Messages reused from the library may span lines; an error here is one line.
    super().__init__(' '.join(str(message).split()))


def _bad(field: str, value, allowed: str) -> ConfigError:
  return ConfigError(f'config.{field}={value!r}: {allowed}')


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def _int(low: int):
  def check(value):
    return None if _is_int(value) and value >= low else f'must be an int >= {low}'
  return check


def _real(low: float, high: float = math.inf, closed: str = '[)'):
  """A finite number in an interval, e.g. ``_real(0, 1)``: ``[0, 1)``."""
  text = f'{closed[0]}{low}, {"inf" if high == math.inf else high}{closed[1]}'

  def check(value):
    if not _is_real(value):
      return f'must be a finite number in {text}'
    above = value >= low if closed[0] == '[' else value > low
    below = value <= high if closed[1] == ']' else value < high
    return None if above and below else f'must be in {text}'
  return check


def _bool(value):
  return None if isinstance(value, bool) else 'must be True or False'


def _one_of(names):
  def check(value):
    if value in names:
      return None
    close = difflib.get_close_matches(str(value), [str(n) for n in names], n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    return f'must be one of {", ".join(map(repr, names))}{hint}'
  return check


def _each(check):
  """One value, or a list/tuple of them (per block, per layer)."""
  def check_each(value):
    if not isinstance(value, (list, tuple)):
      return check(value)
    allowed = next(filter(None, map(check, value)), None)
    return allowed and f'{allowed}, each entry'
  return check_each


def _padding(value):
  """None (the model's default), a mode name, an int >= 0, or sequences of those."""
  if value is None or (isinstance(value, str) and value.upper() in PADDING_MODES):
    return None
  if _is_int(value) and value >= 0:
    return None
  if isinstance(value, (list, tuple)) and value:
    return next(filter(None, map(_padding, value)), None)
  return (f'must be one of {", ".join(map(repr, PADDING_MODES))} (any case), an int >= 0, '
          f'or a list of those (per block, per side)')


# Fields with a domain of their own: dotted path -> checker.
_RULES = {
    'seed': _int(0),
    'dataset.name': _one_of(sorted(catalog.DATASETS)),
    'dataset.download': _bool,
    'dataset.stream': _bool,
    'dataset.read_threads': _int(1),
    'dataset.reader': _one_of(('tfds', 'files')),
    'dataset.permute_seed': _int(-1),
    'dataset.augment.crop_padding': _int(0),
    'dataset.augment.padding_mode': _one_of(AUGMENT_PADDING_MODES),
    'dataset.augment.flip': _bool,
    'dataset.augment.random_resized_crop': _bool,
    'dataset.augment.image_size': _int(0),
    'dataset.augment.eval_crop_fraction': _real(0, 1, '(]'),
    'dataset.augment.normalize': _bool,
    'optimizer.name': _one_of(optim.OPTIMIZERS),
    'optimizer.schedule': _one_of(optim.SCHEDULES),
    'optimizer.learning_rate': _real(0, closed='()'),
    'optimizer.warmup_steps': _int(0),
    'optimizer.momentum': _real(0, 1),
    'optimizer.nesterov': _bool,
    'optimizer.weight_decay': _real(0),
    'optimizer.grad_clip_norm': _real(0),
    'optimizer.decay_factor': _real(0, closed='()'),
    'batch_size': _int(1),
    'eval_batch_size': _int(1),
    'num_epochs': _int(1),
    'label_smoothing': _real(0, 1),
    'aux_loss_weight': _real(0),
    'ema_decay': _real(0, 1),
    'eval_flip': _bool,
    'half_precision': _bool,
    'steps_per_call': _int(0),
    'evaluate_train': _bool,
    'eval_every_epochs': _int(1),
    'log_every_steps': _int(0),
    'checkpoint_every_steps': _int(0),
    'keep_checkpoints': _int(1),
    'tensorboard': _bool,
}

# Model fields are each architecture's own (cnn_jax.models): rules by field name.
_COUNTS = ('features', 'hidden', 'num_classes', 'stage_sizes', 'groups')
_MODEL_RULES = (
    (lambda f: f.endswith('dropout_rate'), _each(_real(0, 1))),
    (lambda f: f in _COUNTS or f.endswith(('_features', 'kernel', 'kernel_size', 'stride',
                                           'strides', 'window')), _each(_int(1))),
    (lambda f: f.endswith('pool'), _each(_one_of(POOLS))),
    (lambda f: f.endswith('padding'), _padding),
    (lambda f: f == 'activation', _one_of(sorted(ACTIVATIONS))),
    (lambda f: f == 'head', _one_of(HEADS)),
    (lambda f: f == 'batch_norm', _each(_bool)),
    (lambda f: f == 'width', _real(0, closed='()')),
)


def _check_fields(config) -> None:
  for path, check in _RULES.items():
    value = config_utils.get_field(config, path)
    allowed = check(value)
    if allowed:
      raise _bad(path, value, allowed)


def _check_augment(config) -> None:
  """Ranges and the normalisation statistics of ``dataset.augment``."""
  augment = config.dataset.augment
  for field, high in (('area_range', 1), ('aspect_ratio_range', math.inf)):
    value = augment[field]
    if (len(value) != 2 or not all(map(_is_real, value)) or not 0 < value[0] <= value[1]
        or value[1] > high):
      raise _bad(f'dataset.augment.{field}', value,
                 f'must be (low, high) with 0 < low <= high{" <= 1" if high == 1 else ""}')
  moves = [f for f in ('crop_padding', 'flip', 'random_resized_crop') if augment[f]]
  if config.dataset.permute_seed >= 0 and moves:
    raise _bad('dataset.permute_seed', config.dataset.permute_seed,
               f'permuted inputs have no neighbourhoods for dataset.augment.{moves[0]} '
               f'to move; turn that augmentation off or set permute_seed=-1')
  if config.dataset.permute_seed >= 0 and (catalog.get(config.dataset.name).stream
                                           or config.dataset.stream):
    raise _bad('dataset.permute_seed', config.dataset.permute_seed,
               'permutes in-memory datasets only; set dataset.stream=False or '
               'permute_seed=-1')
  if not augment.normalize:
    return
  channels = catalog.get(config.dataset.name).example_shape[-1]
  counts = ' or '.join(map(str, sorted({1, channels})))
  for field in ('mean', 'std'):
    value = tuple(augment[field])
    if not all(map(_is_real, value)) or len(value) not in (0, 1, channels):
      raise _bad(f'dataset.augment.{field}', value,
                 f'must be empty (the dataset\'s published statistics) or hold {counts} '
                 f'numbers (one per channel)')
  if len(augment.std) != len(augment.mean) or min(augment.std, default=1) <= 0:
    raise _bad('dataset.augment.std', tuple(augment.std),
               f'must be positive and as many as the mean values {tuple(augment.mean)}')


def _split_sizes(config) -> dict[str, int] | None:
  """Examples in each split the run reads, from the prepared dataset's info.

  Returns:
    ``{'train': n, 'test': n[, 'eval': n]}``, or None when the dataset is not prepared
    (validation never prepares or downloads anything).
  """
  dataset = config.dataset
  for key in ('train_split', 'test_split'):
    if not dataset[key]:
      raise _bad(f'dataset.{key}', dataset[key], 'must name a split, e.g. \'train\'')
  builder = tfds_data.builder(dataset.name, dataset.data_dir)
  if not builder.is_prepared():
    return None
  sizes = {}
  for key in ('train', 'eval', 'test'):
    split = dataset[f'{key}_split']
    if not split:
      continue
    try:
      sizes[key] = builder.info.splits[split].num_examples
    except (KeyError, ValueError) as e:
      raise _bad(f'dataset.{key}_split', split,
                 f'not a split of the prepared {dataset.name}: {e}') from e
    if sizes[key] < 1:
      raise _bad(f'dataset.{key}_split', split, 'selects no examples')
  return sizes


def _check_sizes(config, sizes: dict[str, int] | None) -> int | None:
  """Batch sizes against the splits, and steps_per_call against the intervals.

  Returns:
    The steps per epoch, or None when the dataset is not prepared.
  """
  if sizes is None:
    # Without the dataset's info, its published sizes still bound an evaluation batch.
    largest = max(catalog.get(config.dataset.name).split_sizes.values())
    what = f'the largest published split of {config.dataset.name}'
  else:
    evaluated = ('eval', 'test') + (('train',) if config.evaluate_train else ())
    largest = max(sizes[k] for k in evaluated if k in sizes)
    what = 'the largest split this run evaluates'
  if config.eval_batch_size > largest:
    raise _bad('eval_batch_size', config.eval_batch_size,
               f'must be <= {largest}, {what} (a larger batch is only padding)')
  steps_per_epoch = None
  if sizes is not None:
    if config.batch_size > sizes['train']:
      raise _bad('batch_size', config.batch_size,
                 f'must be <= {sizes["train"]}, the examples of dataset.train_split='
                 f'{config.dataset.train_split!r}')
    steps_per_epoch = sizes['train'] // config.batch_size
  if steps_per_epoch is None and config.steps_per_call == 0:
    return None  # a whole epoch per call: nothing to divide without the epoch's length
  streamed = catalog.get(config.dataset.name).stream or config.dataset.stream
  try:
    # steps_per_epoch 0 (unknown) leaves out the epoch and checks the intervals only.
    resolve_steps_per_call(config, steps_per_epoch or 0, streamed)
  except ValueError as e:  # its message names the resolved count (an epoch for 0)
    raise _bad('steps_per_call', config.steps_per_call, str(e)) from e
  return steps_per_epoch


def _check_optimizer(config, steps_per_epoch: int | None) -> None:
  """The schedule's own checks (boundaries, warm-up), through the library's builder."""
  # An unknown run length (dataset not prepared) is taken as a long run: only the check
  # that the first decay falls after the warm-up then passes unchecked.
  total_steps = steps_per_epoch * config.num_epochs if steps_per_epoch else 2**31
  try:
    optim.make_optimizer(config.optimizer, total_steps)
  except ValueError as e:
    raise ConfigError(f'config.{e}') from e


def _check_model(config) -> None:
  """Known model, known fields, each field in its domain, and the input fits."""
  fields = dict(config.model)
  name = fields.pop('name')
  allowed = _one_of(models.names())(name)
  if allowed:
    raise _bad('model.name', name, allowed)
  try:
    model = build_model(config)
  except ValueError as e:  # a field the architecture does not have
    raise ConfigError(f'config.model: {e}') from e
  for field, value in fields.items():
    for applies, check in _MODEL_RULES:
      allowed = applies(field) and check(value)
      if allowed:
        raise _bad(f'model.{field}', value, allowed)
  shape = catalog.model_input_shape(config.dataset)
  if shape is None:  # variable-size images the config does not resize
    return
  try:
    summary.summarize(model, shape)
  # ValueError: names the layer where the input stops fitting (or the architecture's own
  # check that failed); TypeError: a wrongly typed field that has no rule above.
  except (ValueError, TypeError) as e:
    raise ConfigError(f'config.model (name={name!r}) on the {shape} inputs of '
                      f'config.dataset.name={config.dataset.name!r}: {e}') from e


def validate(config: ml_collections.ConfigDict, context: str = '') -> None:
  """Checks every field with a domain, before anything is built, traced or written.

  Names (dataset, model, optimizer, schedule, pooling, padding, activation), sizes and
  counts (>= 1), rates in [0, 1), a finite positive learning rate, the optimizer's
  schedule, steps_per_call dividing the log/checkpoint intervals, the model's fields
  (generic rules by field name: ``*dropout_rate``, ``features``, ``hidden``, strides,
  kernels, windows, ``pool``, ``padding``, ``activation``, ``head``) and, by tracing the
  model's summary, that its kernels and windows fit the dataset's inputs. When the
  dataset is prepared its info also gives the split sizes: each split must select
  examples, ``batch_size`` may not exceed the training split and ``eval_batch_size`` not
  the largest split the run evaluates (without it, the largest published split bounds
  ``eval_batch_size``). The dataset is never prepared or downloaded here.

  Args:
    config: a resolved experiment config (this module's fields).
    context: appended to the message in parentheses, e.g. the sweep setting.

  Raises:
    ConfigError: for the first bad value, one line naming the field, its value and
      what is allowed.
  """
  try:
    _check_fields(config)
    _check_augment(config)
    _check_model(config)
    steps_per_epoch = _check_sizes(config, _split_sizes(config))
    _check_optimizer(config, steps_per_epoch)
  except ConfigError as e:
    if context:
      raise ConfigError(f'{e} ({context})') from e
    raise
