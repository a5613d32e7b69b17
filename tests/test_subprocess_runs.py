"""End-to-end runs in subprocesses: exact resume after SIGKILL, 1 vs 4 devices, 2 hosts.

These start real ``python -m experiments.train`` processes on the tiny config, so they
test the command line, the workdir and checkpointing the way a user meets them.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from idx_files import prepare_toy_tfds
from subprocess_env import subprocess_env

# Every test here starts training processes.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = {'images_per_sec', 'elapsed_s', 'wall_s', 'compile_s', 'train_images_per_sec'}


_env = subprocess_env


def _train_cmd(data_dir, workdir, *overrides):
  return [sys.executable, '-m', 'experiments.train',
          f'--config=tests/configs/tiny.py:{data_dir}', f'--workdir={workdir}', *overrides]


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


def _final_params(workdir):
  """The final parameters of a workdir, read back through the library's own restore."""
  code = f'''
import numpy as np, jax
from cnn_jax.train.workdir import restore
_, _, state = restore({workdir!r})
leaves = jax.tree_util.tree_flatten_with_path(state.params)[0]
np.savez({workdir!r} + '/final.npz', **{{jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}})
'''
  subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=_env(), check=True,
                 capture_output=True)
  with np.load(os.path.join(workdir, 'final.npz')) as f:
    return {k: f[k] for k in f.files}


def _strip(record):
  return {k: v for k, v in record.items() if k not in TIMING}


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [_strip(json.loads(line)) for line in f]


def test_sigkill_at_an_arbitrary_point_then_resume_is_exact(toy_dir, tmp_path):
  reference = str(tmp_path / 'reference')
  subprocess.run(_train_cmd(toy_dir, reference), cwd=ROOT, env=_env(), check=True,
                 capture_output=True)

  killed = str(tmp_path / 'killed')
  # Many checkpoints (every 2 steps, saved synchronously) make the run long enough to
  # be killed mid-training, sometimes mid-save; the delay after the first checkpoint is
  # random so repeated CI runs hit different points.
  cmd = _train_cmd(toy_dir, killed, '--config.checkpoint_every_steps=2',
                   '--config.log_every_steps=2')
  proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  ckpt_dir = os.path.join(killed, 'checkpoints')
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:
    if os.path.isdir(ckpt_dir) and any(d.isdigit() for d in os.listdir(ckpt_dir)):
      break
    time.sleep(0.01)
  time.sleep(random.uniform(0.0, 0.4))
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
  steps_at_kill = sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())
  assert steps_at_kill and steps_at_kill[-1] < 36

  resumed = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert 'resumed from step' in resumed.stdout + resumed.stderr

  ref_params, got_params = _final_params(reference), _final_params(killed)
  assert ref_params.keys() == got_params.keys()
  for name in ref_params:
    np.testing.assert_array_equal(got_params[name], ref_params[name], err_msg=name)  # bitwise
  with open(os.path.join(reference, 'summary.json')) as f:
    ref_summary = _strip(json.load(f))
  with open(os.path.join(killed, 'summary.json')) as f:
    assert _strip(json.load(f)) == ref_summary
  # The killed run logged every 2 steps: compare the records both runs logged.
  ref_metrics = {(r['split'], r['step']): r for r in _metrics(reference)}
  got = [r for r in _metrics(killed) if (r['split'], r['step']) in ref_metrics]
  assert len(got) == len(ref_metrics)
  for record in got:
    ref = ref_metrics[(record['split'], record['step'])]
    if record['split'] == 'test':
      assert record == ref
  steps = [r['step'] for r in _metrics(killed) if r['split'] == 'train']
  assert steps == sorted(set(steps)), 'a resumed run must not log a step twice'


def test_unknown_override_exits_with_a_one_line_error(toy_dir, tmp_path):
  out = subprocess.run(_train_cmd(toy_dir, str(tmp_path), '--config.model.dropout_rat=0.3'),
                       cwd=ROOT, env=_env(), capture_output=True, text=True)
  assert out.returncode != 0
  assert "unknown config field 'model.dropout_rat'" in out.stderr
  assert 'model.dropout_rate' in out.stderr and 'Traceback' not in out.stderr
  assert not os.listdir(tmp_path)


_DEVICES_SCRIPT = '''
import json, sys
import jax
from configs.tiny import get_config
from cnn_jax.train import sharding
from cnn_jax.train.loop import train_and_evaluate
data_dir, workdir = sys.argv[1:3]
results = {}
for n in (1, 4):
  s = train_and_evaluate(get_config(data_dir), f'{workdir}/{n}', log=lambda *_: None,
                         mesh=sharding.make_mesh(jax.devices()[:n]))
  results[n] = [s['test_accuracy'], s['test_loss']]
config = get_config(data_dir)
config.batch_size = 30
try:
  train_and_evaluate(config, f'{workdir}/bad', mesh=sharding.make_mesh())
except ValueError as e:
  results['error'] = str(e)
print(json.dumps(results))
'''


def test_one_and_four_devices_agree(toy_dir, tmp_path):
  out = subprocess.run([sys.executable, '-c', _DEVICES_SCRIPT, toy_dir, str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True,
                       env=_env(XLA_FLAGS='--xla_force_host_platform_device_count=4'))
  assert out.returncode == 0, out.stderr[-2000:]
  results = json.loads(out.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(results['4'], results['1'], rtol=1e-5)
  assert 'batch_size=30 is not divisible by the 4 devices' in results['error']


_PROCESS_SCRIPT = '''
import json, sys
from cnn_jax.train import sharding
data_dir, workdir, port, pid = sys.argv[1:5]
sharding.initialize_distributed(f'localhost:{port}', 2, int(pid))
import jax
from configs.tiny import get_config
from cnn_jax.train.loop import train_and_evaluate
s = train_and_evaluate(get_config(data_dir), workdir, log=lambda *_: None)
print(json.dumps([jax.process_count(), jax.device_count(), s['test_accuracy'], s['test_loss']]))
'''


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_with_jax_distributed_match_one(toy_dir, tmp_path):
  single = subprocess.run([sys.executable, '-c', _DEVICES_SCRIPT.replace('(1, 4)', '(1,)')
                           .split('config = get_config')[0] + 'print(json.dumps(results))',
                           toy_dir, str(tmp_path / 'single')], cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
  assert single.returncode == 0, single.stderr[-2000:]
  expected = json.loads(single.stdout.strip().splitlines()[-1])['1']
  port = str(_free_port())
  procs = [subprocess.Popen([sys.executable, '-c', _PROCESS_SCRIPT, toy_dir,
                             str(tmp_path / 'multi'), port, str(pid)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for pid in (0, 1)]
  outs = [p.communicate(timeout=240) for p in procs]
  for p, (stdout, stderr) in zip(procs, outs):
    assert p.returncode == 0, stderr[-2000:]
    count, devices, accuracy, loss = json.loads(stdout.strip().splitlines()[-1])
    assert (count, devices) == (2, 2)
    np.testing.assert_allclose([accuracy, loss], expected, rtol=1e-5)


def _wait_for_training(proc, workdir, timeout=180):
  """Returns once the run logged its first record (it is training), or ended."""
  metrics = os.path.join(workdir, 'metrics.jsonl')
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(metrics) and os.path.getsize(metrics):
      return
    time.sleep(0.005)


def _finalized_steps(workdir):
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  return sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit())


@pytest.mark.parametrize('signals, steps_per_call', [
    ((signal.SIGTERM,), 1),
    # A second signal lands during the save; the scan runs 3 steps per compiled call.
    ((signal.SIGINT, signal.SIGTERM), 3),
])
def test_a_signal_saves_the_step_in_flight_and_the_rerun_ends_bitwise_equal(
    toy_dir, tmp_path, signals, steps_per_call):
  # Logs and checkpoints once per epoch (12 steps), so most steps a signal can land on
  # are between them: the save must carry the interval's partial sums.
  overrides = ['--config.num_epochs=20', '--config.log_every_steps=12',
               '--config.checkpoint_every_steps=12',
               f'--config.steps_per_call={steps_per_call}']
  reference = str(tmp_path / 'reference')
  subprocess.run(_train_cmd(toy_dir, reference, *overrides), cwd=ROOT, env=_env(),
                 check=True, capture_output=True)

  stopped = str(tmp_path / 'stopped')
  cmd = _train_cmd(toy_dir, stopped, *overrides)
  proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  _wait_for_training(proc, stopped)
  time.sleep(random.uniform(0.0, 0.3))
  t_signal = time.perf_counter()
  for sig in signals:
    proc.send_signal(sig)
    time.sleep(0.01)
  stdout, stderr = proc.communicate(timeout=60)
  seconds = time.perf_counter() - t_signal
  assert proc.returncode == 75, (proc.returncode, stderr[-2000:])
  assert seconds < 30
  line = stderr.strip().splitlines()[-1]
  step = _finalized_steps(stopped)[-1]
  assert line.startswith(f'preempted ({signals[0].name}) at step {step}/240: saved a '
                         f'checkpoint in {stopped}/checkpoints'), line
  assert 'rerun the same command to resume' in line
  assert 0 < step < 240 and step % steps_per_call == 0
  assert not os.path.exists(os.path.join(stopped, 'summary.json'))

  resumed = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f'resumed from step {step} ' in resumed.stdout + resumed.stderr
  ref_params, got_params = _final_params(reference), _final_params(stopped)
  assert ref_params.keys() == got_params.keys()
  for name in ref_params:
    np.testing.assert_array_equal(got_params[name], ref_params[name], err_msg=name)
  with open(os.path.join(reference, 'summary.json')) as f:
    ref_summary = _strip(json.load(f))
  with open(os.path.join(stopped, 'summary.json')) as f:
    assert _strip(json.load(f)) == ref_summary
  # Same cadence: every record, the interval and epoch means across the stop included.
  assert _metrics(stopped) == _metrics(reference)
