"""Config files, the schema's defaults and the one override parser (train, sweep, reproduce)."""

import glob
import os

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from cnn_jax import config_utils, models
from experiments.configs import default

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'experiments', 'configs')


def test_unknown_override_names_the_closest_fields():
  argv = ['train', '--config', 'experiments/configs/fashion_mnist_cnn.py',
          '--config.model.dropout_rat=0.3']
  with pytest.raises(ValueError, match=r"'model.dropout_rat'.*model.dropout_rate"):
    config_utils.check_overrides(argv, 'config', 'unused.py')
  config_utils.check_overrides(argv[:3] + ['--config.model.dropout_rate=0.3'], 'config',
                               'unused.py')


def test_sequence_override_of_a_one_value_field_says_to_use_a_config_file(tmp_path):
  # A flag is parsed as the field's current type, so strides=(1,2,2) on an int field
  # cannot work from the command line; a derived config file can set it.
  argv = ['train', '--config', 'experiments/configs/fashion_mnist_cnn.py',
          '--config.model.strides=(1,2,2)']
  with pytest.raises(ValueError, match=r'model.strides holds one value \(1\).*config '
                     r'file that builds on this one \(config.model.strides = \(1,2,2\)\)'):
    config_utils.check_overrides(argv, 'config', 'unused.py')
  config_utils.check_overrides(argv[:3] + ['--config.model.features=(8,16)'], 'config',
                               'unused.py')  # a tuple field takes a tuple
  derived = tmp_path / 'per_block.py'
  derived.write_text('from experiments.configs import fashion_mnist_cnn\n'
                     'def get_config():\n'
                     '  config = fashion_mnist_cnn.get_config()\n'
                     '  config.model.strides = (1, 2)\n'
                     '  return config\n')
  config = config_utils.load_config(str(derived))
  fields = dict(config.model)
  model = models.create(fields.pop('name'), **fields)
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  # 28 -> conv 28 -> pool 14 -> conv stride 2: 7 -> pool 3; the dense layer sees 3*3*64.
  assert variables['params']['dense0']['kernel'].shape == (3 * 3 * 64, 128)


def test_apply_overrides_keeps_types_and_names_unknown_fields():
  base = default.get_config()
  config = config_utils.apply_overrides(base, {'optimizer.learning_rate': 1,
                                               'model.features': [8, 16], 'seed': 3})
  assert config.optimizer.learning_rate == 1.0
  assert isinstance(config.optimizer.learning_rate, float)
  assert config.model.features == (8, 16) and config.seed == 3
  assert base.seed == 0 and base.model.features == (32, 64)  # the base is not changed
  with pytest.raises(ValueError, match=r"unknown config field 'optimizer.learning_rat'.*"
                                       r"Did you mean: optimizer.learning_rate"):
    config_utils.apply_overrides(base, {'optimizer.learning_rat': 1.0})
  with pytest.raises(ValueError, match=r"num_epochs=2.5.*float.*int"):
    config_utils.apply_overrides(base, {'num_epochs': 2.5})


def test_parse_literal_reads_python_literals_and_keeps_words():
  assert config_utils.parse_literal('10') == 10
  assert config_utils.parse_literal('0.5') == 0.5
  assert config_utils.parse_literal('(1, 2)') == (1, 2)
  assert config_utils.parse_literal('True') is True
  assert config_utils.parse_literal('adamw') == 'adamw'
  assert config_utils.parse_literal('/data/tfds') == '/data/tfds'


def _field_types(config: ml_collections.ConfigDict, prefix: str = '') -> dict:
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_field_types(value, f'{prefix}{key}.'))
    else:
      out[prefix + key] = type(value)
  return out


@pytest.mark.parametrize('path', sorted(set(glob.glob(os.path.join(CONFIGS, '*.py'))) -
                                        {os.path.join(CONFIGS, '__init__.py')}),
                         ids=os.path.basename)
def test_every_config_holds_every_schema_field(path):
  """Library code reads config.x: a config must keep every field of default.py."""
  schema = _field_types(default.get_config())
  config = _field_types(config_utils.load_config(path))
  # Model fields are the chosen architecture's own; the rest is the shared schema.
  shared = {k: v for k, v in schema.items() if not k.startswith('model.')}
  missing = sorted(set(shared) - set(config))
  assert not missing, missing


def test_run_stops_turns_preemption_and_workdir_errors_into_one_line(capsys):
  """Every entry point's expected stops: exit 75 to resume, or one `error:` line."""
  from cnn_jax.train import loop
  from cnn_jax.train import workdir as workdir_lib
  from experiments import cli
  with pytest.raises(SystemExit) as stop:
    with cli.run_stops():
      raise loop.Preempted('SIGTERM', 12, 36, 'runs/x')
  assert stop.value.code == 75 == loop.PREEMPTED_EXIT_CODE
  assert capsys.readouterr().err.strip() == (
      'preempted (SIGTERM) at step 12/36: saved a checkpoint in runs/x/checkpoints; rerun '
      'the same command to resume')
  with pytest.raises(SystemExit) as stop:
    with cli.run_stops():
      raise workdir_lib.WorkdirBusyError('runs/x is held by pid 7 on host h')
  assert stop.value.code == 'error: runs/x is held by pid 7 on host h'
