"""Provenance and results helpers shared by train and the studies."""

import math

import pytest

from cnn_jax import provenance


def test_mean_std_and_duration():
  assert provenance.mean_std([0.5]) == (0.5, None)
  mean, std = provenance.mean_std([0.1, 0.2, 0.6])
  assert mean == pytest.approx(0.3) and std == pytest.approx(math.sqrt(0.07))
  assert provenance.mean_std([]) == (None, None)
  assert provenance.mean_std([0.1, None]) == (None, None)
  assert [provenance.duration(s) for s in (4.4, 75.2, 3725)] == ['4 s', '1 min 15 s',
                                                                 '1 h 2 min']


def test_refuse_different_run_names_the_fields():
  saved = {'config': {'seed': 0, 'model': {'features': [8, 16]}}, 'variants': None}
  # Tuples read back from JSON as lists: the same run.
  provenance.refuse_different_run('w', 'config', saved,
                                  {'config': {'seed': 0, 'model': {'features': (8, 16)}},
                                   'variants': None})
  with pytest.raises(ValueError, match=r"w holds a different config \(config.model.features: "
                                       r"\[8, 16\] -> \[8, 32\]; variants: None -> "
                                       r"\[\{'seed': 1\}\]\).*Nothing was changed"):
    provenance.refuse_different_run(
        'w', 'config', saved, {'config': {'seed': 0, 'model': {'features': (8, 32)}},
                               'variants': [{'seed': 1}]})


def test_write_results(tmp_path):
  provenance.write_results(str(tmp_path / 'out'), {'a': 1}, '# table\n')
  assert (tmp_path / 'out' / 'results.json').read_text().strip() == '{\n  "a": 1\n}'
  assert (tmp_path / 'out' / 'results.md').read_text() == '# table\n'


def test_git_commit_marks_a_checkout_with_changed_tracked_files(tmp_path):
  import subprocess
  git = lambda *args: subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t',
                                      *args], cwd=tmp_path, check=True, capture_output=True,
                                     text=True).stdout.strip()
  assert provenance.git_commit(str(tmp_path)) == 'unknown'  # not a repository
  git('init', '-q')
  (tmp_path / 'code.py').write_text('a = 1\n')
  git('add', 'code.py')
  git('commit', '-qm', 'first')
  head = git('rev-parse', 'HEAD')
  assert len(head) == 40 and provenance.git_commit(str(tmp_path)) == head
  (tmp_path / 'results.md').write_text('untracked output\n')
  assert provenance.git_commit(str(tmp_path)) == head  # new files are not code changes
  (tmp_path / 'code.py').write_text('a = 2\n')
  assert provenance.git_commit(str(tmp_path)) == f'{head}-dirty'


def test_page_header_states_command_machine_versions_and_commit():
  env = {'command': 'python -m experiments.study --study x', 'date': '2026-11-30T12:00:00',
         'platform': 'cpu', 'cpu_model': 'AMD EPYC', 'cpu_count': 2, 'devices': ['cpu:0'],
         'jax': '0.10.2', 'flax': '0.12.8', 'git_commit': 'abc123', 'load_average': [1.5]}
  assert provenance.page_header('T', env) == [
      '# T', '', '`python -m experiments.study --study x`', '',
      '2026-11-30T12:00:00; AMD EPYC, 2 cores (load average 1.50 at the start); devices '
      'cpu:0; jax 0.10.2, flax 0.12.8; git abc123.']
  env['load_average'] = None
  assert provenance.page_header('T', env, 'torch 2.13')[-1] == (
      '2026-11-30T12:00:00; AMD EPYC, 2 cores; devices cpu:0; torch 2.13; git abc123.')


def test_seed_results_of_a_run():
  summaries = [{'test_accuracy': 0.9, 'wall_s': 10.0}, {'test_accuracy': 0.8, 'wall_s': 12.0}]
  out = provenance.seed_results(summaries)
  assert out['test_accuracies'] == [0.9, 0.8] and out['wall_s'] == 12.0
  assert out['mean'] == pytest.approx(0.85) and out['std'] == pytest.approx(0.1 / 2 ** 0.5)
