"""The reproduction harness: references, skipping, the verdicts, the table, resume, a tiny run."""

import json
import math
import os

import numpy as np
import pytest
from fake_runs import write_replicas_workdir
from idx_files import prepare_toy_tfds

from cnn_jax import config_utils, reproduce
from cnn_jax import data as data_lib
from cnn_jax.data import catalog
from cnn_jax.summary import summarize
from cnn_jax.train import replicas
from cnn_jax.train.trainer import build_model
from experiments.configs.default import validate

TINY_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'tiny.py')
CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'experiments', 'configs')
QUIET = dict(log=lambda *_: None)

# The published numbers as issues #6 and #18 state them (#18: the shuffled row of the
# MNIST-1D README, logistic 32%, MLP 68%, CNN 56%).
ISSUE_NUMBERS = {
    'mnist1d_cnn': 0.94, 'mnist1d_mlp': 0.68, 'mnist1d_logistic': 0.32,
    'mnist1d_cnn_shuffled': 0.56, 'mnist1d_mlp_shuffled': 0.68,
    'mnist1d_logistic_shuffled': 0.32,
    'fashion_mnist_cnn': 0.91, 'fashion_mnist_resnet18': 0.949, 'mnist_lenet5': 0.9905,
    'cifar10_resnet20': 0.9125, 'cifar10_resnet56': 0.9303,
}
# Parameter counts from the architectures' definitions, independent of our models: the
# MNIST-1D ConvBase prints 5,210; MLP 40-100-100-10 and logistic 40-10 by (n_in + 1) *
# n_out; convnet.py's 5x5 32 / 5x5 64 / dense 1024 on 7x7x64; LeNet-5 61,706; torchvision
# ResNet-18 (11,689,512) with a 1-channel stem conv (-2 * 64 * 49) and a 10-class head
# (-(512 + 1) * 990); the CIFAR ResNets from He et al.'s Table 6 reference code.
PARAMS = {
    'mnist1d_cnn': 5210,
    'mnist1d_mlp': 41 * 100 + 101 * 100 + 101 * 10,
    'mnist1d_logistic': 41 * 10,
    'mnist1d_cnn_shuffled': 5210,
    'mnist1d_mlp_shuffled': 41 * 100 + 101 * 100 + 101 * 10,
    'mnist1d_logistic_shuffled': 41 * 10,
    'fashion_mnist_cnn': (25 * 1 + 1) * 32 + (25 * 32 + 1) * 64 + (7 * 7 * 64 + 1) * 1024
                         + 1025 * 10,
    'fashion_mnist_resnet18': 11_689_512 - 2 * 64 * 49 - 513 * 990,
    'mnist_lenet5': 61706,
    'cifar10_resnet20': 269722,
    'cifar10_resnet56': 853018,
}


def _toy_reference(name, published, tolerance, rule):
  return reproduce.Reference(name, TINY_CONFIG, 'fashion_mnist', published, tolerance, rule,
                             'a test', 'https://example.org')


class FakeRunner:
  """Writes the workdir files train_replicas writes and returns given accuracies."""

  def __init__(self, accuracies, wall_s=(75.2, 74.0, 73.0)):
    self.accuracies, self.wall_s, self.calls = accuracies, wall_s, []

  def __call__(self, config, workdir, variants, log=print):
    self.calls.append((workdir, variants))
    summaries = [{'test_accuracy': a, 'wall_s': w, 'num_params': 1234, 'variant': v}
                 for a, w, v in zip(self.accuracies, self.wall_s, variants)]
    write_replicas_workdir(workdir, config, variants, summaries)
    return summaries


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


def test_references_state_the_issues_numbers_and_sources():
  assert {r.name: r.published for r in reproduce.REFERENCES} == ISSUE_NUMBERS
  assert len(set(reproduce.names())) == len(reproduce.REFERENCES)
  for ref in reproduce.REFERENCES:
    assert ref.rule in reproduce.RULES
    assert 0 <= ref.tolerance < 0.05 and ref.source and ref.url.startswith('http')
    assert ref.config == f'reproduce_{ref.name}.py'
  greydanus = [r for r in reproduce.REFERENCES if r.name.startswith('mnist1d')]
  assert all('arXiv:2011.14439' in r.source for r in greydanus)
  # The cheap references default to 10 seeds, the others to 3.
  assert {r.name: r.seeds for r in reproduce.REFERENCES} == {
      name: 10 if name.startswith('mnist1d') else 3 for name in ISSUE_NUMBERS}


@pytest.mark.parametrize('ref', reproduce.REFERENCES, ids=reproduce.names())
def test_every_config_loads_and_builds_its_model_on_its_dataset(ref):
  config = config_utils.load_config(os.path.join(CONFIGS, ref.config))
  assert config.dataset.name == ref.dataset
  shape = catalog.model_input_shape(config.dataset)  # raises for an unsupported dataset
  assert summarize(build_model(config), shape).params == PARAMS[ref.name]
  assert not config.dataset.eval_split or config.dataset.eval_split.startswith('train')


@pytest.mark.parametrize('model', ['cnn', 'mlp', 'logistic'])
def test_shuffled_configs_are_the_unshuffled_ones_on_one_fixed_permutation(model):
  plain = config_utils.load_config(os.path.join(CONFIGS, f'reproduce_mnist1d_{model}.py'))
  shuffled = config_utils.load_config(
      os.path.join(CONFIGS, f'reproduce_mnist1d_{model}_shuffled.py'))
  validate(shuffled, model)
  seed = shuffled.dataset.permute_seed
  assert seed >= 0 and plain.dataset.permute_seed == -1
  shuffled.dataset.permute_seed = -1
  assert shuffled.to_dict() == plain.to_dict()  # nothing else differs
  # The seed moves the 40 positions of MNIST-1D-shaped train and test inputs alike.
  rng = np.random.default_rng(0)
  splits = {'train': (rng.normal(size=(4, 40, 1)), np.arange(4)),
            'test': (rng.normal(size=(3, 40, 1)), np.arange(3))}
  moved = data_lib.permute_positions(splits, seed)
  perms = [np.argmax(np.all(moved[k][0][:, :, 0, None] == splits[k][0][:, None, :, 0],
                            axis=0), axis=1) for k in ('train', 'test')]
  assert sorted(perms[0]) == list(range(40)) and list(perms[0]) != list(range(40))
  assert list(perms[0]) == list(perms[1])


def _t975(dof):
  """Student t's 97.5% quantile in closed form (Cauchy for 1 dof; 2 dof: t = a
  sqrt(2 / (1 - a^2)), a = 2p - 1, from the cdf 1/2 + t / (2 sqrt(2 + t^2)))."""
  if dof == 1:
    return math.tan(math.pi * (0.975 - 0.5))
  a = 2 * 0.975 - 1
  assert dof == 2
  return a * math.sqrt(2 / (1 - a * a))


def _spread(mean, s):
  """Three values of mean ``mean`` and sample std ``s``: mean - s, mean, mean + s."""
  return [mean - s, mean, mean + s]


def test_verdict_reads_the_95_percent_interval_of_the_mean():
  assert _t975(1) == pytest.approx(12.7062047)  # the printed tables' values
  assert _t975(2) == pytest.approx(4.3026527)
  half = _t975(2) * 0.01 / math.sqrt(3)  # three seeds, sample std 0.01: 2.48 points
  at_least = _toy_reference('a', 0.94, 0.015, 'at_least')  # floor 0.925
  v = at_least.verdict(_spread(0.94, 0.01))
  assert (v['mean'], v['low'], v['high']) == pytest.approx((0.94, 0.94 - half, 0.94 + half))
  assert v['status'] == 'pass'
  # Passes while the upper end reaches the floor: mean 0.925 - half = 0.90016.
  assert at_least.verdict(_spread(0.925 - half + 1e-5, 0.01))['status'] == 'pass'
  assert at_least.verdict(_spread(0.925 - half - 1e-5, 0.01))['status'] == 'fail'
  # No spread: the interval is the mean, and the rule reads it as a point.
  assert at_least.verdict([0.93] * 3)['status'] == 'pass'
  assert at_least.verdict([0.92] * 3)['status'] == 'fail'
  # Two seeds: 1 dof, the interval mean ± 12.71 s / sqrt(2).
  v = at_least.verdict([0.90, 0.92])
  half2 = _t975(1) * math.sqrt(2e-4) / math.sqrt(2)
  assert (v['low'], v['high']) == pytest.approx((0.91 - half2, 0.91 + half2))
  # One seed: no interval, no verdict.
  assert at_least.verdict([0.99]) == {'mean': 0.99, 'low': None, 'high': None,
                                      'status': reproduce.TOO_FEW_SEEDS}

  within = _toy_reference('w', 0.68, 0.03, 'within')  # band [0.65, 0.71]
  half = _t975(2) * 0.02 / math.sqrt(3)
  for mean, status in [(0.65 - half + 1e-5, 'pass'), (0.65 - half - 1e-5, 'fail'),
                       (0.71 + half - 1e-5, 'pass'), (0.71 + half + 1e-5, 'fail'),
                       (0.68, 'pass')]:
    assert within.verdict(_spread(mean, 0.02))['status'] == status, mean
  assert within.verdict([0.64] * 3)['status'] == 'fail'
  assert within.verdict([0.65] * 3)['status'] == 'pass'


def test_verdict_at_ten_seeds_matches_scipy_t_interval():
  """An independent reference for the dof-9 quantile: scipy.stats.t.interval."""
  from scipy import stats as scipy_stats
  values = [0.945, 0.911, 0.927, 0.93, 0.918, 0.902, 0.936, 0.924, 0.94, 0.915]
  low, high = scipy_stats.t.interval(0.95, 9, loc=np.mean(values),
                                     scale=scipy_stats.sem(values))
  v = _toy_reference('a', 0.94, 0.015, 'at_least').verdict(values)
  assert (v['low'], v['high']) == pytest.approx((low, high))
  assert v['status'] == ('pass' if high >= 0.925 else 'fail')


def test_rule_texts():
  assert _toy_reference('a', 0.94, 0.015, 'at_least').rule_text() == '>= published - 1.5'
  assert _toy_reference('w', 0.68, 0.03, 'within').rule_text() == 'published ± 3'
  assert _toy_reference('f', 0.91, 0.0, 'at_least').rule_text() == '>= published'


def test_select_and_overrides_give_clear_errors():
  assert [r.name for r in reproduce.select(['mnist1d_mlp', 'mnist1d_cnn'])] == [
      'mnist1d_cnn', 'mnist1d_mlp']  # table order
  assert reproduce.select() == list(reproduce.REFERENCES)
  with pytest.raises(ValueError, match='unknown reference.*mnist1d_gru.*mnist1d_cnn'):
    reproduce.select(['mnist1d_gru'])
  ref = reproduce.select(['mnist1d_mlp'])[0]
  config = reproduce.reference_config(ref, CONFIGS, ['num_epochs=2',
                                                     'mnist1d_mlp:model.hidden=(7,)',
                                                     'mnist1d_cnn:num_epochs=9',
                                                     'dataset.data_dir=/x:y'])
  assert (config.num_epochs, config.model.hidden, config.dataset.data_dir) == (2, (7,), '/x:y')
  with pytest.raises(ValueError, match="unknown config field 'num_epoch'.*num_epochs"):
    reproduce.reference_config(ref, CONFIGS, ['num_epoch=2'])
  with pytest.raises(ValueError, match='names no reference'):
    reproduce.reference_config(ref, CONFIGS, ['mnist1d_gru:num_epochs=2'])
  with pytest.raises(ValueError, match=r"'num_epochs=2.5'.*float.*int"):
    reproduce.reference_config(ref, CONFIGS, ['num_epochs=2.5'])
  with pytest.raises(ValueError, match=r'not \[NAME:\]KEY=VALUE'):
    reproduce.reference_config(ref, CONFIGS, ['num_epochs'])


def test_missing_dataset_is_skipped_with_reason_and_prepare_command(tmp_path):
  """Also: a reference left out by --only still has its row, marked not run."""
  runner = FakeRunner([])
  refs = reproduce.select(['mnist_lenet5', 'cifar10_resnet20'])
  results = reproduce.run(refs, CONFIGS, workdir=str(tmp_path / 'runs'), out=str(tmp_path / 'out'),
                          overrides=[f'dataset.data_dir={tmp_path / "empty"}'],
                          not_run=reproduce.select(['mnist1d_cnn']), runner=runner, **QUIET)
  assert runner.calls == []
  not_run, mnist, cifar = results['references']  # in table order
  assert (not_run['name'], not_run['status']) == ('mnist1d_cnn', 'not run')
  assert mnist['status'] == cifar['status'] == 'skipped'
  assert 'mnist' in mnist['reason'] and 'not prepared' in mnist['reason']
  assert mnist['prepare_command'] == (f'python -m cnn_jax.data prepare mnist --data-dir '
                                      f'{tmp_path / "empty"} --from-dir FOLDER_WITH_IDX_FILES')
  assert cifar['prepare_command'].startswith('python -m cnn_jax.data prepare cifar10')
  with open(tmp_path / 'out' / 'results.md') as f:
    table = f.read()
  assert table.count('| skipped: ') == 2
  assert table.count('| not run (not selected by --only) |') == 1
  assert f'`{mnist["prepare_command"]}`' in table


def _rows(markdown):
  """The table's rows as lists of cells, keyed by the setting's name."""
  rows = [[c.strip() for c in line.strip('|').split(' | ')]
          for line in markdown.splitlines() if line.startswith('| toy_')]
  return {row[0].split(':')[0]: row for row in rows}


def test_table_from_fake_summaries(toy_dir, tmp_path):
  refs = [_toy_reference('toy_pass', 0.94, 0.015, 'at_least'),
          _toy_reference('toy_fail', 0.68, 0.03, 'within'),
          _toy_reference('toy_one', 0.68, 0.03, 'within')]
  overrides = [f'dataset.data_dir={toy_dir}']
  results = reproduce.run(refs[:1], CONFIGS, workdir=str(tmp_path), out=None,
                          overrides=overrides, runner=FakeRunner([0.93, 0.94, 0.95]), **QUIET)
  assert results['seeds'] is None  # each reference's default: 3 for a toy one
  results['references'] += reproduce.run(
      refs[1:2], CONFIGS, workdir=str(tmp_path), out=None, overrides=overrides,
      runner=FakeRunner([0.50, 0.52, 0.54]), **QUIET)['references']
  results['references'] += reproduce.run(
      refs[2:], CONFIGS, seeds=1, workdir=str(tmp_path), out=None, overrides=overrides,
      runner=FakeRunner([0.68]), **QUIET)['references']
  good, bad, one = results['references']
  # mean 0.94, sample std sqrt((0.01^2 + 0 + 0.01^2) / 2) = 0.01; likewise 0.52 and 0.02.
  assert good['mean'] == pytest.approx(0.94) and good['std'] == pytest.approx(0.01)
  assert bad['mean'] == pytest.approx(0.52) and bad['std'] == pytest.approx(0.02)
  # 0.94 ± 4.303 * 0.01 / sqrt(3) = [91.52, 96.48]; 0.52 ± 4.97 points, under 0.65.
  assert (good['low'], good['high']) == pytest.approx((0.915159, 0.964841), abs=1e-6)
  assert (good['status'], bad['status'], one['status']) == ('pass', 'fail',
                                                            reproduce.TOO_FEW_SEEDS)
  assert good['wall_s'] == 75.2 and good['epochs'] == 3 and good['num_params'] == 1234
  rows = _rows(reproduce.format_results(results))
  assert rows['toy_pass'][2:6] == ['94.00% ± 1.00 (3)', '[91.52, 96.48]',
                                   '>= published - 1.5', 'pass']
  assert rows['toy_fail'][2:6] == ['52.00% ± 2.00 (3)', '[47.03, 56.97]', 'published ± 3',
                                   'fail']
  assert rows['toy_one'][2:6] == ['68.00% (1)', 'none (one seed)', 'published ± 3',
                                  reproduce.TOO_FEW_SEEDS]
  assert rows['toy_pass'][0] == 'toy_pass: simple_cnn, 3 epochs'
  assert rows['toy_pass'][1].startswith('94.00% ([a test](https://example.org))')
  assert rows['toy_pass'][7] == '1 min 15 s'
  assert 'cores' in rows['toy_pass'][6] or ' x ' in rows['toy_pass'][6]


def test_each_reference_trains_its_default_seeds_unless_told(toy_dir, tmp_path):
  refs = [reproduce.Reference(name, TINY_CONFIG, 'fashion_mnist', 0.5, 0.1, 'at_least',
                              'a test', 'https://example.org', seeds)
          for name, seeds in [('toy_cheap', 4), ('toy_dear', 2)]]
  overrides = [f'dataset.data_dir={toy_dir}']
  runner = FakeRunner([0.6, 0.7, 0.8, 0.9], wall_s=[1.0] * 4)
  reproduce.run(refs, CONFIGS, workdir=str(tmp_path / 'own'), out=None, overrides=overrides,
                runner=runner, **QUIET)
  assert [len(variants) for _, variants in runner.calls] == [4, 2]
  runner.calls.clear()
  results = reproduce.run(refs, CONFIGS, seeds=3, workdir=str(tmp_path / 'told'), out=None,
                          overrides=overrides, runner=runner, **QUIET)
  assert [variants for _, variants in runner.calls] == [[{'seed': 0}, {'seed': 1},
                                                         {'seed': 2}]] * 2
  assert results['seeds'] == 3
  assert 'seeds 0..2,' in reproduce.format_results(results)


def test_finished_reference_is_read_back_not_rerun(toy_dir, tmp_path):
  refs = [_toy_reference('toy_resume', 0.5, 0.1, 'at_least')]
  overrides = [f'dataset.data_dir={toy_dir}']
  runner = FakeRunner([0.7, 0.8])
  first = reproduce.run(refs, CONFIGS, seeds=2, workdir=str(tmp_path), out=None,
                        overrides=overrides, runner=runner, **QUIET)
  assert len(runner.calls) == 1
  assert runner.calls[0] == (str(tmp_path / 'toy_resume'), [{'seed': 0}, {'seed': 1}])
  again = reproduce.run(refs, CONFIGS, seeds=2, workdir=str(tmp_path), out=None,
                        overrides=overrides, runner=runner, **QUIET)
  assert len(runner.calls) == 1  # not trained again
  (before,), (after,) = first['references'], again['references']
  assert (before['resumed'], after['resumed']) == (False, True)
  assert after['test_accuracies'] == before['test_accuracies'] == [0.7, 0.8]
  assert 'trained by an earlier command (the wall time includes any interrupted part): ' \
         'toy_resume.' in reproduce.format_results(again)
  # A finished workdir of other seeds or another config is an error, not a silent reuse.
  with pytest.raises(ValueError, match=r'seeds \[0, 1\], not \[0, 1, 2\]'):
    reproduce.run(refs, CONFIGS, seeds=3, workdir=str(tmp_path), out=None, overrides=overrides,
                  runner=runner, **QUIET)
  with pytest.raises(ValueError, match='different config'):
    reproduce.run(refs, CONFIGS, seeds=2, workdir=str(tmp_path), out=None,
                  overrides=overrides + ['num_epochs=1'], runner=runner, **QUIET)
  assert len(runner.calls) == 1


@pytest.mark.slow
def test_tiny_reference_end_to_end(toy_dir, tmp_path):
  ref = _toy_reference('toy_e2e', 0.1, 0.0, 'at_least')
  out = tmp_path / 'out'
  results = reproduce.run([ref], CONFIGS, seeds=2, workdir=str(tmp_path / 'runs'), out=str(out),
                          overrides=[f'dataset.data_dir={toy_dir}', 'num_epochs=2'],
                          command='python -m experiments.reproduce --test', **QUIET)
  (record,) = results['references']
  assert not record['resumed']
  assert len(record['test_accuracies']) == 2
  # The verdict follows the rule: the interval reaches the published 10%, no tolerance.
  assert record['mean'] == pytest.approx(sum(record['test_accuracies']) / 2)
  assert record['status'] == ('pass' if record['high'] >= 0.1 else 'fail')
  # Two seeds: the interval is mean ± t(0.975, 1 dof) * std / sqrt(2).
  half = _t975(1) * record['std'] / math.sqrt(2)
  assert (record['low'], record['high']) == pytest.approx((record['mean'] - half,
                                                           record['mean'] + half))
  assert all(0 <= a <= 1 for a in record['test_accuracies'])
  assert record['epochs'] == 2 and record['wall_s'] > 0
  for i in range(2):
    assert os.path.exists(tmp_path / 'runs' / 'toy_e2e' / f'replica_{i:02d}' / 'summary.json')
  with open(out / 'results.json') as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(results))
  assert saved['environment']['command'] == 'python -m experiments.reproduce --test'
  with open(out / 'results.md') as f:
    assert '`python -m experiments.reproduce --test`' in f.read()


class FakeFanOut:
  """Stands in for a cluster: takes every job in one call, fails the ones it is told to."""

  def __init__(self, runner, fail=()):
    self.runner, self.fail, self.calls = runner, fail, []

  def __call__(self, jobs, log=print):
    self.calls.append([job.name for job in jobs])
    return {job.name: replicas.Outcome(
        None if job.name in self.fail else self.runner(job.config, job.workdir, job.variants),
        'FloatingPointError: non-finite loss' if job.name in self.fail else None,
        '127.0.0.3', 12.5, 0.0) for job in jobs}


def test_fan_out_takes_every_unfinished_reference_at_once_and_a_failure_is_a_row(
    toy_dir, tmp_path):
  refs = [_toy_reference('toy_a', 0.5, 0.1, 'at_least'),
          _toy_reference('toy_b', 0.5, 0.1, 'at_least'),
          _toy_reference('toy_bad', 0.5, 0.1, 'at_least')]
  overrides = [f'dataset.data_dir={toy_dir}']
  FakeRunner([0.7, 0.8])(reproduce.reference_config(refs[1], CONFIGS, overrides),
                         str(tmp_path / 'toy_b'), [{'seed': 0}, {'seed': 1}])  # finished
  fan_out = FakeFanOut(FakeRunner([0.6, 0.9]), fail={'toy_bad'})
  results = reproduce.run(refs, CONFIGS, seeds=2, workdir=str(tmp_path), out=None,
                          overrides=overrides, fan_out=fan_out, **QUIET)
  assert fan_out.calls == [['toy_a', 'toy_bad']]  # one call; toy_b read back
  a, b, bad = results['references']
  assert (a['status'], a['mean'], a['host'], a['group_s']) == ('pass', pytest.approx(0.75),
                                                             '127.0.0.3', 12.5)
  assert (b['status'], b['resumed'], b['mean']) == ('pass', True, pytest.approx(0.75))
  assert 'host' not in b
  assert (bad['status'], bad['error']) == ('failed', 'FloatingPointError: non-finite loss')
  rows = _rows(reproduce.format_results(results))
  assert rows['toy_bad'][5] == 'failed on 127.0.0.3: FloatingPointError: non-finite loss'
  assert rows['toy_a'][6] == 'Dask worker 127.0.0.3'
