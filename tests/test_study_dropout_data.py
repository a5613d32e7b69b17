"""The dropout x training-set size study: its tiny setting end to end, its conclusions."""

import json
import os

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cnn_jax import studies
from cnn_jax.studies import dropout_data
from experiments import cli
from experiments.configs.default import validate

QUIET = dict(log=lambda *_: None)


def test_every_run_of_the_committed_grid_validates():
  configs = dropout_data.runs(cli.CONFIG_DIR)
  assert list(configs) == ['train_1000', 'train_5000', 'train_55000']
  for name, config in configs.items():
    validate(config, name)
    assert config.dataset.train_split == f'train[:{name.split("_")[1]}]'
    # Held out and never trained on, at every size.
    assert config.dataset.eval_split == 'train[55000:]' and config.evaluate_train
  assert studies.get('dropout_data') is dropout_data


@pytest.mark.slow
def test_tiny_study_tabulates_the_runs_it_trained(tmp_path):
  workdir, out = str(tmp_path / 'runs'), str(tmp_path / 'out')
  results = dropout_data.run(cli.CONFIG_DIR, seeds=2, workdir=workdir, out=out, tiny=True,
                             command='python -m experiments.study --test', **QUIET)
  assert [r['size'] for r in results['sizes']] == [256, 512]
  for record in results['sizes']:
    with open(os.path.join(workdir, record['name'], 'summary.json')) as f:
      summaries = json.load(f)['replicas']
    assert len(summaries) == record['replicas'] == 4  # 2 rates x 2 seeds, one program
    assert [row['rate'] for row in record['rows']] == [0.0, 0.5]
    for row in record['rows']:
      # The row's numbers are its replicas' summaries, in seed order.
      mine = [s for s in summaries if s['variant']['model.dropout_rate'] == row['rate']]
      assert [s['variant']['seed'] for s in mine] == [0, 1]
      assert all(s['variant']['model.dense_dropout_rate'] == row['rate'] for s in mine)
      assert row['test_accuracies'] == [s['test_accuracy'] for s in mine]
      assert row['train_accuracies'] == [s['train_accuracy'] for s in mine]
      assert row['mean'] == pytest.approx(np.mean(row['test_accuracies']))
      assert row['std'] == pytest.approx(np.std(row['test_accuracies'], ddof=1))
      assert len(row['curve']['epoch']) == len(row['curve']['eval_accuracy']) >= 1
    base, dropped = record['rows']
    reference = scipy_stats.ttest_ind(dropped['test_accuracies'], base['test_accuracies'],
                                      equal_var=False)
    if dropped['vs_no_dropout']['p'] is not None:
      assert dropped['vs_no_dropout']['p'] == pytest.approx(reference.pvalue)
  with open(os.path.join(out, 'results.md')) as f:
    page = f.read()
  assert page.count('\n| 256 |') == 2 and page.count('\n| 512 |') == 2
  first = results['sizes'][0]['rows'][0]
  assert f'| 256 | 2 | 0 | {100 * first["mean"]:.2f}% ± {100 * first["std"]:.2f} |' in page
  assert '`python -m experiments.study --test`' in page and 'git ' in page
  assert all(len(r['trained_at']) >= 40 for r in results['sizes'])
  for name in ('results.json', 'test_accuracy.png', 'learning_curves.png'):
    assert os.path.getsize(os.path.join(out, name)) > 0
  # Finished runs are read back: the same numbers, no new training.
  mtime = os.path.getmtime(os.path.join(workdir, 'train_256', 'summary.json'))
  again = dropout_data.run(cli.CONFIG_DIR, seeds=2, workdir=workdir, out=None, tiny=True,
                           **QUIET)
  assert again['sizes'][0]['rows'][0]['test_accuracies'] == first['test_accuracies']
  assert os.path.getmtime(os.path.join(workdir, 'train_256', 'summary.json')) == mtime


def _row(rate, test, train, curve=((1.0, 2.0, 3.0), (0.80, 0.84, 0.82))):
  overfit = dropout_data._overfitting(np.asarray(curve[0]), np.asarray(curve[1]))
  return {'rate': rate, 'test_accuracies': test, 'mean': float(np.mean(test)),
          'std': float(np.std(test, ddof=1)), 'train_mean': train,
          'gap': train - float(np.mean(test)),
          'curve': {'epoch': list(curve[0]), 'eval_accuracy': list(curve[1])}, **overfit}


def test_overfitting_reads_the_peak_and_the_drop():
  row = _row(0.0, [0.8, 0.81], 1.0)
  assert (row['peak_epoch'], row['peak'], row['final']) == (2.0, 0.84, 0.82)
  assert row['drop'] == pytest.approx(0.02)
  assert dropout_data._overfitting(np.asarray([]), np.asarray([]))['peak'] is None


def test_conclusions_follow_the_tests():
  from cnn_jax import stats
  rows = [_row(0.0, [0.80, 0.81, 0.80], 1.0), _row(0.5, [0.85, 0.86, 0.85], 0.95),
          _row(0.25, [0.80, 0.81, 0.805], 0.99)]
  for row in rows:
    row['vs_no_dropout'] = stats.welch(row['test_accuracies'], rows[0]['test_accuracies'])
  results = {'sizes': [{'size': 1000, 'epochs': 150, 'rows': rows[:2]},
                       {'size': 55000, 'epochs': 1, 'rows': [rows[0], rows[2]]}]}
  helps, neutral = dropout_data.conclusions(results)
  assert helps.startswith('**1,000 training images, 150 epochs:** without dropout the '
                          'network reaches 100.0% on its training images')
  assert 'Dropout raises test accuracy at rate 0.5 (rate 0.5: +5.00 points' in helps
  assert 'peaks at epoch 2 and ends 2.00 points below that peak' in helps
  assert neutral.startswith('**55,000 training images, 1 epoch:**')
  assert 'No rate changes test accuracy detectably (rate 0.25: ' in neutral
  results['seeds'] = 3
  assert dropout_data.summary(results) == (
      'Without dropout (train accuracy and train - test gap in brackets), some dropout '
      'rate raised test accuracy at 1,000 images (train 100.0%, gap 19.7 points); no rate '
      'changed it detectably at 55,000 images (train 100.0%, gap 19.7 points). '
      "Significance: Welch's t-test over 3 seeds, p < 0.05, 2 tests without a correction "
      'for multiple comparisons, so about 0.1 false positives are expected by chance: a '
      'p-value near the threshold is weak evidence.')
