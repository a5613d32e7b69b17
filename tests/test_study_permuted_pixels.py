"""The permuted-pixels study: its runs, its test statistics and the tiny setting end to end."""

import json
import os

import numpy as np
import pytest
from idx_files import prepare_toy_tfds
from scipy import stats as scipy_stats

from cnn_jax import config_utils, provenance, studies
from cnn_jax.studies import permuted_pixels
from experiments.configs.default import validate

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'experiments', 'configs')
QUIET = dict(log=lambda *_: None)


def _differences(a, b) -> dict:
  old, new = provenance.flatten_config(a.to_dict()), provenance.flatten_config(b.to_dict())
  return {k: (old.get(k), new.get(k)) for k in old.keys() | new.keys()
          if old.get(k) != new.get(k)}


def test_registered():
  assert studies.get('permuted_pixels') is permuted_pixels
  assert permuted_pixels.DEFAULT_SEEDS >= 3


@pytest.mark.parametrize('tiny', [False, True])
def test_runs_differ_from_their_model_only_in_the_permutation(tiny):
  configs = permuted_pixels.runs(CONFIG_DIR, tiny=tiny)
  assert list(configs) == ['mlp', 'mlp_permuted', 'cnn', 'cnn_permuted']
  for label, file in (('mlp', 'mlp_fashion_mnist.py'), ('cnn', 'fashion_mnist_lesson.py')):
    base = config_utils.load_config(os.path.join(CONFIG_DIR, file))
    assert _differences(configs[label], configs[f'{label}_permuted']) == {
        'dataset.permute_seed': (-1, permuted_pixels.PERMUTE_SEED)}
    if not tiny:  # the committed runs are the config files as they stand
      assert _differences(base, configs[label]) == {}
    for config in (configs[label], configs[f'{label}_permuted']):
      validate(config)


def test_compare_matches_scipys_welch_test_and_interval():
  a, b = [0.912, 0.905, 0.909, 0.915], [0.881, 0.893, 0.887]
  test = permuted_pixels.compare(a, b)
  reference = scipy_stats.ttest_ind(a, b, equal_var=False)
  low, high = reference.confidence_interval(0.95)
  assert test['diff'] == pytest.approx(np.mean(a) - np.mean(b))
  assert test['p'] == pytest.approx(reference.pvalue, rel=1e-9)
  assert (test['low'], test['high']) == (pytest.approx(low, rel=1e-9),
                                         pytest.approx(high, rel=1e-9))
  assert test['significant'] and 'significant' in test['verdict']
  # No spread on both sides: no statistic, no interval.
  flat = permuted_pixels.compare([0.9, 0.9], [0.8, 0.8])
  assert flat['p'] is None and flat['low'] is None and flat['high'] is None
  assert permuted_pixels.interval(flat).startswith('no interval')


def _results(mlp_change, cnn_change):
  """Results with the given per-seed accuracy changes (only what the reading reads)."""
  base = [0.88, 0.885, 0.882]
  acc = {'mlp': base, 'mlp_permuted': [x + d for x, d in zip(base, mlp_change)],
         'cnn': [x + 0.03 for x in base]}
  acc['cnn_permuted'] = [x + d for x, d in zip(acc['cnn'], cnn_change)]
  return {'seeds': [0, 1, 2],
          'changes': {label: permuted_pixels.compare(acc[f'{label}_permuted'], acc[label])
                      for label in ('mlp', 'cnn')},
          'gaps': {'original': permuted_pixels.compare(acc['cnn'], acc['mlp']),
                   'permuted': permuted_pixels.compare(acc['cnn_permuted'],
                                                       acc['mlp_permuted'])}}


def test_the_reading_follows_the_tests():
  holds = permuted_pixels.interpretation(_results([0.002, -0.003, 0.001],
                                                  [-0.05, -0.055, -0.06]))
  assert 'The claim holds at the 5% level' in holds
  assert 'the MLP shows no evidence of a change' in holds
  assert 'the CNN (dense head) drops (' in holds
  fails = permuted_pixels.interpretation(_results([-0.05, -0.055, -0.06],
                                                  [0.002, -0.003, 0.001]))
  assert 'does not hold as stated' in fails
  assert 'the MLP drops (' in fails and 'the CNN (dense head) shows no evidence' in fails


@pytest.fixture(scope='module')
def toy_data_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


def on_toy_data(monkeypatch, module, data_dir):
  """Points ``module.runs`` at the toy dataset (the tiny setting, never the real one)."""
  runs = module.runs

  def toy_runs(config_dir, tiny=False):
    return {name: config_utils.apply_overrides(config, {'dataset.data_dir': data_dir,
                                                        'dataset.prepare_from_dir': ''})
            for name, config in runs(config_dir, tiny).items()}
  monkeypatch.setattr(module, 'runs', toy_runs)


def replica_accuracies(run_dir, seeds):
  """``test_accuracy`` of each replica's own summary.json."""
  accuracies = []
  for i in range(seeds):
    with open(os.path.join(run_dir, f'replica_{i:02d}', 'summary.json')) as f:
      accuracies.append(json.load(f)['test_accuracy'])
  return accuracies


@pytest.mark.slow
def test_tiny_setting_end_to_end(tmp_path, monkeypatch, toy_data_dir):
  on_toy_data(monkeypatch, permuted_pixels, toy_data_dir)
  workdir, out = tmp_path / 'runs', tmp_path / 'out'
  results = permuted_pixels.run(CONFIG_DIR, seeds=2, workdir=str(workdir), out=str(out),
                                tiny=True, command='pytest', **QUIET)
  with open(out / 'results.json') as f:
    assert json.load(f) == provenance.jsonable(results)
  assert (out / permuted_pixels.FIGURE).stat().st_size > 0
  markdown = (out / 'results.md').read_text()
  assert markdown == permuted_pixels.format_results(results)
  assert set(results['runs']) == {'mlp', 'mlp_permuted', 'cnn', 'cnn_permuted'}
  for name, record in results['runs'].items():
    accuracies = replica_accuracies(workdir / name, 2)
    assert record['test_accuracies'] == accuracies
    assert record['mean'] == pytest.approx(np.mean(accuracies))
    assert record['std'] == pytest.approx(np.std(accuracies, ddof=1))
    assert permuted_pixels.mean_std(record) in markdown
  for label in ('mlp', 'cnn'):
    change = results['changes'][label]
    original = results['runs'][label]['test_accuracies']
    permuted = results['runs'][f'{label}_permuted']['test_accuracies']
    assert change['diff'] == pytest.approx(np.mean(permuted) - np.mean(original))
    assert permuted_pixels.interval(change) in markdown
  assert permuted_pixels.interpretation(results) in markdown
  # The permuted runs saw other inputs: their accuracies are not the originals'.
  assert results['runs']['cnn']['test_accuracies'] != \
      results['runs']['cnn_permuted']['test_accuracies']
  # A second run reads the finished runs back.
  again = permuted_pixels.run(CONFIG_DIR, seeds=2, workdir=str(workdir), out=None,
                              tiny=True, **QUIET)
  assert all(r['resumed'] for r in again['runs'].values())
  assert again['changes'] == results['changes']
