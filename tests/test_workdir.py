"""The workdir contract under misuse: one owner, crafted files, kills at any point."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from configs.tiny import get_config as tiny_config
from idx_files import prepare_toy_tfds
from subprocess_env import subprocess_env

from cnn_jax import data as data_lib
from cnn_jax import sweep
from cnn_jax.train import checkpoint, replicas
from cnn_jax.train import workdir as workdir_lib
from cnn_jax.train.loop import train_and_evaluate
from cnn_jax.train.metrics import MetricsWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HOLD_LOCK = '''
import sys, time
from cnn_jax.train import workdir
with workdir.lock(sys.argv[1]):
  print('locked', flush=True)
  time.sleep(600)
'''


_env = subprocess_env


def _hold_lock(workdir):
  """A separate process that takes the workdir's lock and keeps it until killed."""
  proc = subprocess.Popen([sys.executable, '-c', _HOLD_LOCK, str(workdir)], cwd=ROOT,
                          env=_env(), stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == 'locked'
  return proc


@pytest.mark.slow
def test_a_live_holder_refuses_a_second_process_naming_pid_and_host(tmp_path):
  holder = _hold_lock(tmp_path)
  try:
    t0 = time.perf_counter()
    with pytest.raises(workdir_lib.WorkdirBusyError) as e:
      with workdir_lib.lock(str(tmp_path)):
        pass
    assert time.perf_counter() - t0 < 1.0  # refused at once, not after a wait
    message = str(e.value)
    assert f'pid {holder.pid} on host {socket.gethostname()}' in message
    assert '\n' not in message
    # The real command line is refused the same way, before it reads any data.
    out = subprocess.run([sys.executable, '-m', 'experiments.train',
                          '--config=tests/configs/tiny.py:/nonexistent',
                          f'--workdir={tmp_path}'], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f'error: {message}']
    assert os.listdir(tmp_path) == [workdir_lib.LOCK_FILE]  # nothing else written
  finally:
    holder.kill()
    holder.wait()


@pytest.mark.slow
def test_the_lock_of_a_killed_process_is_stale_and_taken_over(tmp_path):
  holder = _hold_lock(tmp_path)
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  assert os.path.exists(tmp_path / workdir_lib.LOCK_FILE)  # left behind by the kill
  lines = []
  with workdir_lib.lock(str(tmp_path), log=lines.append):
    assert str(os.getpid()) in (tmp_path / workdir_lib.LOCK_FILE).read_text()
  assert lines == [f'taking over the lock of pid {holder.pid} on {socket.gethostname()}, '
                   f'which ended without releasing it']
  assert not os.path.exists(tmp_path / workdir_lib.LOCK_FILE)  # released on return


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
  with workdir_lib.lock(str(tmp_path)):
    with pytest.raises(workdir_lib.WorkdirBusyError, match=f'pid {os.getpid()} '):
      with workdir_lib.lock(str(tmp_path)):
        pass
  with workdir_lib.lock(str(tmp_path)):  # free again once released
    pass


# Crafted and damaged JSON: one line naming the file, never a bare parse error.

@pytest.mark.parametrize('text', ['[]', '{}', 'not json', '{"config": [1, 2]}',
                                  '{"config": {}, "variants": 3}'])
def test_crafted_config_json_is_refused_in_one_line_naming_it(tmp_path, text):
  path = tmp_path / 'config.json'
  path.write_text(text)
  for read in (workdir_lib.read_record, workdir_lib.load_config,
               lambda w: workdir_lib.check_same_run(w, tiny_config())):
    with pytest.raises(workdir_lib.WorkdirFileError) as e:
      read(str(tmp_path))
    assert str(path) in str(e.value) and '\n' not in str(e.value)


def test_truncated_sweep_manifest_is_refused_naming_it(tmp_path):
  path = tmp_path / sweep.MANIFEST_FILE
  path.write_text('{"axes": {"model.dropout_rate": [0.1, ')
  with pytest.raises(workdir_lib.WorkdirFileError, match=f'{path} is not valid JSON'):
    sweep._check_manifest(str(tmp_path), {})


@pytest.mark.parametrize('text', ['[]', '{"replicas": 3}', '{"replicas": [1]}'])
def test_crafted_summaries_are_refused_naming_them(tmp_path, text):
  (tmp_path / 'summary.json').write_text(text)
  group = sweep.Group('g', {}, [{'seed': 0}])
  for read in (lambda: sweep._finished(str(tmp_path), group),
               lambda: replicas.finished_replicas(str(tmp_path), tiny_config(), [0])):
    with pytest.raises(workdir_lib.WorkdirFileError, match=str(tmp_path / 'summary.json')):
      read()


def _write_records(path, steps):
  with open(path, 'w') as f:
    for step in steps:
      f.write(json.dumps({'step': step, 'split': 'train', 'epoch': step / 4,
                          'loss': 1.0 / step, 'epoch_loss': 1.0 / step}) + '\n')


def test_a_metrics_line_that_is_no_record_is_refused_naming_file_and_line(tmp_path):
  replica = tmp_path / 'g' / 'replica_00'
  replica.mkdir(parents=True)
  path = replica / 'metrics.jsonl'
  _write_records(path, [4, 8])
  with open(path, 'a') as f:
    f.write('[1, 2]\n')
  rows = [{'replicas': ['g/replica_00']}]
  with pytest.raises(workdir_lib.WorkdirFileError, match=f'{path}:3 is not a metrics record'):
    sweep.read_curves(str(tmp_path), rows)


def test_a_line_torn_by_a_kill_is_dropped_by_readers_and_by_the_resumed_writer(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  _write_records(path, [4, 8, 12])
  # A kill in the middle of writing the record of step 16: no newline, cut mid-value.
  with open(path, 'a') as f:
    f.write(json.dumps({'step': 16, 'split': 'train', 'loss': 0.25})[:23])
  assert [r['step'] for r in workdir_lib.read_metrics(str(path))] == [4, 8, 12]
  curves = sweep.read_curves(str(tmp_path.parent), [{'replicas': [tmp_path.name]}])
  assert list(curves[0]['epoch_train']) == [1.0, 2.0, 3.0]
  MetricsWriter(str(tmp_path), resume_step=8, tensorboard=False)
  assert path.read_text().splitlines() == [
      json.dumps({'step': s, 'split': 'train', 'epoch': s / 4, 'loss': 1.0 / s,
                  'epoch_loss': 1.0 / s}) for s in (4, 8)]


# Workdir safety: what is refused before anything is written.

def test_a_non_empty_folder_without_config_json_is_refused_untouched(tmp_path):
  (tmp_path / 'metrics.jsonl').write_text('my own notes\n')
  (tmp_path / 'summary.json').write_text('{"mine": 1}')
  with pytest.raises(ValueError, match='is not empty .* holds no config.json'):
    train_and_evaluate(tiny_config('/nonexistent'), str(tmp_path), log=lambda *_: None)
  assert sorted(os.listdir(tmp_path)) == ['metrics.jsonl', 'summary.json']
  assert (tmp_path / 'metrics.jsonl').read_text() == 'my own notes\n'
  assert (tmp_path / 'summary.json').read_text() == '{"mine": 1}'


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
  """``(idx_dir, data_dir)`` of the toy dataset, prepared."""
  idx_dir = tmp_path_factory.mktemp('toy_idx')
  return str(idx_dir), prepare_toy_tfds(idx_dir, tmp_path_factory.mktemp('toy_tfds'))


@pytest.mark.parametrize('value', [0, 10**10])
def test_bad_eval_batch_size_is_refused_before_config_json(toy, tmp_path, value):
  config = tiny_config(toy[1])
  config.eval_batch_size = value
  with pytest.raises(ValueError, match=f'eval_batch_size={value} '):
    train_and_evaluate(config, str(tmp_path), log=lambda *_: None)
  assert os.listdir(tmp_path) == []


@pytest.fixture(scope='module')
def trained(toy, tmp_path_factory):
  """A finished one-epoch tiny run (checkpoints at steps 4, 8, 12)."""
  workdir = str(tmp_path_factory.mktemp('trained'))
  config = tiny_config(toy[1])
  config.num_epochs = 1
  train_and_evaluate(config, workdir, log=lambda *_: None)
  return workdir, config


def _copy(trained, tmp_path, name='copy'):
  target = str(tmp_path / name)
  shutil.copytree(trained[0], target)
  return target


@pytest.mark.slow
def test_a_finished_run_without_its_checkpoints_is_refused_not_retrained(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  shutil.rmtree(os.path.join(workdir, 'checkpoints'))
  summary = open(os.path.join(workdir, 'summary.json')).read()
  metrics = open(os.path.join(workdir, 'metrics.jsonl')).read()
  with pytest.raises(ValueError, match='holds a finished run .* but no checkpoint'):
    train_and_evaluate(trained[1], workdir, log=lambda *_: None)
  assert open(os.path.join(workdir, 'summary.json')).read() == summary
  assert open(os.path.join(workdir, 'metrics.jsonl')).read() == metrics


@pytest.mark.slow
def test_checkpoints_of_another_config_are_refused_on_restore(trained, tmp_path):
  other = trained[1].copy_and_resolve_references()
  other.optimizer.learning_rate *= 2
  other.seed += 1
  # Checkpoints alone are not a workdir ...
  workdir = str(tmp_path / 'other')
  os.makedirs(workdir)
  shutil.copytree(os.path.join(trained[0], 'checkpoints'), os.path.join(workdir, 'checkpoints'))
  with pytest.raises(ValueError, match='holds no config.json'):
    train_and_evaluate(other, workdir, log=lambda *_: None)
  # ... and beside another run's config.json, their config hash gives them away.
  workdir_lib.write_config(workdir, other)
  with pytest.raises(checkpoint.CheckpointError, match='saved by a run of another config'):
    train_and_evaluate(other, workdir, log=lambda *_: None)
  assert not os.path.exists(os.path.join(workdir, 'metrics.jsonl'))


def _retarget_data(workdir, toy, data_dir):
  """Points a copied workdir's config at an empty data dir that may be prepared from IDX."""
  record = workdir_lib.read_record(workdir)
  record['config']['dataset'].update(data_dir=str(data_dir), prepare_from_dir=toy[0])
  workdir_lib.write_json(os.path.join(workdir, 'config.json'), record)


@pytest.mark.slow
def test_evaluate_checks_the_checkpoint_first_and_never_prepares_data(trained, toy, tmp_path):
  data_dir = tmp_path / 'empty_data_dir'
  data_dir.mkdir()
  workdir = _copy(trained, tmp_path)
  _retarget_data(workdir, toy, data_dir)
  # With a checkpoint but no prepared dataset: refused, although prepare_from_dir allows it.
  with pytest.raises(data_lib.NotPreparedError, match='read-only tool does not prepare'):
    workdir_lib.evaluate_checkpoint(workdir)
  assert os.listdir(data_dir) == []
  # Without a checkpoint: refused before the data is even looked at.
  shutil.rmtree(os.path.join(workdir, 'checkpoints'))
  os.makedirs(os.path.join(workdir, 'checkpoints'))
  with pytest.raises(FileNotFoundError, match='no checkpoint in'):
    workdir_lib.evaluate_checkpoint(workdir)
  assert os.listdir(data_dir) == []


@pytest.mark.slow
def test_readers_accept_every_state_a_kill_leaves(trained, tmp_path):
  expected = workdir_lib.evaluate_checkpoint(trained[0])
  # Killed before config.json: at most a stale lock.
  early = tmp_path / 'early'
  early.mkdir()
  (early / workdir_lib.LOCK_FILE).write_text('{"pid": 1, "host": "h"}')
  with pytest.raises(FileNotFoundError, match='config.json not found'):
    workdir_lib.evaluate_checkpoint(str(early))
  assert workdir_lib.read_summary(str(early), None) is None
  assert replicas.finished_replicas(str(early), trained[1], [0]) is None
  out = subprocess.run([sys.executable, '-m', 'experiments.evaluate', f'--workdir={early}'],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines() == [
      f'error: {early}/config.json not found: {early} is not a training workdir (or its run '
      f'was stopped before it started)']
  # A run resumed there is not refused: the stale lock is all it holds.
  workdir_lib.check_same_run(str(early), trained[1])
  # Killed mid-run: checkpoints, no summary, a torn metrics line, and a save cut short
  # (a step folder without its commit marker, as orbax names them while writing).
  workdir = _copy(trained, tmp_path)
  os.remove(os.path.join(workdir, 'summary.json'))
  with open(os.path.join(workdir, 'metrics.jsonl'), 'a') as f:
    f.write('{"step": 16, "spl')
  ckpt = os.path.join(workdir, 'checkpoints')
  shutil.copytree(os.path.join(ckpt, '12'), os.path.join(ckpt, '16.orbax-checkpoint-tmp-7'))
  assert workdir_lib.evaluate_checkpoint(workdir) == expected
  assert sweep._finished(workdir, sweep.Group('g', {}, [{'seed': 0}])) is None
  assert workdir_lib.read_metrics(os.path.join(workdir, 'metrics.jsonl'))[-1]['step'] == 12


# A full or read-only disk at checkpoint time.

def _mount(*args):
  """Runs ``mount``; skips the test where that is not allowed (it needs root)."""
  out = subprocess.run(['mount', *map(str, args)], capture_output=True, text=True)
  if out.returncode:
    pytest.skip(f'cannot mount here to fill a disk or make a folder read-only '
                f'({out.stderr.strip()}); needs root')


def _fill(path):
  """Writes zeros into ``path`` until the disk is full."""
  with open(path, 'wb') as f:
    try:
      while True:
        f.write(bytes(1 << 20))
        f.flush()
    except OSError:
      pass


@pytest.mark.slow
@pytest.mark.parametrize('failure', ['full', 'read-only'])
def test_a_failed_save_keeps_older_checkpoints_and_the_run_resumes(trained, tmp_path,
                                                                    failure):
  # A 16 MiB tmpfs to fill; or the checkpoints folder bind-mounted read-only onto itself
  # (chmod does not stop root, who runs these tests).
  disk = tmp_path / 'disk'
  disk.mkdir()
  if failure == 'full':
    _mount('-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', disk)
  workdir = str(disk / 'run')
  ckpt = os.path.join(workdir, 'checkpoints')
  mounts = [disk] if failure == 'full' else []

  def break_disk(line):
    # The last epoch's line comes just before its checkpoint (step 12) is saved.
    if line.startswith('epoch 1/1'):
      if failure == 'full':
        _fill(disk / 'filler')
      else:
        _mount('--bind', ckpt, ckpt)
        mounts.insert(0, ckpt)
        _mount('-o', 'remount,bind,ro', ckpt)

  try:
    with pytest.raises(checkpoint.CheckpointWriteError) as e:
      train_and_evaluate(trained[1], workdir, log=break_disk)
    message = str(e.value)
    assert '\n' not in message
    assert message.startswith(f'cannot write the checkpoint at step 12 in {ckpt} (')
    assert 'the previous checkpoints (steps [4, 8]) are intact' in message
    assert 'Free disk space or make the folder writable' in message
    assert not os.path.exists(os.path.join(workdir, 'summary.json'))

    if failure == 'full':
      os.remove(disk / 'filler')
    else:
      subprocess.run(['umount', mounts.pop(0)], check=True)
    lines = []
    summary = train_and_evaluate(trained[1], workdir, log=lines.append)
  finally:
    for path in mounts:
      subprocess.run(['umount', '-l', str(path)], check=True)
  assert f'resumed from step 8 in {workdir}' in lines
  with open(os.path.join(trained[0], 'summary.json')) as f:
    expected = json.load(f)
  timing = {'wall_s', 'compile_s', 'train_images_per_sec'}
  assert ({k: v for k, v in summary.items() if k not in timing}
          == {k: v for k, v in expected.items() if k not in timing})


@pytest.mark.slow
def test_checkpoints_saved_before_the_config_hash_still_restore(trained, tmp_path):
  expected = workdir_lib.evaluate_checkpoint(trained[0])
  workdir = _copy(trained, tmp_path)
  ckpt = os.path.join(workdir, 'checkpoints')
  trainer, step, state = workdir_lib.restore(workdir)
  mngr = checkpoint.manager(ckpt)
  items = workdir_lib.restore_checkpoint(mngr, trainer, step)[1]
  # The meta tree of older versions: no pending sums, no config hash.
  old_meta = {k: v for k, v in items['meta'].items() if k not in ('pending', 'config_hash')}
  mngr.delete(step)
  checkpoint.save(mngr, step, {'state': state, 'meta': old_meta})
  mngr.close()
  assert workdir_lib.evaluate_checkpoint(workdir) == expected
  os.remove(os.path.join(workdir, 'summary.json'))  # resumed from it, the run ends alike
  summary = train_and_evaluate(trained[1], workdir, log=lambda *_: None)
  assert summary['test_accuracy'] == expected['accuracy']
