"""The accelerator check: its dry run end to end without TensorFlow, and its parts."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import jax.numpy as jnp
import pytest
from idx_files import write_toy_dataset

from cnn_jax import accelerator
from experiments.configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imported first by every interpreter started with this folder on PYTHONPATH: makes
# importing TensorFlow, tensorflow-datasets and the other data-only packages a GPU image
# lacks fail, as they would there.
_NO_TENSORFLOW = '''
import sys
for name in ('tensorflow', 'tensorflow_datasets', 'tensorboard', 'grain', 'array_record',
             'mnist1d'):
  sys.modules[name] = None
'''


def _env(shim_dir):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim_dir), ROOT]),
             JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  return env


def _check(args, shim_dir, timeout=900):
  return subprocess.run([sys.executable, '-m', 'experiments.accelerator_check', *args],
                        cwd=ROOT, env=_env(shim_dir), capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture(scope='module')
def shim(tmp_path_factory):
  shim_dir = tmp_path_factory.mktemp('no_tensorflow')
  (shim_dir / 'sitecustomize.py').write_text(_NO_TENSORFLOW)
  return shim_dir


def test_the_shim_blocks_tensorflow(shim):
  code = 'import tensorflow_datasets'
  out = subprocess.run([sys.executable, '-c', code], env=_env(shim), capture_output=True,
                       text=True)
  assert out.returncode != 0 and 'ModuleNotFoundError' in out.stderr


def test_dry_run_without_tensorflow_writes_every_section(shim, tmp_path):
  data_dir = tmp_path / 'fashion_mnist'
  data_dir.mkdir()
  write_toy_dataset(data_dir, n_train=600, n_test=300)
  out_dir = tmp_path / 'out'
  run = _check(['--out', str(out_dir), '--dry_run', '--notorch',
                '--fashion_mnist_dir', str(data_dir)], shim)
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'all checks passed' in run.stdout
  markdown = (out_dir / 'results.md').read_text()
  results = json.loads((out_dir / 'results.json').read_text())
  for section in accelerator.SECTIONS:
    assert f'\n{section}\n' in markdown
  assert results['errors'] == [] and results['ok']
  assert results['environment']['dry_run'] and 'experiments.accelerator_check' in \
      results['environment']['command']
  # Every op in both dtypes, with the errors the run measured.
  cases = accelerator.op_cases(small=True)
  assert len(results['correctness']) == 2 * len(cases)
  for row in results['correctness']:
    assert row['ok'] and row['max_error'] <= row['tolerance']
    line = next(line for line in markdown.splitlines()
                if line.startswith(f'| {row["op"]} | {row["case"]} | {row["dtype"]} |'))
    assert f'{row["value_error"]:.2e}' in line
  # The CPU-only formulations ran here, and the record saw them.
  assert set(results['formulations']['cpu_only_seen']) == set(
      accelerator.CPU_ONLY_FORMULATIONS) and results['formulations']['ok']
  (training,) = results['training']
  assert training['ok'] and len(training['losses']) == 3
  assert [r['model'] for r in results['speed']] == ['resnet50', 'resnet20']
  for row in results['speed']:
    assert row['train_images_per_sec'] > 0 and row['mfu'] is None  # no peak for a CPU
    assert re.search(rf'\| {row["model"]} \(.*\| {row["train_images_per_sec"]:,.0f} \|',
                     markdown)
  assert [(r['target'], r['epochs']) for r in results['time_to_accuracy']] == [(0.91, 1),
                                                                               (0.93, 1)]
  assert all(0 <= r['test_accuracy'] <= 1 for r in results['time_to_accuracy'])
  assert results['skipped'] == [{'part': 'speed', 'item': 'reference',
                                 'reason': 'off (--notorch)'}]


@pytest.mark.parametrize('args, message', [
    (['--dry_run'], 'error: --out is required (the folder for results.json and results.md)'),
    (['--out', 'x', '--budget_s', '0'], 'error: --budget_s must be > 0, got 0.0')])
def test_bad_flags_fail_with_one_line(shim, args, message):
  run = _check(args, shim, timeout=300)
  assert run.returncode != 0
  assert run.stderr.strip().splitlines()[-1] == message


def test_a_spent_budget_skips_every_item_and_says_why(tmp_path):
  results = accelerator.run(str(tmp_path), dry_run=True, budget_s=1e-9,
                            training_config=('t', None), speed_base=default.get_config(),
                            tta_configs=[('f', None, 0.9)],
                            data_dir=str(tmp_path), log=lambda _: None)
  parts = [s['part'] for s in results['skipped']]
  assert parts == ['correctness', 'correctness', 'training', 'speed', 'speed', 'speed',
                   'time_to_accuracy']
  assert all(s['reason'].startswith('budget: 0 s of 0 s left') for s in results['skipped']
             if s['item'] != 'reference')
  markdown = (tmp_path / 'results.md').read_text()
  assert '* correctness every op, float32: budget: 0 s' in markdown
  assert not results['ok']  # nothing was checked: not a pass


def test_budget_refuses_items_longer_than_what_is_left():
  now = [0.0]
  budget = accelerator.Budget(100, clock=lambda: now[0])
  assert budget.refuse(99) is None
  now[0] = 40
  assert budget.refuse(59) is None and 'budget: 60 s of 100 s left' in budget.refuse(60)
  now[0] = 120
  assert budget.left() == -20 and budget.refuse(0).startswith('budget: 0 s')


def test_check_ops_fails_a_wrong_op_and_passes_the_right_one():
  cases = accelerator.op_cases(small=True)
  conv, pool = cases[0], next(c for c in cases if c.op == 'avg_pool')
  flipped = dataclasses.replace(conv, ours=lambda x, w, precision: conv.ours(
      x, w[::-1], precision))
  halved = dataclasses.replace(pool, ours=lambda x, precision: pool.ours(x, precision) / 2)
  rows = accelerator.check_ops([conv, flipped, pool, halved], jnp.float32)
  assert [r['ok'] for r in rows] == [True, False, True, False]
  assert rows[1]['value_error'] > 0.1 and rows[3]['grad_errors'][0] == pytest.approx(0.5)


def test_formulation_verdict_off_cpu_refuses_cpu_only_formulations():
  clean = {'speed': [{'formulations': {'fast_grad': 3, 'input_grad_conv': 3}}]}
  dirty = {'training': [{'formulations': {'fast_grad': 1, 'input_grad_col2im': 1}}]}
  assert accelerator.formulation_verdict(clean, 'gpu')['ok']
  verdict = accelerator.formulation_verdict(dirty, 'gpu')
  assert not verdict['ok'] and verdict['cpu_only_seen'] == ['input_grad_col2im']
  # On CPU the correctness rows must show every CPU-only formulation.
  assert not accelerator.formulation_verdict(clean, 'cpu')['ok']


@pytest.mark.parametrize('kind, name', [
    ('NVIDIA H100 80GB HBM3', 'NVIDIA H100 SXM'), ('NVIDIA H100 PCIe', 'NVIDIA H100 PCIe'),
    ('NVIDIA H100 NVL', 'NVIDIA H100 NVL'), ('NVIDIA H200', 'NVIDIA H200 SXM'),
    ('NVIDIA A100-SXM4-40GB', 'NVIDIA A100'), ('NVIDIA A100 80GB PCIe', 'NVIDIA A100'),
    ('NVIDIA L40S', 'NVIDIA L40S'), ('NVIDIA L4', 'NVIDIA L4'),
    ('Tesla V100-SXM2-16GB', 'NVIDIA V100'), ('TPU v4', 'TPU v4'),
    ('TPU v5 lite', 'TPU v5e'), ('TPU v5', 'TPU v5p'), ('TPU v6 lite', 'TPU v6e'),
    ('cpu', None)])
def test_peak_lookup_by_device_kind(kind, name):
  peak = accelerator.peak_flops(kind)
  assert (peak and peak['name']) == name


def test_a_reference_whose_compile_fails_is_timed_eagerly_and_the_error_kept():
  calls = []

  def reference(case, batch_size, *, compile_model, amp, **settings):
    calls.append((case.config.model.name, batch_size, compile_model, amp))
    if compile_model:
      raise RuntimeError('inductor: no C++ compiler\nmore detail')
    return {'train_images_per_sec': 1.0, 'description': 'fake'}

  spec = accelerator.speed_cases(small=True)[0]
  record = accelerator.measure_reference(reference, spec, default.get_config(), steps=1,
                                         repeats=1, warmup_steps=0, compile_model=True)
  assert calls == [('resnet50', 2, True, True), ('resnet50', 2, False, True)]
  assert record['compile_error'] == 'RuntimeError: inductor: no C++ compiler'


def test_an_op_that_raises_is_named_and_the_other_rows_kept(monkeypatch, tmp_path):
  cases = accelerator.op_cases(small=True)
  pool = next(c for c in cases if c.op == 'avg_pool')

  def broken(x, precision):
    raise FloatingPointError('the op broke')

  monkeypatch.setattr(accelerator, 'op_cases', lambda small: [
      pool, dataclasses.replace(pool, name='broken', ours=broken)])
  monkeypatch.setattr(accelerator, 'speed_cases', lambda small: [])
  results = accelerator.run(str(tmp_path), dry_run=True, training_config=None,
                            log=lambda _: None)
  assert [(r['case'], r['dtype'], r['ok']) for r in results['correctness']] == [
      (pool.name, 'float32', True), (pool.name, 'bfloat16', True)]
  assert [e['item'] for e in results['errors']] == [
      'every op, float32', 'avg_pool broken float32', 'every op, bfloat16',
      'avg_pool broken bfloat16']
  assert results['errors'][1]['error'] == 'FloatingPointError: the op broke'
  assert not results['ok']
  assert '* correctness avg_pool broken float32: FloatingPointError: the op broke' in (
      tmp_path / 'results.md').read_text()
