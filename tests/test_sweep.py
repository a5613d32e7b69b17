"""Sweeps: axes, grid, groups, aggregation, tables, plots, resume; one real tiny sweep.

Everything but the last test trains nothing: a fake runner writes what
``train_replicas`` writes, from numbers chosen so the means and stds can be worked out
by hand.
"""

import csv
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats
from configs.tiny import get_config as tiny_config
from fake_runs import write_replicas_workdir
from idx_files import prepare_toy_tfds
from subprocess_env import subprocess_env

from cnn_jax import config_utils, sweep
from cnn_jax.data import NotPreparedError
from cnn_jax.viz import sweep_figures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, 'experiments', 'configs')
QUIET = dict(log=lambda *_: None)
AXES = {'model.dropout_rate': [0.0, 0.5], 'model.strides': [1, 2]}
# tests/configs/tiny.py's simple CNN (conv 3x3 1->8 SAME, 2x2 max pool, dense 32, head
# 10) on 28x28x1, counted by hand: parameters, and forward FLOPs (multiply-add = 2, +1
# per bias, 1 per pooled window element).
TINY_PARAMS = {1: (9 * 8 + 8) + (14 * 14 * 8 * 32 + 32) + (32 * 10 + 10),
               2: (9 * 8 + 8) + (7 * 7 * 8 * 32 + 32) + (32 * 10 + 10)}
TINY_FLOPS = {1: 28 * 28 * 8 * 19 + 14 * 14 * 8 * 4 + (2 * 1568 + 1) * 32 + 65 * 10,
              2: 14 * 14 * 8 * 19 + 7 * 7 * 8 * 4 + (2 * 392 + 1) * 32 + 65 * 10}


def _fake_numbers(config, variant):
  """A replica's results as a formula of its setting, for hand-computed expectations."""
  seed, rate, strides = variant['seed'], variant['model.dropout_rate'], config.model.strides
  test = 0.80 + 0.05 * seed + 0.1 * rate + 0.01 * (strides == 2)
  return {'test_accuracy': test, 'test_loss': 1 - test, 'best_eval_accuracy': test + 0.01,
          'train_accuracy': 0.94 + 0.01 * seed**2 - 0.1 * rate,
          'wall_s': 10.0 * strides, 'train_images_per_sec': 1000.0 * strides,
          'num_params': 0, 'variant': variant}


class FakeRunner:
  """Writes a finished ``train_replicas`` workdir without training; counts its calls."""

  def __init__(self):
    self.calls = []

  def __call__(self, config, workdir, variants, log=print):
    self.calls.append((config, workdir, variants))
    summaries = [_fake_numbers(config, v) for v in variants]
    metrics = [[record for epoch in (1, 2, 3) for record in (
        # a mid-epoch record (no epoch_loss), the epoch's end, its eval
        {'step': 4 * epoch - 2, 'split': 'train', 'epoch': epoch - 0.5, 'loss': 9.0},
        {'step': 4 * epoch, 'split': 'train', 'epoch': float(epoch), 'loss': 9.0,
         'epoch_loss': 1 / epoch + 0.1 * variant['seed']},
        {'step': 4 * epoch, 'split': 'eval', 'epoch': float(epoch),
         'accuracy': 0.5 + 0.1 * epoch + 0.01 * variant['seed']})] for variant in variants]
    write_replicas_workdir(workdir, config, variants, summaries, metrics)
    return summaries


@pytest.fixture(scope='module')
def fake_sweep(tmp_path_factory):
  """A 2 x 2 grid x 3 seeds through run_sweep with the fake runner."""
  workdir = str(tmp_path_factory.mktemp('sweep') / 'run')
  runner = FakeRunner()
  rows = sweep.run_sweep(tiny_config(), workdir, AXES, 3, runner=runner, command='test cmd',
                         **QUIET)
  return workdir, rows, runner


def _row(rows, rate, strides):
  (row,) = [r for r in rows if (r['model.dropout_rate'], r['model.strides']) == (rate, strides)]
  return row


def _digest(directory):
  digest = {}
  for root, _, files in os.walk(directory):
    for name in files:
      with open(os.path.join(root, name), 'rb') as f:
        digest[os.path.relpath(os.path.join(root, name), directory)] = hashlib.sha256(
            f.read()).hexdigest()
  return digest


def test_flag_axes_are_parsed_by_the_field_type():
  config = tiny_config()
  parse = lambda text: sweep.parse_axis(text, config)
  assert parse('model.dropout_rate=0,0.1,.5') == ('model.dropout_rate', [0.0, 0.1, 0.5])
  assert all(type(v) is float for v in parse('model.dropout_rate=0,1e-1')[1])
  assert parse('model.strides=1,2') == ('model.strides', [1, 2])
  assert parse('model.features=(8,16),(16, 32),(4,)') == ('model.features',
                                                          [(8, 16), (16, 32), (4,)])
  assert parse('dataset.augment.flip=true,False') == ('dataset.augment.flip', [True, False])
  assert parse('model.pool=max, avg') == ('model.pool', ['max', 'avg'])


@pytest.mark.parametrize('text,match', [
    ('model.stride=1,2', r"'model.stride'.*Did you mean: model.strides"),
    ('model.dropout_rat=0,0.5', r'Did you mean: model.dropout_rate'),
    ('seed=0,1', r'--seeds'),
    ('model=1', r'group of fields'),
    ('model.strides', r'key=value1,value2'),
    ('model.strides=1,1.5', r"model.strides: cannot parse '1.5' as int"),
    ('model.dropout_rate=0,abc', r"cannot parse 'abc' as float"),
    ('dataset.augment.flip=maybe', r"cannot parse 'maybe' as bool"),
    ('model.strides=1,,2', r'empty value'),
    ('model.strides=1,2,1', r'repeats a value'),
])
def test_bad_flag_axes_are_refused_with_the_reason(text, match):
  with pytest.raises(ValueError, match=match):
    sweep.resolve_axes(tiny_config(), flag_axes=[text])


def test_bad_file_axes_are_refused_with_the_reason():
  config = tiny_config()
  with pytest.raises(ValueError, match=r'Did you mean: model.strides'):
    sweep.resolve_axes(config, {'model.stride': [1, 2]})
  with pytest.raises(ValueError, match=r'model.strides.*0.5'):
    sweep.resolve_axes(config, {'model.strides': [1, 0.5]})
  with pytest.raises(ValueError, match=r'no values'):
    sweep.resolve_axes(config, {'model.strides': []})


def test_flags_replace_the_files_axes_and_add_new_ones_after_them():
  file_axes = {'model.dropout_rate': [0, 0.1], 'model.strides': [1, 2]}
  axes = sweep.resolve_axes(tiny_config(), file_axes, ['model.pool=max,avg',
                                                       'model.strides=2'])
  assert axes == {'model.dropout_rate': [0.0, 0.1], 'model.strides': [2],
                  'model.pool': ['max', 'avg']}
  assert list(axes) == ['model.dropout_rate', 'model.strides', 'model.pool']
  assert type(axes['model.dropout_rate'][0]) is float  # the file's 0 became the field's type


def test_config_files_get_sweep_is_read_with_its_argument():
  axes = config_utils.load_sweep(os.path.join(CONFIGS, 'ablation_simple_cnn_dropout_stride.py'))
  assert axes == {'model.dropout_rate': [0.0, 0.1, 0.3, 0.5], 'model.strides': [1, 2]}
  lenet = config_utils.load_sweep(os.path.join(CONFIGS, 'ablation_lenet5_dropout_stride.py'))
  assert list(lenet) == ['model.dropout_rate', 'model.pool']
  assert config_utils.load_sweep(os.path.join(ROOT, 'tests', 'configs', 'tiny.py') + ':/x') == {}
  assert config_utils.config_name('experiments/configs/tiny.py:/data') == 'tiny'  # workdir name


def test_grid_expansion_order():
  grid = sweep.expand({'a': [1, 2], 'b': ['x', 'y', 'z']})
  assert grid == [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 1, 'b': 'z'},
                  {'a': 2, 'b': 'x'}, {'a': 2, 'b': 'y'}, {'a': 2, 'b': 'z'}]
  assert sweep.expand({}) == [{}]


def test_groups_vmap_seeds_and_dropout_rates_and_split_shape_changing_axes():
  axes = {'model.dropout_rate': [0.0, 0.5], 'model.strides': [1, 2],
          'model.dense_dropout_rate': [0.0, 0.3], 'model.features': [(8,), (8, 16)]}
  groups = sweep.make_groups(axes, [0, 1])
  assert [g.name for g in groups] == [
      'model.strides=1,model.features=8', 'model.strides=1,model.features=8-16',
      'model.strides=2,model.features=8', 'model.strides=2,model.features=8-16']
  assert groups[1].settings == {'model.strides': 1, 'model.features': (8, 16)}
  for group in groups:  # every vmappable combination x seed, seeds fastest
    assert len(group.variants) == 2 * 2 * 2
    assert group.variants[:3] == [
        {'model.dropout_rate': 0.0, 'model.dense_dropout_rate': 0.0, 'seed': 0},
        {'model.dropout_rate': 0.0, 'model.dense_dropout_rate': 0.0, 'seed': 1},
        {'model.dropout_rate': 0.0, 'model.dense_dropout_rate': 0.3, 'seed': 0}]
  (only,) = sweep.make_groups({'model.dropout_rate': [0.0, 0.5]}, [3, 4, 5])
  assert only.name == 'all' and only.settings == {} and len(only.variants) == 6
  assert sweep.group_name({'model.pool': 'a b/c'}) == 'model.pool=a_b_c'


def test_run_sweep_calls_the_runner_once_per_group_with_its_config(fake_sweep):
  workdir, _, runner = fake_sweep
  assert [os.path.relpath(w, workdir) for _, w, _ in runner.calls] == [
      'model.strides=1', 'model.strides=2']
  for (config, _, variants), strides in zip(runner.calls, (1, 2)):
    assert config.model.strides == strides and config.evaluate_train is True
    assert variants == [{'model.dropout_rate': r, 'seed': s} for r in (0.0, 0.5)
                        for s in (0, 1, 2)]
  with open(os.path.join(workdir, sweep.MANIFEST_FILE)) as f:
    manifest = json.load(f)
  assert manifest['axes'] == {'model.dropout_rate': [0.0, 0.5], 'model.strides': [1, 2]}
  assert manifest['seeds'] == [0, 1, 2] and manifest['command'] == 'test cmd'
  assert [g['name'] for g in manifest['groups']] == ['model.strides=1', 'model.strides=2']
  assert {'jax', 'devices', 'cpu_model', 'git_commit'} <= set(manifest['environment'])


def test_rows_are_means_and_sample_stds_over_seeds(fake_sweep):
  _, rows, _ = fake_sweep
  assert [(r['model.dropout_rate'], r['model.strides']) for r in rows] == [
      (0.0, 1), (0.0, 2), (0.5, 1), (0.5, 2)]
  row = _row(rows, 0.5, 2)
  assert row['group'] == 'model.strides=2' and row['n'] == 3 and row['seeds'] == [0, 1, 2]
  assert row['replicas'] == [f'model.strides=2/replica_{i:02d}' for i in (3, 4, 5)]
  # test accuracy of seeds 0, 1, 2: 0.86, 0.91, 0.96
  assert row['test_accuracy_mean'] == pytest.approx(0.91)
  assert row['test_accuracy_std'] == pytest.approx(0.05)
  assert row['best_eval_accuracy_mean'] == pytest.approx(0.92)
  # train accuracy 0.89, 0.90, 0.93; gap 0.03, -0.01, -0.03: mean -1/300, deviations
  # (0.10, -0.02, -0.08) / 3, squares summing to 0.0168 / 9, over n - 1 = 2.
  assert row['train_accuracy_mean'] == pytest.approx(2.72 / 3)
  assert row['gap_mean'] == pytest.approx(-0.01 / 3)
  assert row['gap_std'] == pytest.approx(math.sqrt(0.0084) / 3)
  assert row['wall_s_mean'] == 20.0 and row['wall_s_std'] == 0.0
  assert row['images_per_sec_mean'] == 2000.0
  assert (row['params'], row['flops']) == (TINY_PARAMS[2], TINY_FLOPS[2])
  assert (_row(rows, 0.0, 1)['params'], _row(rows, 0.0, 1)['flops']) == (
      TINY_PARAMS[1], TINY_FLOPS[1])
  assert _row(rows, 0.0, 1)['test_accuracy_mean'] == pytest.approx(0.85)


def test_one_seed_has_no_std_and_missing_values_stay_missing():
  group = sweep.Group('all', {}, [{'model.dropout_rate': 0.0, 'seed': 0}])
  summary = {'test_accuracy': 0.9, 'best_eval_accuracy': None, 'wall_s': 1.0,
             'train_images_per_sec': 5.0}
  (row,) = sweep.aggregate({'model.dropout_rate': [0.0]}, [group], {'all': [summary]},
                           {'all': (10, None)})
  assert row['test_accuracy_mean'] == 0.9 and row['test_accuracy_std'] is None
  assert row['best_eval_accuracy_mean'] is None and row['gap_mean'] is None
  table = sweep.format_table([row], {'model.dropout_rate': [0.0]})
  assert '| 0.0 | 1 | 90.00 ± – | – | – | – | 10 | – | 1.0 ± – | 5 ± – |' in table


def test_results_csv_and_md_hold_the_rows(fake_sweep):
  workdir, rows, _ = fake_sweep
  with open(os.path.join(workdir, sweep.RESULTS_CSV)) as f:
    table = list(csv.DictReader(f))
  assert list(table[0]) == [
      'model.dropout_rate', 'model.strides', 'group', 'n', 'test_accuracy_mean',
      'test_accuracy_std', 'best_eval_accuracy_mean', 'best_eval_accuracy_std',
      'train_accuracy_mean', 'train_accuracy_std', 'gap_mean', 'gap_std', 'wall_s_mean',
      'wall_s_std', 'images_per_sec_mean', 'images_per_sec_std', 'params', 'flops']
  last = table[3]
  assert (last['model.dropout_rate'], last['model.strides'], last['n']) == ('0.5', '2', '3')
  assert float(last['test_accuracy_mean']) == pytest.approx(0.91)
  assert float(last['test_accuracy_std']) == pytest.approx(0.05)
  assert int(last['params']) == TINY_PARAMS[2] and int(last['flops']) == TINY_FLOPS[2]
  with open(os.path.join(workdir, sweep.RESULTS_MD)) as f:
    text = f.read()
  assert 'Command: `test cmd`' in text and 'Seeds: [0, 1, 2]' in text
  # Where it ran, from the environment sweep.json recorded.
  import jax
  with open(os.path.join(workdir, sweep.MANIFEST_FILE)) as f:
    env = json.load(f)['environment']
  assert (f'Environment (recorded in sweep.json): {env["date"][:10]}; ' in text
          and f'; jax {jax.__version__}, ' in text and f'git {env["git_commit"][:7]}.' in text)
  assert ('| model.dropout_rate | model.strides | seeds | test acc % | best eval acc % | '
          'train acc % | gap (pp) | params | FLOPs | wall s | img/s |') in text
  assert (f'| 0.5 | 2 | 3 | 91.00 ± 5.00 | 92.00 ± 5.00 | 90.67 ± 2.08 | -0.33 ± 3.06 | '
          f'{TINY_PARAMS[2]:,} | {TINY_FLOPS[2]:,} | 20.0 ± 0.0 | 2000 ± 0 |') in text
  for name in ('test_accuracy', 'overfitting_gap', 'learning_curves'):
    assert f'![{name}]({name}.png)' in text
    with open(os.path.join(workdir, f'{name}.png'), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_plots_draw_the_aggregated_numbers(fake_sweep):
  workdir, rows, _ = fake_sweep
  plot = sweep_figures.test_accuracy(rows, AXES)
  assert plot.data['x_key'] == 'model.dropout_rate'
  assert list(plot.data['lines']) == ['strides=1', 'strides=2']
  line = plot.data['lines']['strides=2']
  np.testing.assert_allclose(line['x'], [0.0, 0.5])
  np.testing.assert_allclose(line['mean'], [_row(rows, r, 2)['test_accuracy_mean']
                                            for r in (0.0, 0.5)])
  np.testing.assert_allclose(line['std'], [0.05, 0.05])
  gap = sweep_figures.overfitting_gap(rows, AXES).data['lines']['strides=1']
  for key, name in (('gap', 'gap_mean'), ('gap_std', 'gap_std'),
                    ('train', 'train_accuracy_mean'), ('test', 'test_accuracy_mean')):
    np.testing.assert_allclose(gap[key], [_row(rows, r, 1)[name] for r in (0.0, 0.5)])
  curves = sweep_figures.learning_curves(rows, AXES, sweep.read_curves(workdir, rows)).data
  assert list(curves) == ['dropout_rate=0.0, strides=1', 'dropout_rate=0.0, strides=2',
                          'dropout_rate=0.5, strides=1', 'dropout_rate=0.5, strides=2']
  curve = curves['dropout_rate=0.5, strides=2']
  # seeds 0, 1, 2: the loss's seed term averages to 0.1, the accuracy's to 0.01
  np.testing.assert_allclose(curve['epoch_train'], [1, 2, 3])
  np.testing.assert_allclose(curve['train_loss'], [1.1, 0.6, 1 / 3 + 0.1])
  np.testing.assert_allclose(curve['eval_accuracy'], [0.61, 0.71, 0.81])


def test_plots_without_a_dropout_axis_use_the_first_numeric_one():
  assert sweep_figures.x_key({'model.pool': ['max', 'avg'], 'model.strides': [1, 2]}) == (
      'model.strides')
  assert sweep_figures.x_key({'model.pool': ['max', 'avg']}) == 'model.pool'
  assert sweep_figures.x_key({}) is None
  axes = {'model.pool': ['max', 'avg']}
  rows = [{'model.pool': p, 'n': 2, 'test_accuracy_mean': a, 'test_accuracy_std': 0.01}
          for p, a in (('avg', 0.8), ('max', 0.9))]
  line = sweep_figures.test_accuracy(rows, axes).data['lines']['all']
  np.testing.assert_allclose(line['x'], [0, 1])  # in the axis' order, named on the ticks
  np.testing.assert_allclose(line['mean'], [0.9, 0.8])
  single = [{'n': 3, 'test_accuracy_mean': 0.7, 'test_accuracy_std': None}]
  line = sweep_figures.test_accuracy(single, {}).data['lines']['all']
  np.testing.assert_allclose(line['mean'], [0.7])
  assert np.isnan(line['std'][0])


def test_resume_skips_finished_groups_and_reruns_the_unfinished(tmp_path):
  workdir = str(tmp_path / 'run')
  runner = FakeRunner()
  first = sweep.run_sweep(tiny_config(), workdir, AXES, 2, runner=runner, **QUIET)
  assert len(runner.calls) == 2
  again = FakeRunner()
  lines = []
  rows = sweep.run_sweep(tiny_config(), workdir, AXES, 2, runner=again, log=lines.append)
  assert again.calls == [] and rows == first
  assert all('finished earlier' in line for line in lines)
  # An interrupted group (no summary.json yet) is handed to the runner, which resumes it.
  os.remove(os.path.join(workdir, 'model.strides=2', 'summary.json'))
  for i in range(4):
    os.remove(os.path.join(workdir, 'model.strides=2', f'replica_{i:02d}', 'metrics.jsonl'))
    os.rmdir(os.path.join(workdir, 'model.strides=2', f'replica_{i:02d}'))
  sweep.run_sweep(tiny_config(), workdir, AXES, 2, runner=again, **QUIET)
  assert [os.path.basename(w) for _, w, _ in again.calls] == ['model.strides=2']


def test_a_different_sweep_or_a_foreign_folder_is_refused_untouched(fake_sweep, tmp_path):
  workdir, _, _ = fake_sweep
  before = _digest(workdir)
  runner = FakeRunner()
  changes = [(dict(AXES, **{'model.strides': [1]}), 3, tiny_config(), r'axes'),
             (AXES, 2, tiny_config(), r'seeds: \[0, 1, 2\] -> \[0, 1\]'),
             (AXES, 3, tiny_config(), r'config.num_epochs: 3 -> 4')]
  changes[2][2].num_epochs = 4
  for axes, seeds, config, match in changes:
    with pytest.raises(ValueError, match=rf'different sweep.*{match}.*Nothing was changed'):
      sweep.run_sweep(config, workdir, axes, seeds, runner=runner, **QUIET)
  assert runner.calls == [] and _digest(workdir) == before
  (tmp_path / 'train_run').mkdir()
  (tmp_path / 'train_run' / 'config.json').write_text('{}')
  with pytest.raises(ValueError, match='not a sweep workdir'):
    sweep.run_sweep(tiny_config(), str(tmp_path / 'train_run'), AXES, 1, runner=runner,
                    **QUIET)


def test_a_setting_whose_model_cannot_run_fails_before_anything_is_written(tmp_path):
  config = config_utils.load_config(os.path.join(CONFIGS, 'lenet5_fashion_mnist.py'))
  runner = FakeRunner()
  with pytest.raises(ValueError, match=r'model.stem_stride=2: c5: conv: kernel size 5'):
    sweep.run_sweep(config, str(tmp_path / 'run'), {'model.stem_stride': [1, 2]}, 1,
                    runner=runner, **QUIET)
  assert runner.calls == [] and not os.path.exists(tmp_path / 'run')


@pytest.mark.parametrize('name', ['ablation_alexnet_small_dropout',
                                  'ablation_resnet20_dropout'])
def test_cifar_ablations_stop_with_the_prepare_error(name, tmp_path):
  config = config_utils.load_config(os.path.join(CONFIGS, f'{name}.py'))
  config.dataset.data_dir = str(tmp_path / 'no_data')
  axes = config_utils.load_sweep(os.path.join(CONFIGS, f'{name}.py'))
  assert list(axes) == ['model.dropout_rate'] and 0.0 in axes['model.dropout_rate']
  with pytest.raises(NotPreparedError, match=r'python -m cnn_jax.data prepare cifar10'):
    sweep.run_sweep(config, str(tmp_path / 'run'), axes, 2, **QUIET)


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path_factory):
  """2 dropout rates x 2 strides x 2 seeds, one epoch, through python -m experiments.sweep."""
  data_dir = prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                              tmp_path_factory.mktemp('toy_tfds'))
  workdir = str(tmp_path_factory.mktemp('e2e') / 'sweep')
  env = subprocess_env()
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', f'--config=tests/configs/tiny.py:{data_dir}',
       f'--workdir={workdir}', '--sweep=model.dropout_rate=0,0.5', '--sweep',
       'model.strides=1,2', '--seeds=2', '--config.num_epochs=1'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '| model.dropout_rate | model.strides | seeds | test acc % |' in result.stdout
  for name in ('sweep.json', 'results.csv', 'results.md', 'test_accuracy.png',
               'overfitting_gap.png', 'learning_curves.png'):
    assert os.path.exists(os.path.join(workdir, name)), name
  with open(os.path.join(workdir, sweep.RESULTS_CSV)) as f:
    table = list(csv.DictReader(f))
  assert [(r['model.dropout_rate'], r['model.strides'], r['n']) for r in table] == [
      ('0.0', '1', '2'), ('0.0', '2', '2'), ('0.5', '1', '2'), ('0.5', '2', '2')]
  for strides in (1, 2):
    with open(os.path.join(workdir, f'model.strides={strides}', 'summary.json')) as f:
      replicas = json.load(f)['replicas']
    assert [r['variant'] for r in replicas] == [
        {'model.dropout_rate': r, 'seed': s} for r in (0.0, 0.5) for s in (0, 1)]
    rows = [r for r in table if r['model.strides'] == str(strides)]
    for row, replica_pair in zip(rows, (replicas[:2], replicas[2:])):
      # summary.py's count equals the trained state's, and the hand count
      assert int(row['params']) == replica_pair[0]['num_params'] == TINY_PARAMS[strides]
      tests = [r['test_accuracy'] for r in replica_pair]
      gaps = [r['train_accuracy'] - r['test_accuracy'] for r in replica_pair]
      assert float(row['test_accuracy_mean']) == pytest.approx(np.mean(tests))
      assert float(row['test_accuracy_std']) == pytest.approx(abs(tests[0] - tests[1]) /
                                                              math.sqrt(2))
      assert float(row['gap_mean']) == pytest.approx(np.mean(gaps))
      for i in (0, 1):
        assert os.path.exists(os.path.join(workdir, f'model.strides={strides}',
                                           f'replica_{i:02d}', 'metrics.jsonl'))


def test_plots_label_axes_and_every_panel_in_words():
  axes = {'model.pool': ['max', 'conv'], 'model.dropout_rate': [0.0, 0.5]}
  rows = [{'model.pool': p, 'model.dropout_rate': r, 'n': 1, 'test_accuracy_mean': 0.9,
           'test_accuracy_std': None, 'train_accuracy_mean': 0.95, 'gap_mean': 0.05,
           'gap_std': None} for p in ('max', 'conv') for r in (0.0, 0.5)]
  for plot in (sweep_figures.test_accuracy(rows, axes),
               sweep_figures.overfitting_gap(rows, axes)):
    for ax in plot.figure.axes:
      assert ax.get_xlabel() == 'dropout rate (after each conv block)'
      labels = [t.get_text() for t in ax.get_legend().texts]
      assert any(t.startswith('stride-2 conv instead of pooling') for t in labels)
      assert any(t.startswith('max pooling') for t in labels)


def test_each_setting_is_tested_against_its_baseline_and_the_page_says_what_it_supports(
    fake_sweep):
  workdir, rows, _ = fake_sweep
  found = sweep.comparisons(rows, AXES)
  # Rate 0.5 against rate 0 at each stride; every seed is 0.05 up (0.1 * rate).
  assert [(c['row']['model.strides'], c['baseline']['model.dropout_rate'])
          for c in found] == [(1, 0.0), (2, 0.0)]
  for c in found:
    assert c['row']['test_accuracies'] == pytest.approx([0.85, 0.90, 0.95]
                                                        if c['row']['model.strides'] == 1
                                                        else [0.86, 0.91, 0.96])
    reference = scipy_stats.ttest_ind(c['row']['test_accuracies'],
                                      c['baseline']['test_accuracies'], equal_var=False)
    assert c['test']['p'] == pytest.approx(reference.pvalue)
    assert not c['test']['significant']  # 5 points against a seed spread of 5
  with open(os.path.join(workdir, sweep.RESULTS_MD)) as f:
    text = f.read()
  assert "Each setting against model.dropout_rate=0.0 with its other settings" in text
  assert 'No setting differs detectably from its baseline: with 3 seeds' in text
  assert 'supports no conclusion about model.dropout_rate' in text
  # The fake baselines fit (0.94 + 0.95 + 0.98) / 3 = 95.7% of their training images.
  assert 'under-fitting' not in text


def test_a_clear_difference_is_called_significant_and_an_underfit_baseline_named():
  axes = {'model.dropout_rate': [0.0, 0.5]}
  rows = [{'model.dropout_rate': 0.0, 'n': 3, 'test_accuracies': [0.80, 0.81, 0.80],
           'train_accuracy_mean': 0.85},
          {'model.dropout_rate': 0.5, 'n': 3, 'test_accuracies': [0.70, 0.71, 0.70],
           'train_accuracy_mean': 0.75}]
  lines = sweep.interpret(rows, axes)
  assert lines[2].startswith('- dropout_rate=0.5: -10.00 points, p = ')
  assert lines[2].endswith(': significant')
  assert lines[4] == ('1 of 1 settings differ detectably from their baseline (0 higher, '
                      '1 lower); 0 are within the seed noise.')
  assert 'fits only 85.0% of its training images' in lines[6]
