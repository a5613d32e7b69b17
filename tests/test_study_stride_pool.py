"""The stride-vs-pooling study: its variants against closed forms, its page against its runs."""

import json
import os

import numpy as np
import pytest
from fake_runs import write_replicas_workdir
from idx_files import prepare_toy_tfds
from scipy import stats as scipy_stats

from cnn_jax import config_utils, models, studies
from cnn_jax.studies import stride_pool
from cnn_jax.summary import summarize
from experiments.configs.default import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, 'experiments', 'configs')
QUIET = dict(log=lambda *_: None)


def _simple_stride2_flops(w0, w1):
  """FLOPs of the 16/32 simple CNN's layout with stride-2 3x3 SAME convs and no pooling
  (28 -> 14 -> 7), widths w0, w1: multiply-add = 2 plus one per bias."""
  return (14 * 14 * w0 * (2 * 9 + 1) + 7 * 7 * w1 * (2 * 9 * w0 + 1)
          + 128 * (2 * 7 * 7 * w1 + 1) + 10 * (2 * 128 + 1))


def _simple_params(w0, w1):
  return 10 * w0 + (9 * w0 + 1) * w1 + (7 * 7 * w1 + 1) * 128 + 129 * 10


def _lenet_stride2_flops(c1, c3):
  """LeNet-5 with stride-2 C1 (5x5 on the padded 32x32: 14x14) and C3 (5x5: 5x5), no
  pooling, C5 120 on 1x1, F6 84, 10 outputs."""
  return (14 * 14 * c1 * (2 * 25 + 1) + 5 * 5 * c3 * (2 * 25 * c1 + 1)
          + 120 * (2 * 25 * c3 + 1) + 84 * (2 * 120 + 1) + 10 * (2 * 84 + 1))


def _widened(base, count, flops, target):
  """The widening rule with a closed-form FLOPs count: the common-factor scan."""
  previous = None
  for first in range(base[0], 100 * base[0]):
    features = tuple(round(f * first / base[0]) if i < count else f
                     for i, f in enumerate(base))
    if flops(*features[:count]) >= target:
      if previous and abs(flops(*previous[:count]) - target) < abs(flops(*features[:count])
                                                                   - target):
        return previous
      return features
    previous = features
  raise AssertionError('no width reached the target')


def test_registered():
  assert studies.get('stride_pool') is stride_pool
  assert stride_pool.DEFAULT_SEEDS >= 3


def test_simple_cnn_variants_keep_the_maps_and_match_params_or_flops():
  runs = stride_pool.runs(CONFIGS)
  assert [n for n in runs if n.startswith('simple_cnn')] == [
      'simple_cnn_max_pool', 'simple_cnn_avg_pool', 'simple_cnn_stride2',
      'simple_cnn_stride2_wide', 'simple_cnn_stride2_and_pool']
  for name, config in runs.items():
    validate(config, name)
  cost = {n: stride_pool.cost(c) for n, c in runs.items()}
  pooled = cost['simple_cnn_max_pool']
  # Max pooling: 2 x 2 comparisons per pooled output on top of the stride-2 layout's
  # convs done at four times the positions.
  assert pooled.flops == (28 * 28 * 16 * 19 + 14 * 14 * 16 * 4 + 14 * 14 * 32 * 289
                          + 7 * 7 * 32 * 4 + 128 * (2 * 1568 + 1) + 10 * 257)
  assert pooled.params == cost['simple_cnn_stride2'].params == _simple_params(16, 32)
  assert pooled.params == 206_922  # the sweep's stride-1 count
  assert cost['simple_cnn_stride2'].flops == _simple_stride2_flops(16, 32)
  assert cost['simple_cnn_stride2_and_pool'].params == 22_602  # the sweep's stride 2
  wide = tuple(runs['simple_cnn_stride2_wide'].model.features)
  assert wide == _widened((16, 32), 2, _simple_stride2_flops, pooled.flops)
  assert cost['simple_cnn_stride2_wide'].flops == _simple_stride2_flops(*wide)
  assert cost['simple_cnn_stride2_wide'].params == _simple_params(*wide)
  assert abs(cost['simple_cnn_stride2_wide'].flops / pooled.flops - 1) < 0.02
  maps = {n: stride_pool._last_map(cost[n]).output_shape for n in runs
          if n.startswith('simple_cnn')}
  assert maps == {'simple_cnn_max_pool': (7, 7, 32), 'simple_cnn_avg_pool': (7, 7, 32),
                  'simple_cnn_stride2': (7, 7, 32), 'simple_cnn_stride2_wide': (7, 7, wide[1]),
                  'simple_cnn_stride2_and_pool': (2, 2, 32)}


def test_lenet_stride2_replaces_s2_and_s4_at_their_map_sizes():
  runs = stride_pool.runs(CONFIGS)
  config = runs['lenet5_stride2']
  summary = summarize(models.create('lenet5', **{k: v for k, v in config.model.items()
                                                 if k != 'name'}), (28, 28, 1))
  shapes = {r.name: r.output_shape for r in summary.rows}
  assert shapes['c1'] == (14, 14, 6) and shapes['c3'] == (5, 5, 16)
  assert shapes['c5'] == (1, 1, 120) and 's2' not in shapes and 's4' not in shapes
  assert summary.params == stride_pool.cost(runs['lenet5_max_pool']).params == 61_706
  assert summary.flops == _lenet_stride2_flops(6, 16)
  target = stride_pool.cost(runs['lenet5_max_pool']).flops
  wide = tuple(runs['lenet5_stride2_wide'].model.features)
  assert wide == (*_widened((6, 16), 2, _lenet_stride2_flops, target), 120)
  assert stride_pool.cost(runs['lenet5_stride2_wide']).flops == _lenet_stride2_flops(*wide[:2])


def test_widening_refuses_a_target_below_the_start():
  config = stride_pool.runs(CONFIGS)['simple_cnn_stride2']
  with pytest.raises(ValueError, match='already have 916,842 FLOPs, above the target 1,000'):
    stride_pool.widen_to_flops(config, 2, 1000)


class FakeRunner:
  """Fixed accuracies per variant; writes the files resume reads."""

  ACCURACIES = {'max_pool': (0.90, 0.91, 0.92), 'avg_pool': (0.95, 0.96, 0.97),
                'stride2': (0.905, 0.91, 0.915), 'stride2_wide': (0.80, 0.81, 0.82),
                'stride2_and_pool': (0.85, 0.86, 0.87)}

  def __init__(self):
    self.calls = []

  def __call__(self, config, workdir, variants, log=print):
    self.calls.append(workdir)
    variant = next(v for v in sorted(self.ACCURACIES, key=len, reverse=True)
                   if os.path.basename(workdir).endswith(v))
    summaries = [{'test_accuracy': a, 'wall_s': 10.0, 'train_images_per_sec': 1000.0,
                  'variant': v} for a, v in zip(self.ACCURACIES[variant], variants)]
    write_replicas_workdir(workdir, config, variants, summaries)
    return summaries


def test_paragraph_words_follow_the_tests(tmp_path):
  runner = FakeRunner()
  results = stride_pool.run(CONFIGS, seeds=3, workdir=str(tmp_path / 'runs'), out=None,
                            command='study --test', runner=runner, **QUIET)
  assert len(runner.calls) == 9
  text = stride_pool.format_results(results)
  for model in ('simple CNN', 'LeNet-5'):
    paragraph = next(line for line in text.splitlines() if line.startswith(f'**{model}.**'))
    assert ('So at equal parameters stride 2 is not distinguishable from max pooling, and '
            'at equal FLOPs stride 2 falls short of max pooling, at p < 0.05 over 3 seeds'
            in paragraph)
    assert 'Average pooling: +5.00 points, p = ' in paragraph
  assert 'leaves a 2x2 map for the dense head instead of 7x7, so it has 9.2x fewer' in text
  # Read back, not trained again.
  again = stride_pool.run(CONFIGS, seeds=3, workdir=str(tmp_path / 'runs'), out=None,
                          runner=runner, **QUIET)
  assert len(runner.calls) == 9 and all(r['resumed'] for r in again['records'])


@pytest.fixture(scope='module')
def toy_configs(tmp_path_factory):
  """A config folder whose study base configs read the toy dataset."""
  data_dir = prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                              tmp_path_factory.mktemp('toy_tfds'))
  folder = tmp_path_factory.mktemp('configs')
  for spec in stride_pool.MODELS.values():
    module = spec.config[:-len('.py')]
    (folder / spec.config).write_text(
        f'from experiments.configs import {module}\n\n\n'
        f'def get_config():\n'
        f'  config = {module}.get_config()\n'
        f'  config.dataset.data_dir = {data_dir!r}\n'
        f'  config.dataset.prepare_from_dir = ""\n'
        f'  return config\n')
  return str(folder)


@pytest.mark.slow
def test_tiny_study_end_to_end_reports_its_runs(tmp_path, toy_configs):
  workdir, out = tmp_path / 'runs', tmp_path / 'out'
  results = stride_pool.run(toy_configs, seeds=2, workdir=str(workdir), out=str(out),
                            tiny=True, command='python -m experiments.study --tiny', **QUIET)
  records = results['records']
  assert [(r['model'], r['variant']) for r in records] == [
      (m, v) for m, vs in (('simple_cnn', ('max_pool', 'avg_pool', 'stride2', 'stride2_wide',
                                           'stride2_and_pool')),
                           ('lenet5', ('max_pool', 'avg_pool', 'stride2', 'stride2_wide')))
      for v in vs]
  with open(out / 'results.json') as f:
    saved = json.load(f)
  with open(out / 'results.md') as f:
    page = f.read()
  assert os.path.getsize(out / stride_pool.FIGURE) > 0
  rows = [line for line in page.splitlines() if line.startswith('| simple CNN |')
          or line.startswith('| LeNet-5 |')]
  assert len(rows) == len(records)
  by_key = {(r['model'], r['variant']): r for r in saved['records']}
  for row, r in zip(rows, records):
    with open(workdir / f'{r["model"]}_{r["variant"]}' / 'summary.json') as f:
      run = json.load(f)['replicas']
    accuracies = [s['test_accuracy'] for s in run]
    assert [s['variant']['seed'] for s in run] == [0, 1]
    assert by_key[(r['model'], r['variant'])]['test_accuracies'] == accuracies
    assert r['mean'] == pytest.approx(np.mean(accuracies))
    assert r['std'] == pytest.approx(np.std(accuracies, ddof=1))
    assert r['train_images_per_sec'] == run[0]['train_images_per_sec']
    cells = [c.strip() for c in row.split('|')[1:-1]]
    assert cells[3] == f'{r["params"]:,}' and cells[4] == f'{r["flops"]:,}'
    assert cells[7].startswith(f'{100 * np.mean(accuracies):.2f}%')
    assert cells[7].endswith('(2)')
    ref = next(x for x in records if x['model'] == r['model'] and x['variant'] == 'max_pool')
    if r is ref:
      assert cells[9] == 'reference'
      continue
    test = r['vs_max_pool']
    if test['p'] is not None:  # Welch against scipy's own
      assert test['p'] == pytest.approx(scipy_stats.ttest_ind(
          r['test_accuracies'], ref['test_accuracies'], equal_var=False).pvalue)
    assert cells[9].startswith(f'{100 * (r["mean"] - ref["mean"]):+.2f} points')
  assert saved['environment']['command'] == 'python -m experiments.study --tiny'
  assert saved['tiny'] is True and saved['seeds'] == 2
  assert page.count('**simple CNN.**') == page.count('**LeNet-5.**') == 1
