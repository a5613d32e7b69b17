"""Bad settings through the real command line: exit code 2, one line, nothing written.

Each case asserts the exit code 2, exactly one line of output (``error: ...`` on
stderr, nothing on stdout) naming the field and the value, no traceback, and a workdir
that was not created. Validation runs before anything is compiled, so a case costs
the start-up imports: the training cases run in this process through the entry point's
own ``main`` and absl flag parsing (``cli.run``), and a handful per entry point run as
real subprocesses, all at once.

Only this test module may import ``experiments.train`` in a pytest process: a second
entry point module would define its ``--config`` and ``--workdir`` flags again.
"""

import os
import subprocess
import sys

import pytest
from absl import flags
from idx_files import prepare_toy_tfds
from subprocess_env import subprocess_env

from experiments import cli
from experiments import train

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'tests', 'configs', 'tiny.py')


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


# (override(s), what the one line must contain). The tiny config trains on 384 toy
# examples in batches of 32 (12 steps an epoch), logging and checkpointing every 4.
TRAIN_CASES = [
    (['--config.model.dropout_rate=1.0'], 'config.model.dropout_rate=1.0: must be in [0, 1)'),
    (['--config.model.dropout_rate=-0.1'], 'config.model.dropout_rate=-0.1: must be in [0, 1)'),
    (['--config.model.dense_dropout_rate=1.5'], 'config.model.dense_dropout_rate=1.5'),
    (['--config.batch_size=0'], 'config.batch_size=0: must be an int >= 1'),
    (['--config.batch_size=385'], 'config.batch_size=385: must be <= 384'),
    (['--config.eval_batch_size=0'], 'config.eval_batch_size=0: must be an int >= 1'),
    (['--config.eval_batch_size=10000000000'], 'config.eval_batch_size=10000000000: must be '
     '<= 128'),
    (['--config.eval_batch_size=1e10'], 'flag --config.eval_batch_size=1e10'),
    (['--config.num_epochs=0'], 'config.num_epochs=0: must be an int >= 1'),
    (['--config.optimizer.learning_rate=0'], 'config.optimizer.learning_rate=0.0: must be in '
     '(0, inf)'),
    (['--config.optimizer.learning_rate=nan'], 'config.optimizer.learning_rate=nan: must be a '
     'finite number'),
    (['--config.optimizer.learning_rate=inf'], 'config.optimizer.learning_rate=inf'),
    (['--config.optimizer.name=adm'], "config.optimizer.name='adm': must be one of 'sgd', "
     "'adam', 'adamw' (did you mean 'adam'?)"),
    (['--config.optimizer.schedule=cosin'], "config.optimizer.schedule='cosin'"),
    (['--config.optimizer.momentum=1.0'], 'config.optimizer.momentum=1.0: must be in [0, 1)'),
    (['--config.model.name=lenet'], "config.model.name='lenet': must be one of"),
    (['--config.model.name=alexnet'], "config.model: model 'alexnet' has no field(s)"),
    (['--config.dataset.name=fashion'], "config.dataset.name='fashion'"),
    (['--config.model.strides=0'], 'config.model.strides=0: must be an int >= 1'),
    (['--config.model.kernel_size=0'], 'config.model.kernel_size=0: must be an int >= 1'),
    (['--config.model.pool=maxx'], "config.model.pool='maxx'"),
    (['--config.model.features=(8,0)'], 'config.model.features=(8, 0): must be an int >= 1'),
    (['--config.model.hidden=(0,)'], 'config.model.hidden=(0,)'),
    (['--config.model.features=(8,8,8,8,8)'], "config.model (name='simple_cnn') on the "
     "(28, 28, 1) inputs of config.dataset.name='fashion_mnist': pool4"),
    (['--config.steps_per_call=5'], 'config.steps_per_call=5: steps_per_call=5 must divide'),
    (['--config.steps_per_call=2', '--config.checkpoint_every_steps=3'],
     'must divide checkpoint_every_steps (3)'),
    (['--config.log_every_steps=-1'], 'config.log_every_steps=-1: must be an int >= 0'),
    (['--config.label_smoothing=1.0'], 'config.label_smoothing=1.0: must be in [0, 1)'),
    (['--config.ema_decay=1.0'], 'config.ema_decay=1.0: must be in [0, 1)'),
    (['--config.keep_checkpoints=0'], 'config.keep_checkpoints=0: must be an int >= 1'),
    (['--config.dataset.eval_split=train[100%:]'], "config.dataset.eval_split='train[100%:]': "
     'selects no examples'),
    (['--config.dataset.train_split=validation'], "config.dataset.train_split='validation': "
     'not a split'),
    (['--config.dataset.augment.padding_mode=wrap'], "config.dataset.augment.padding_mode="
     "'wrap'"),
    (['--config.dataset.augment.crop_padding=-1'], 'config.dataset.augment.crop_padding=-1'),
    (['--config.optimizer.schedule=piecewise', '--config.optimizer.boundaries=(0.5,0.2)'],
     'config.optimizer.boundaries=(0.5, 0.2) must be increasing fractions'),
    (['--config.optimizer.schedule=piecewise', '--config.optimizer.warmup_steps=30'],
     'config.optimizer.boundaries=(0.5, 0.75) put the first decay at step 18 of 36, inside '
     'the warm-up of 30 steps'),
]


def _one_line(out: str, err: str, expected: str) -> None:
  assert out == '', out
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  assert lines[0].startswith('error: '), err
  assert expected in lines[0], err
  assert 'Traceback' not in err


def _run_train(monkeypatch, args, code):
  """``python -m experiments.train ARGS`` in this process; asserts its exit code."""
  argv = ['experiments.train', *args]
  # config_flags reads the --config.* overrides from sys.argv.
  monkeypatch.setattr(sys, 'argv', argv)
  # The cases share this process's flags; config_flags defines one per override.
  flags.FLAGS.unparse_flags()
  for name in [n for n in flags.FLAGS if n.startswith('config.')]:
    delattr(flags.FLAGS, name)
  with pytest.raises(SystemExit) as exit_info:
    cli.run(train.main, argv)
  assert exit_info.value.code == code


@pytest.mark.parametrize('overrides, expected', TRAIN_CASES,
                         ids=[' '.join(c[0]) for c in TRAIN_CASES])
def test_train_refuses_a_bad_setting(toy_dir, tmp_path, capsys, monkeypatch, overrides,
                                     expected):
  workdir = tmp_path / 'run'
  _run_train(monkeypatch, [f'--config={TINY}:{toy_dir}', f'--workdir={workdir}', *overrides],
             2)
  _one_line(*capsys.readouterr(), expected)
  assert not workdir.exists()


def test_the_boundary_setting_gets_past_validation(toy_dir, tmp_path, capsys, monkeypatch):
  """The refusals above are the rules', not of any setting: a good one reaches training."""
  reached = []

  def train_and_evaluate(config, workdir):
    reached.append((config.batch_size, workdir))
    return {}
  monkeypatch.setattr(train, 'train_and_evaluate', train_and_evaluate)
  _run_train(monkeypatch, [f'--config={TINY}:{toy_dir}', f'--workdir={tmp_path}/run',
                           '--config.batch_size=384', '--config.eval_batch_size=128'], None)
  assert reached == [(384, f'{tmp_path}/run')]


_env = subprocess_env


# (module, arguments ({data} and {work} filled in), what the one line must contain).
SUBPROCESS_CASES = {
    'train_dropout': ('train', ['--config=tests/configs/tiny.py:{data}', '--workdir={work}',
                                '--config.model.dropout_rate=1.0'],
                      'config.model.dropout_rate=1.0: must be in [0, 1)'),
    'train_unknown_field': ('train', ['--config=tests/configs/tiny.py:{data}',
                                      '--workdir={work}', '--config.model.dropout_rat=0.3'],
                            "unknown config field 'model.dropout_rat'. Did you mean: "
                            'model.dropout_rate'),
    'train_eval_batch_size': ('train', ['--config=tests/configs/tiny.py:{data}',
                                        '--workdir={work}', '--config.eval_batch_size=0'],
                              'config.eval_batch_size=0: must be an int >= 1'),
    'train_missing_config': ('train', ['--config=tests/configs/nonexistent.py',
                                       '--workdir={work}'], 'nonexistent.py'),
    'train_positional': ('train', ['--config=tests/configs/tiny.py:{data}', '--workdir={work}',
                                   'batch_size=0'], "unexpected arguments ['batch_size=0']"),
    'sweep_dropout_axis': ('sweep', ['--config=tests/configs/tiny.py:{data}',
                                     '--workdir={work}', '--sweep=model.dropout_rate=0,1.0'],
                           'config.model.dropout_rate=1.0: must be in [0, 1) (sweep setting '
                           'model.dropout_rate=1.0)'),
    'sweep_eval_batch_axis': ('sweep', ['--config=tests/configs/tiny.py:{data}',
                                        '--workdir={work}',
                                        '--sweep=eval_batch_size=64,10000000000'],
                              'config.eval_batch_size=10000000000'),
    'sweep_seeds': ('sweep', ['--config=tests/configs/tiny.py:{data}', '--workdir={work}',
                              '--seeds=0'], 'flag --seeds=0'),
    'reproduce_override': ('reproduce', ['--workdir={work}', '--out={work}/out',
                                         '--only=mnist1d_cnn',
                                         '--override=model.dropout_rate=2.0'],
                           'config.model.dropout_rate=2.0: must be in [0, 1) (reference '
                           'mnist1d_cnn)'),
    'reproduce_named_override': ('reproduce', ['--workdir={work}', '--out={work}/out',
                                               '--override=mnist1d_mlp:num_epochs=0'],
                                 'config.num_epochs=0: must be an int >= 1 (reference '
                                 'mnist1d_mlp)'),
    'reproduce_unknown': ('reproduce', ['--workdir={work}', '--out={work}/out',
                                        '--only=mnist1d_cnnn'],
                          'unknown reference(s) mnist1d_cnnn'),
    'evaluate_checkpoint': ('evaluate', ['--workdir={work}', '--checkpoint=last'],
                            "flag --checkpoint=last: must be 'latest', 'best' or a step"),
    'evaluate_split': ('evaluate', ['--workdir={work}', '--split=validation'],
                       'flag --split=validation: value should be one of <test|eval>'),
    'dnn_vs_cnn_config': ('dnn_vs_cnn', ['--workdir={work}', '--out={work}/out', '--notrain',
                                         '--cnn_config={bad_config}'],
                          'config.model.dropout_rate=1.0: must be in [0, 1) (--cnn_config='),
}

# A config file with a value out of its domain, for entry points that take files only.
_BAD_CONFIG = """
from experiments.configs import default


def get_config():
  config = default.get_config()
  config.model.dropout_rate = 1.0
  return config
"""


@pytest.fixture(scope='module')
def subprocess_results(toy_dir, tmp_path_factory):
  """Every subprocess case, started together (start-up imports dominate each)."""
  base = tmp_path_factory.mktemp('bad_settings')
  bad_config = base / 'bad_config.py'
  bad_config.write_text(_BAD_CONFIG)
  procs = {}
  for name, (module, args, _) in SUBPROCESS_CASES.items():
    work = base / name
    if module == 'evaluate':
      work.mkdir()  # an existing, empty run directory: it must stay empty
    argv = [a.format(data=toy_dir, work=work, bad_config=bad_config) for a in args]
    procs[name] = (work, subprocess.Popen(
        [sys.executable, '-m', f'experiments.{module}', *argv], cwd=ROOT, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  results = {}
  for name, (work, proc) in procs.items():
    out, err = proc.communicate(timeout=300)
    results[name] = (proc.returncode, out, err, work)
  return results


@pytest.mark.parametrize('name', sorted(SUBPROCESS_CASES))
def test_entry_point_refuses_a_bad_setting(subprocess_results, name):
  returncode, out, err, work = subprocess_results[name]
  assert returncode == 2, err[-2000:]
  _one_line(out, err, SUBPROCESS_CASES[name][2])
  assert not work.exists() or not os.listdir(work)


@pytest.mark.parametrize('debug', [['--debug'], []])
def test_debug_shows_the_traceback(toy_dir, tmp_path, debug):
  env = _env() if debug else _env(CNN_JAX_DEBUG='1')
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.train', f'--config=tests/configs/tiny.py:{toy_dir}',
       f'--workdir={tmp_path}/run', '--config.batch_size=0', *debug],
      cwd=ROOT, env=env, capture_output=True, text=True)
  assert out.returncode == 2
  assert 'Traceback' in out.stderr and 'ConfigError' in out.stderr
  assert out.stderr.strip().splitlines()[-1] == ('error: config.batch_size=0: must be an int '
                                                 '>= 1')
  assert not os.path.exists(f'{tmp_path}/run')
