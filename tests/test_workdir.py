"""The workdir contract under misuse: one owner, crafted files, kills at any point."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from cnn_jax.train import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HOLD_LOCK = '''
import sys, time
from cnn_jax.train import workdir
with workdir.lock(sys.argv[1]):
  print('locked', flush=True)
  time.sleep(600)
'''


def _env():
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'tests')]),
             JAX_PLATFORMS='cpu')
  env.pop('XLA_FLAGS', None)
  return env


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
