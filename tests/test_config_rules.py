"""The rules of the config schema (experiments/configs/default.py: validate).

Each rule: one value outside the domain is refused with a one-line message naming the
field and the value, and the boundary value is accepted. Size rules use the toy dataset
of ``tests/idx_files.py`` prepared as ``fashion_mnist`` (512 train and 128 test
examples; the tiny config trains on ``train[:75%]``, 384, in batches of 32).
"""

import glob
import math
import os
import re

import ml_collections
import pytest
from idx_files import prepare_toy_tfds

from cnn_jax import config_utils
from experiments.configs import default
from experiments.configs.default import ConfigError, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, 'experiments', 'configs')
TINY = os.path.join(ROOT, 'tests', 'configs', 'tiny.py')


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


@pytest.fixture
def unprepared(tmp_path):
  """The default config on a data dir where nothing is prepared (sizes unknown)."""
  config = default.get_config()
  config.dataset.data_dir = str(tmp_path / 'empty')
  config.dataset.prepare_from_dir = ''
  return config


def _tiny(data_dir, **overrides):
  return config_utils.apply_overrides(config_utils.load_config(f'{TINY}:{data_dir}'),
                                      overrides)


def _refused(config, message):
  """Asserts that validate refuses ``config`` with a one-line message matching ``message``."""
  with pytest.raises(ConfigError) as info:
    validate(config)
  text = str(info.value)
  assert '\n' not in text
  assert re.search(message, text), text
  return text


def _set(config, **fields):
  """``config`` with dotted fields set (``model__dropout_rate=0.5``), unchecked."""
  # Unlocked types: a config file may set any value, not only the schema's type.
  config = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
  for key, value in fields.items():
    *parents, name = key.split('__')
    node = config
    for parent in parents:
      node = node[parent]
    node[name] = value
  return config


# (field, refused value, what the message says, accepted boundary value): rules that
# hold whatever the dataset.
FIELD_RULES = [
    ('model__dropout_rate', 1.0, r'must be in \[0, 1\)', 0.0),
    ('model__dropout_rate', -0.1, r'must be in \[0, 1\)', 0.999),
    ('model__dropout_rate', (0.1, 1.0), r'must be in \[0, 1\), each entry', (0.1, 0.2)),
    ('model__dense_dropout_rate', 1.0, r'must be in \[0, 1\)', 0.5),
    ('model__features', (32, 0), r'must be an int >= 1, each entry', (1, 1)),
    ('model__hidden', (0,), r'must be an int >= 1', ()),
    ('model__strides', 0, r'must be an int >= 1', 1),
    ('model__kernel_size', 0, r'must be an int >= 1', 1),
    ('model__pool', 'maxx', r"must be one of 'max', 'avg', 'conv', 'none' \(did you mean "
     r"'max'\?\)", 'none'),
    ('model__name', 'lenet', r"did you mean 'lenet5'", 'simple_cnn'),
    ('dataset__name', 'fashion', r"did you mean 'fashion_mnist'", 'mnist'),
    ('optimizer__name', 'adm', r"must be one of 'sgd', 'adam', 'adamw'", 'sgd'),
    ('optimizer__schedule', 'cosin', r"did you mean 'cosine'", 'cosine'),
    ('optimizer__learning_rate', 0.0, r'must be in \(0, inf\)', 1e-12),
    ('optimizer__learning_rate', math.nan, r'must be a finite number', 1e3),
    ('optimizer__learning_rate', math.inf, r'must be a finite number', 1e3),
    ('optimizer__momentum', 1.0, r'must be in \[0, 1\)', 0.0),
    ('optimizer__weight_decay', -1e-4, r'must be in \[0, inf\)', 0.0),
    ('optimizer__warmup_steps', -1, r'must be an int >= 0', 0),
    ('batch_size', 0, r'must be an int >= 1', 1),
    ('eval_batch_size', 0, r'must be an int >= 1', 1),
    ('eval_batch_size', 2.5, r'must be an int >= 1', 2),
    ('num_epochs', 0, r'must be an int >= 1', 1),
    ('label_smoothing', 1.0, r'must be in \[0, 1\)', 0.0),
    ('ema_decay', 1.0, r'must be in \[0, 1\)', 0.9999),
    ('aux_loss_weight', -0.3, r'must be in \[0, inf\)', 0.0),
    ('steps_per_call', -1, r'must be an int >= 0', 0),
    ('log_every_steps', -1, r'must be an int >= 0', 0),
    ('checkpoint_every_steps', -4, r'must be an int >= 0', 0),
    ('keep_checkpoints', 0, r'must be an int >= 1', 1),
    ('tensorboard', 'yes', r'must be True or False', False),
    ('dataset__read_threads', 0, r'must be an int >= 1', 1),
    ('dataset__permute_seed', -2, r'must be an int >= -1', 0),
    ('dataset__augment__crop_padding', -1, r'must be an int >= 0', 0),
    ('dataset__augment__padding_mode', 'wrap', r"must be one of 'constant', 'reflect', "
     r"'edge'", 'edge'),
    ('dataset__augment__eval_crop_fraction', 0.0, r'must be in \(0, 1\]', 1.0),
    ('dataset__augment__area_range', (0.5, 0.2), r'0 < low <= high <= 1', (0.2, 0.2)),
    ('dataset__augment__aspect_ratio_range', (0.0, 1.0), r'0 < low <= high', (0.5, 2.0)),
]


@pytest.mark.parametrize('field, bad, message, good', FIELD_RULES,
                         ids=[f'{r[0]}={r[1]!r}' for r in FIELD_RULES])
def test_a_field_rule_refuses_the_bad_value_and_accepts_the_boundary(unprepared, field, bad,
                                                                     message, good):
  dotted = field.replace('__', '.')
  text = _refused(_set(unprepared, **{field: bad}), message)
  assert text.startswith(f'config.{dotted}={bad!r}: '), text
  validate(_set(unprepared, **{field: good}))


# Fields of some architectures only (not in the schema's simple_cnn defaults).
@pytest.mark.parametrize('fields, message', [
    ({'activation': 'relu6'}, r"config.model.activation='relu6': must be one of 'elu', "
     r"'gelu', 'lecun_tanh', 'relu', 'tanh' \(did you mean 'relu'\?\)"),
    ({'padding': 'same2'}, r"config.model.padding='same2': must be one of 'VALID', 'SAME', "
     r"'FULL', 'CAUSAL' \(any case\)"),
    ({'padding': (1, -1)}, r'config.model.padding=\(1, -1\)'),
    ({'pool_window': 0}, r'config.model.pool_window=0: must be an int >= 1'),
    ({'num_classes': 0}, r'config.model.num_classes=0: must be an int >= 1'),
    ({'batch_norm': 'yes'}, r"config.model.batch_norm='yes': must be True or False"),
    ({'head': 'gap'}, r"config.model.head='gap': must be one of 'dense', 'global_avg'"),
    ({'widht': 2}, r"config.model: model 'simple_cnn' has no field\(s\) \['widht'\]"),
])
def test_model_fields_of_the_architecture(unprepared, fields, message):
  _refused(_set(unprepared, **{f'model__{k}': v for k, v in fields.items()}), message)


def test_model_field_boundaries_accepted(unprepared):
  validate(_set(unprepared, model__activation='gelu', model__padding='valid',
                model__pool_window=1, model__num_classes=1, model__batch_norm=(True, False),
                model__head='global_avg'))


def test_resnet_rules_by_field_name(unprepared):
  config = _set(unprepared, model={'name': 'resnet20'}, dataset__name='cifar10')
  validate(config)
  _refused(_set(config, model__stage_strides=(1, 0, 2)),
           r'config.model.stage_strides=\(1, 0, 2\): must be an int >= 1, each entry')
  _refused(_set(config, model__stem_pool='max2'), r"config.model.stem_pool='max2'")
  # Not a generic rule: the architecture's own check, reached through its summary.
  _refused(_set(config, model__block='basik'),
           r"config.model \(name='resnet20'\) on the \(32, 32, 3\) inputs of "
           r"config.dataset.name='cifar10': block='basik'; use 'basic' or 'bottleneck'")


def test_kernels_and_windows_must_fit_the_input(unprepared):
  """28x28 halved by each 2x2 pool: 14, 7, 3, 1; a fifth pool has nothing to pool."""
  validate(_set(unprepared, model__features=(8,) * 4))
  _refused(_set(unprepared, model__features=(8,) * 5),
           r"config.model \(name='simple_cnn'\) on the \(28, 28, 1\) inputs of "
           r"config.dataset.name='fashion_mnist': pool4: .*window size 2 is larger than")
  # AlexNet's strides leave nothing at pool2 of a 28x28 input; 224x224 fits.
  alexnet = _set(unprepared, model={'name': 'alexnet', 'num_classes': 10})
  _refused(alexnet, r"config.model \(name='alexnet'\).*pool2")
  validate(_set(alexnet, dataset__augment__image_size=224))


def test_normalisation_statistics(unprepared):
  config = _set(unprepared, dataset__augment__normalize=True)
  validate(config)  # empty: the published statistics
  validate(_set(config, dataset__augment__mean=(0.5,), dataset__augment__std=(0.25,)))
  _refused(_set(config, dataset__augment__mean=(0.5, 0.5)),
           r'config.dataset.augment.mean=\(0.5, 0.5\): must be empty .* or hold 1 numbers')
  _refused(_set(config, dataset__augment__mean=(0.5,), dataset__augment__std=(0.0,)),
           r'config.dataset.augment.std=\(0.0,\): must be positive')


def test_permuted_inputs_refuse_spatial_augmentation_and_streaming(unprepared):
  config = _set(unprepared, dataset__permute_seed=3)
  validate(config)
  _refused(_set(config, dataset__augment__flip=True),
           r'config.dataset.permute_seed=3: permuted inputs have no neighbourhoods for '
           r'dataset.augment.flip to move')
  _refused(_set(config, dataset__augment__crop_padding=2), r'augment.crop_padding')
  _refused(_set(config, dataset__stream=True),
           r'config.dataset.permute_seed=3: permutes in-memory datasets only')
  validate(_set(config, dataset__permute_seed=-1, dataset__augment__flip=True))


def test_the_schedule_checks_of_the_optimizer(unprepared):
  piecewise = _set(unprepared, optimizer__schedule='piecewise')
  validate(_set(piecewise, optimizer__boundaries=(0.2, 0.9)))
  _refused(_set(piecewise, optimizer__boundaries=(0.5, 0.2)),
           r'config.optimizer.boundaries=\(0.5, 0.2\) must be increasing fractions')
  _refused(_set(piecewise, optimizer__boundaries=(0.5, 1.0)), r'in \(0, 1\)')


def test_steps_per_call_divides_the_intervals_without_the_dataset(unprepared):
  """log_every_steps=100 in the schema: 4 divides it, 3 does not."""
  validate(_set(unprepared, steps_per_call=4))
  _refused(_set(unprepared, steps_per_call=3),
           r'config.steps_per_call=3: steps_per_call=3 must divide log_every_steps \(100\)')


def test_without_a_prepared_dataset_the_published_sizes_bound_evaluation(unprepared):
  """Fashion-MNIST's largest published split is its 60,000 training images."""
  validate(_set(unprepared, eval_batch_size=60_000, batch_size=10**6))
  _refused(_set(unprepared, eval_batch_size=60_001),
           r'config.eval_batch_size=60001: must be <= 60000, the largest published split '
           r'of fashion_mnist')
  _refused(_set(unprepared, eval_batch_size=10**10), r'config.eval_batch_size=10000000000')


def test_validation_prepares_nothing(unprepared):
  validate(unprepared)
  assert not os.path.exists(unprepared.dataset.data_dir)


def test_sizes_from_the_prepared_dataset(toy_dir):
  validate(_tiny(toy_dir))
  validate(_tiny(toy_dir, batch_size=384))
  _refused(_tiny(toy_dir, batch_size=385),
           r"config.batch_size=385: must be <= 384, the examples of "
           r"dataset.train_split='train\[:75%\]'")
  # The eval and test splits hold 128 each; with evaluate_train the 384 train ones count.
  validate(_tiny(toy_dir, eval_batch_size=128))
  _refused(_tiny(toy_dir, eval_batch_size=129), r'config.eval_batch_size=129: must be <= 128')
  validate(_tiny(toy_dir, eval_batch_size=384, evaluate_train=True))


def test_splits_of_the_prepared_dataset(toy_dir):
  validate(_tiny(toy_dir, **{'dataset.eval_split': 'train[99%:]'}))
  _refused(_tiny(toy_dir, **{'dataset.eval_split': 'train[100%:]'}),
           r"config.dataset.eval_split='train\[100%:\]': selects no examples")
  _refused(_tiny(toy_dir, **{'dataset.train_split': 'validation'}),
           r"config.dataset.train_split='validation': not a split of the prepared "
           r"fashion_mnist: Unknown split 'validation'")
  _refused(_tiny(toy_dir, **{'dataset.test_split': ''}),
           r"config.dataset.test_split='': must name a split")


def test_steps_per_call_against_the_epoch(toy_dir):
  """12 steps an epoch, logs and checkpoints every 4 steps."""
  validate(_tiny(toy_dir, steps_per_call=4))
  # 0 is a whole epoch, 12 steps, which the 4-step intervals cannot take.
  _refused(_tiny(toy_dir, steps_per_call=0),
           r'config.steps_per_call=0: steps_per_call=12 must divide log_every_steps \(4\)')
  validate(_tiny(toy_dir, steps_per_call=0, log_every_steps=0, checkpoint_every_steps=12))
  _refused(_tiny(toy_dir, steps_per_call=3),
           r'config.steps_per_call=3: steps_per_call=3 must divide log_every_steps \(4\)')
  _refused(_tiny(toy_dir, steps_per_call=8),
           r'config.steps_per_call=8: steps_per_call=8 must divide steps per epoch \(12\)')


def test_the_warmup_is_checked_against_the_run_length(toy_dir):
  """36 steps (3 epochs of 12): a first decay at step 18 inside a 20-step warm-up."""
  config = _tiny(toy_dir, **{'optimizer.schedule': 'piecewise', 'optimizer.warmup_steps': 17})
  validate(config)
  _refused(_set(config, optimizer__warmup_steps=20),
           r'config.optimizer.boundaries=\(0.5, 0.75\) put the first decay at step 18 of 36, '
           r'inside the warm-up of 20 steps')


def test_the_context_and_one_line():
  assert str(ConfigError('a\n  b')) == 'a b'
  with pytest.raises(ConfigError, match=r'^config.batch_size=0: .* \(sweep setting x\)$'):
    config = default.get_config()
    config.batch_size = 0
    validate(config, 'sweep setting x')


@pytest.mark.parametrize('path', sorted(set(glob.glob(os.path.join(CONFIGS, '*.py'))) -
                                        {os.path.join(CONFIGS, '__init__.py')}),
                         ids=os.path.basename)
def test_every_experiment_config_validates(path):
  validate(config_utils.load_config(path))
