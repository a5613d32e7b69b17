"""The benchmark harness on a tiny model and synthetic data (seconds, no dataset)."""

import json
import math
import os
import sys

import pytest

from cnn_jax import benchmark, provenance
from experiments.configs import default

TINY_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'tiny.py')
# tests/configs/tiny.py's simple CNN on 28x28x1, per example (multiply-add = 2, + bias):
# conv 3x3 1->8 SAME, max pool 2x2 (4 per output), dense 1568->32, head 32->10.
TINY_FORWARD_FLOPS = (28 * 28 * 8 * (2 * 9 + 1) + 14 * 14 * 8 * 4 + (2 * 1568 + 1) * 32
                      + (2 * 32 + 1) * 10)


@pytest.fixture(scope='module')
def results(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('bench'))
  case = benchmark.config_case(TINY_CONFIG)
  return out, benchmark.run([case], [8], steps=2, repeats=2, warmup_steps=1, out=out,
                            command='python -m experiments.benchmark --test',
                            log=lambda *_: None)


def test_record_has_the_documented_fields_with_sane_values(results):
  _, res = results
  (record,) = res['cases']
  assert record['name'] == 'tiny' and record['model'] == 'simple_cnn'
  assert (record['batch_size'], record['steps'], record['repeats']) == (8, 2, 2)
  assert record['data'] == 'synthetic' and record['input_shape'] == [28, 28, 1]
  assert record['forward_flops_per_example'] == TINY_FORWARD_FLOPS
  assert record['train_flops_per_example'] == 3 * TINY_FORWARD_FLOPS
  for key in ('compile_s', 'train_images_per_sec', 'eval_images_per_sec',
              'train_flops_per_sec'):
    assert math.isfinite(record[key]) and record[key] > 0, key
  assert len(record['train_window_s']) == len(record['eval_window_s']) == 2
  # images/s is the batch's images over the median window (of two: their mean).
  window = sum(record['train_window_s']) / 2
  assert record['train_images_per_sec'] == pytest.approx(8 * 2 / window)
  assert record['train_flops_per_sec'] == pytest.approx(
      3 * TINY_FORWARD_FLOPS * record['train_images_per_sec'])
  assert record['peak_memory_bytes'] > 10 * 2**20  # a JAX process holds far more than 10 MiB
  assert record['peak_memory_kind'] in ('process max RSS', 'device peak_bytes_in_use')
  env = res['environment']
  assert {'jax', 'flax', 'devices', 'cpu_model', 'cpu_count', 'date', 'command',
          'git_commit'} <= set(env)
  assert env['command'] == 'python -m experiments.benchmark --test'
  assert '3 x the forward FLOPs' in res['flops_note']


def test_results_files_are_written_and_parse(results):
  out, res = results
  with open(os.path.join(out, provenance.RESULTS_JSON)) as f:
    assert json.load(f) == json.loads(json.dumps(res))
  with open(os.path.join(out, provenance.RESULTS_MD)) as f:
    lines = f.read().splitlines()
  header = next(i for i, line in enumerate(lines) if line.startswith('| case |'))
  columns = [c.strip() for c in lines[header].strip('|').split('|')]
  row = [c.strip() for c in lines[header + 2].strip('|').split('|')]
  assert len(row) == len(columns) and row[:3] == ['tiny', 'synthetic', '8']
  assert float(row[columns.index('train img/s')].replace(',', '')) == pytest.approx(
      res['cases'][0]['train_images_per_sec'], abs=0.5)


def test_bad_names_give_clear_errors(tmp_path):
  with pytest.raises(ValueError, match=r"unknown model 'simple_cn'.*did you mean simple_cnn"):
    benchmark.model_case(default.get_config(), 'simple_cn', (28, 28, 1))
  with pytest.raises(ValueError, match='config file .*no_such.py.* not found'):
    benchmark.config_case(str(tmp_path / 'no_such.py'))
  bad = tmp_path / 'bad_model.py'
  bad.write_text('from experiments.configs import fashion_mnist_cnn\n'
                 'def get_config():\n'
                 '  config = fashion_mnist_cnn.get_config()\n'
                 '  config.model.name = "lenet6"\n'
                 '  return config\n')
  with pytest.raises(ValueError, match="unknown model 'lenet6'"):
    benchmark.config_case(str(bad))


def test_bad_settings_are_refused():
  case = benchmark.config_case(TINY_CONFIG)
  with pytest.raises(ValueError, match='steps=0'):
    benchmark.benchmark_case(case, 8, steps=0)
  with pytest.raises(ValueError, match="data='fake'"):
    benchmark.benchmark_case(case, 8, data='fake')


def test_a_reference_is_timed_beside_each_case():
  calls = []

  def reference(case, batch_size, **settings):
    calls.append((case.name, batch_size, settings))
    return {'framework': 'other', 'train_images_per_sec': 100.0, 'eval_images_per_sec': 50.0}

  case = benchmark.config_case(TINY_CONFIG)
  res = benchmark.run([case], [8], steps=1, repeats=1, warmup_steps=0, reference=reference,
                      log=lambda *_: None)
  assert calls == [('tiny', 8, dict(steps=1, repeats=1, warmup_steps=0, data='synthetic'))]
  (record,) = res['cases']
  assert record['reference']['train_images_per_sec'] == 100.0
  assert record['train_ratio'] == pytest.approx(record['train_images_per_sec'] / 100.0)
  assert record['eval_ratio'] == pytest.approx(record['eval_images_per_sec'] / 50.0)
  lines = benchmark.format_results(res).splitlines()
  header = next(i for i, line in enumerate(lines) if line.startswith('| case |'))
  columns = [c.strip() for c in lines[header].strip('|').split('|')]
  row = [c.strip() for c in lines[header + 2].strip('|').split('|')]
  assert len(lines[header + 1].split('|')) == len(lines[header].split('|'))
  assert dict(zip(columns, row))['other eval img/s'] == '50'
  assert float(dict(zip(columns, row))['eval ours/other']) == pytest.approx(
      record['eval_ratio'], abs=0.005)


def test_rounds_alternate_with_the_reference_and_report_medians(monkeypatch):
  order = []
  ours = iter([(30.0, 9.0), (10.0, 3.0), (20.0, 6.0)])
  theirs = iter([(10.0, 1.0), (50.0, 2.0), (40.0, 4.0)])

  case = benchmark.config_case(TINY_CONFIG)
  template = benchmark.benchmark_case(case, 8, steps=1, repeats=1, warmup_steps=0)

  def fake_case(case, batch_size, **settings):
    order.append('ours')
    train, evaluate = next(ours)
    return {**template, 'train_images_per_sec': train, 'eval_images_per_sec': evaluate,
            'train_flops_per_example': 2.0}

  def reference(case, batch_size, **settings):
    order.append('ref')
    train, evaluate = next(theirs)
    return {'framework': 'other', 'train_images_per_sec': train,
            'eval_images_per_sec': evaluate}

  monkeypatch.setattr(benchmark, 'benchmark_case', fake_case)
  res = benchmark.run([case], [8], reference=reference, rounds=3, log=lambda *_: None)
  assert order == ['ours', 'ref'] * 3
  (record,) = res['cases']
  assert record['train_images_per_sec'] == 20.0 and record['eval_images_per_sec'] == 6.0
  assert record['train_flops_per_sec'] == 40.0
  assert record['reference']['train_images_per_sec'] == 40.0
  # The median of the per-round ratios (3, 0.2, 0.5), not the ratio of the medians.
  assert record['train_ratio'] == 0.5 and record['eval_ratio'] == 1.5
  assert [r['reference_train_images_per_sec'] for r in record['rounds']] == [10, 50, 40]
  assert '30 / 10 = 3.00x; 10 / 50 = 0.20x; 20 / 40 = 0.50x' in benchmark.format_results(res)
  with pytest.raises(ValueError, match='rounds=0'):
    benchmark.run([case], [8], rounds=0)


def test_torch_flag_without_torch_names_the_extra(monkeypatch):
  import experiments
  from experiments import cli
  # As if torch were not installed (CI): importing it fails, and so does the reference.
  monkeypatch.setitem(sys.modules, 'torch', None)
  monkeypatch.delitem(sys.modules, 'experiments.torch_reference', raising=False)
  monkeypatch.delattr(experiments, 'torch_reference', raising=False)
  with pytest.raises(SystemExit, match=r'--torch needs PyTorch.*pip install -r '
                     r'requirements-bench\.txt'):
    cli.load_torch_reference()
