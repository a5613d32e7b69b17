"""The Dask fan-out on a real loopback cluster: placement, equality, faults, TLS.

A scheduler on 127.0.0.2 and two single-threaded workers on 127.0.0.3 and 127.0.0.4
(distinct hosts to Dask) are started by the tests and stopped by the process ids they
started. Only 127.x addresses are ever used. The sweep is tests/configs/tiny.py on the
toy of tests/idx_files.py: 3 stride groups x 2 seeds, 2 epochs, checkpoints every 4
steps; the expected numbers are those of the same sweep run locally, without Dask.
"""

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from configs.tiny import get_config as tiny_config
from idx_files import prepare_toy_tfds
from subprocess_env import subprocess_env

from cnn_jax import sweep
from cnn_jax.train import replicas
from cnn_jax.train import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULER_HOST, WORKER_HOSTS = '127.0.0.2', ('127.0.0.3', '127.0.0.4')
AXES = {'model.strides': [1, 2, 3]}
SEEDS = 2
ENV = subprocess_env()
QUIET = dict(log=lambda *_: None)

pytestmark = pytest.mark.slow


def _free_port(host: str) -> int:
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


def _start(args, log_path) -> subprocess.Popen:
  """A Dask process in its own session, so killing its group takes its children."""
  with open(log_path, 'w') as log:
    return subprocess.Popen([sys.executable, '-m', *args], env=ENV, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
  if process.poll() is None:
    os.killpg(process.pid, signal.SIGKILL)  # the group of the process this test started
  process.wait()


def _wait_for_workers(address: str, n: int, security=None) -> None:
  from cnn_jax import cluster
  client = cluster.connect(address, security, timeout=30)
  try:
    client.wait_for_workers(n, timeout=90)
  finally:
    client.close()


class Cluster:
  """A scheduler and workers started by the test, each by its own process."""

  def __init__(self, tmp, scheme='tcp', tls_args=(), hosts=WORKER_HOSTS):
    port = _free_port(SCHEDULER_HOST)
    self.address = f'{scheme}://{SCHEDULER_HOST}:{port}'
    self.scheduler = _start(['distributed.cli.dask_scheduler', '--host', SCHEDULER_HOST,
                             '--port', str(port), '--protocol', scheme, '--no-dashboard',
                             *tls_args],
                            tmp / 'scheduler.log')
    # The last worker offers one (pretend) GPU: jobs asking for it land there only.
    self.workers = {host: _start(['distributed.cli.dask_worker', self.address, '--host',
                                  host, '--nthreads', '1', '--no-dashboard', *tls_args,
                                  *(['--resources', 'GPU=1'] if host == hosts[-1] else [])],
                                 tmp / f'worker-{host}.log')
                    for host in hosts}

  def stop(self):
    for process in [*self.workers.values(), self.scheduler]:
      _stop(process)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


@pytest.fixture(scope='module')
def config(data_dir):
  config = tiny_config(data_dir)
  config.num_epochs = 2
  return config


@pytest.fixture(scope='module')
def local_rows(config, tmp_path_factory):
  """The reference: the same sweep trained here, one group after another, no Dask."""
  workdir = str(tmp_path_factory.mktemp('local') / 'sweep')
  rows = sweep.run_sweep(config, workdir, AXES, SEEDS, **QUIET)
  return workdir, rows


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('cluster')
  running = Cluster(tmp)
  try:
    _wait_for_workers(running.address, len(WORKER_HOSTS))
    yield running
  finally:
    running.stop()


def _summaries(workdir, group):
  with open(os.path.join(workdir, group, 'summary.json')) as f:
    return json.load(f)['replicas']


def _assert_same_results(workdir, local_workdir, rows, local):
  """Every replica's final numbers equal the local run's (independent programs)."""
  assert [r['group'] for r in rows] == [r['group'] for r in local]
  for row, expected in zip(rows, local):
    assert row['test_accuracy_mean'] == pytest.approx(expected['test_accuracy_mean'],
                                                      abs=1e-6)
    ours, theirs = _summaries(workdir, row['group']), _summaries(local_workdir, row['group'])
    for a, b in zip(ours, theirs):
      assert a['variant'] == b['variant']
      for key in ('test_loss', 'test_accuracy', 'train_loss', 'best_eval_accuracy'):
        assert a[key] == pytest.approx(b[key], rel=1e-5), (row['group'], key)


def _cli_sweep(config_arg, workdir, *flags, timeout=400):
  start = time.perf_counter()
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep', f'--config={config_arg}',
       f'--workdir={workdir}', '--seeds=1', '--config.num_epochs=1', *flags],
      cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
  return result, time.perf_counter() - start


def test_the_studies_do_not_import_dask_without_cluster():
  # One entry point per process (their flags clash); they share experiments.cli.
  code = ('import sys; import cnn_jax.sweep, cnn_jax.reproduce, cnn_jax.dnn_vs_cnn; '
          'import experiments.sweep; '
          'print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", '
          '"distributed")))')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == '[]'


def test_an_unreachable_scheduler_is_one_line_within_30_s_and_writes_nothing(tmp_path,
                                                                             data_dir):
  port = _free_port(SCHEDULER_HOST)  # nothing listens there
  workdir = tmp_path / 'sweep'
  result, seconds = _cli_sweep(f'tests/configs/tiny.py:{data_dir}', workdir,
                               f'--cluster=tcp://{SCHEDULER_HOST}:{port}')
  assert result.returncode != 0
  assert seconds < 30
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      f'error: cannot connect to the Dask scheduler at tcp://{SCHEDULER_HOST}:{port}'), lines
  assert not workdir.exists()


def test_a_non_finite_group_fails_its_row_the_others_finish_and_the_command_fails(
    tmp_path, data_dir, cluster):
  workdir = tmp_path / 'sweep'
  result, _ = _cli_sweep(f'tests/configs/tiny.py:{data_dir}', workdir,
                         '--sweep=optimizer.learning_rate=0.003,1e30',
                         '--config.resources.gpu=1', f'--cluster={cluster.address}')
  assert result.returncode != 0, result.stdout[-2000:]
  assert result.stderr.strip().splitlines()[-1] == (
      'error: 1 group(s) failed: optimizer.learning_rate=1e+30 (see the status column and '
      f"each group's {workdir}/GROUP/cluster.log)")
  with open(workdir / sweep.RESULTS_CSV) as f:
    table = {r['group']: r for r in csv.DictReader(f)}
  good, bad = table['optimizer.learning_rate=0.003'], table['optimizer.learning_rate=1e+30']
  # Both groups asked for a GPU: both ran on the one worker that offers it.
  assert good['host'] == bad['host'] == WORKER_HOSTS[-1]
  assert good['status'] == 'done'
  assert float(good['test_accuracy_mean']) > 0
  assert bad['status'] == 'failed' and bad['test_accuracy_mean'] == ''
  assert bad['error'].startswith('FloatingPointError: non-finite loss or gradients at step')
  assert '\n' not in bad['error']
  assert '| failed: FloatingPointError: non-finite' in (workdir / sweep.RESULTS_MD).read_text()


def _openssl(*args, cwd):
  subprocess.run(['openssl', *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory) -> dict[str, dict[str, str]]:
  """Two CAs and a certificate signed by each: ``node`` (the cluster's) and ``intruder``."""
  for ca in ('ca', 'other_ca'):
    _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f'{ca}.key',
             '-out', f'{ca}.pem', '-days', '1', '-subj', f'/CN={ca}', cwd=directory)
  (directory / 'ext').write_text('subjectAltName=' + ','.join(
      f'IP:{h}' for h in (SCHEDULER_HOST, *WORKER_HOSTS)) + '\n')
  files = {}
  for name, ca in (('node', 'ca'), ('intruder', 'other_ca')):
    _openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f'{name}.key', '-out',
             f'{name}.csr', '-subj', f'/CN={name}', cwd=directory)
    _openssl('x509', '-req', '-in', f'{name}.csr', '-CA', f'{ca}.pem', '-CAkey', f'{ca}.key',
             '-CAcreateserial', '-out', f'{name}.pem', '-days', '1', '-extfile', 'ext',
             cwd=directory)
    files[name] = {'cert': str(directory / f'{name}.pem'),
                   'key': str(directory / f'{name}.key')}
  return files


@pytest.mark.skipif(not shutil.which('openssl'), reason='needs the openssl command')
def test_tls_cluster_runs_tasks_for_its_certificates_and_refuses_others(tmp_path):
  from cnn_jax import cluster as cluster_lib
  certs = _certificates(tmp_path)
  ca = str(tmp_path / 'ca.pem')
  node = certs['node']
  running = Cluster(tmp_path, 'tls', ['--tls-ca-file', ca, '--tls-cert', node['cert'],
                                      '--tls-key', node['key']], hosts=WORKER_HOSTS[:1])
  try:
    client = cluster_lib.connect(running.address, cluster_lib.security(ca, **certs['node']),
                                 timeout=30)
    client.wait_for_workers(1, timeout=90)
    assert client.submit(socket.gethostname, pure=False).result() == socket.gethostname()
    assert [w.startswith(f'tls://{WORKER_HOSTS[0]}:')
            for w in client.scheduler_info()['workers']] == [True]
    client.close()
    # The intruder trusts the cluster's CA but its certificate is not signed by it;
    # a plain tcp:// client cannot speak to a TLS listener at all.
    for address, tls in ((running.address, cluster_lib.security(ca, **certs['intruder'])),
                         (running.address.replace('tls://', 'tcp://'), None)):
      start = time.perf_counter()
      with pytest.raises(cluster_lib.ClusterError, match='cannot connect to the Dask '
                         'scheduler'):
        cluster_lib.connect(address, tls)
      assert time.perf_counter() - start < 30
    assert 'CERTIFICATE_VERIFY_FAILED' in (tmp_path / 'scheduler.log').read_text()
  finally:
    running.stop()


def test_a_restarted_driver_reads_back_finished_groups_and_resubmits_the_others(
    tmp_path, data_dir, config, local_rows, cluster):
  workdir = tmp_path / 'sweep'
  command = [sys.executable, '-m', 'experiments.sweep',
             f'--config=tests/configs/tiny.py:{data_dir}', f'--workdir={workdir}',
             '--sweep=model.strides=1,2,3', f'--seeds={SEEDS}',
             f'--config.num_epochs={config.num_epochs}', f'--cluster={cluster.address}']
  with open(tmp_path / 'first.log', 'w') as log:
    driver = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=log, stderr=log)
  summaries = lambda: [g for g in os.listdir(workdir) if os.path.exists(
      os.path.join(workdir, g, 'summary.json'))] if workdir.exists() else []
  deadline = time.time() + 240
  while not summaries() and time.time() < deadline and driver.poll() is None:
    time.sleep(0.2)
  driver.kill()  # the driver this test started
  driver.wait()
  finished = summaries()
  assert 1 <= len(finished) < len(AXES['model.strides']), finished
  # The tasks the dead driver left running go on (Dask cannot stop a running task);
  # their resubmitted twins wait for them on the workdir lock.
  result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=400)
  assert result.returncode == 0, result.stderr[-3000:]
  read_back = re.findall(r'\] (\S+) \(2 replicas\): finished earlier, read back',
                         result.stdout)
  assert set(finished) <= set(read_back), result.stdout
  submitted = re.findall(r'\] (\S+) \(2 replicas\): to train', result.stdout)
  assert sorted(read_back + submitted) == sorted(r['group'] for r in local_rows[1])
  with open(workdir / sweep.RESULTS_CSV) as f:
    table = list(csv.DictReader(f))
  assert {r['group']: r['status'] for r in table} == {
      **{g: 'read back' for g in read_back}, **{g: 'done' for g in submitted}}
  rows = [{'group': r['group'], 'test_accuracy_mean': float(r['test_accuracy_mean'])}
          for r in table]
  _assert_same_results(str(workdir), local_rows[0], rows, local_rows[1])


def _locking_runner(config, workdir, variants, log=print):
  """Takes the workdir's lock as train_and_evaluate does, and trains nothing."""
  del config, log
  with workdir_lib.lock(workdir):
    return [{'variant': v} for v in variants]


def test_a_job_whose_workdir_has_a_live_owner_waits_for_it(tmp_path, cluster):
  from cnn_jax import cluster as cluster_lib
  group = tmp_path / 'group'
  group.mkdir()
  client = cluster_lib.connect(cluster.address)
  runner = cluster_lib.ClusterRunner(client, runner=_locking_runner)
  result = {}
  with workdir_lib.lock(str(group)):  # this process owns the group now
    thread = threading.Thread(target=lambda: result.update(runner.run(
        [replicas.Job('group', tiny_config(), str(group), [{'seed': 0}])],
        log=lambda *_: None)))
    thread.start()
    deadline = time.time() + 60
    while 'waiting' not in _read(group / cluster_lib.LOG_FILE) and time.time() < deadline:
      time.sleep(0.2)
    held_until = time.time()
  thread.join(timeout=60)
  client.close()
  log = _read(group / cluster_lib.LOG_FILE)
  assert f'is in use by pid {os.getpid()}' in log
  assert result['group'].summaries == [{'variant': {'seed': 0}}]
  assert result['group'].started + result['group'].duration_s >= held_until


def test_a_group_needing_resources_no_worker_offers_is_refused_before_submitting(
    tmp_path, cluster):
  from cnn_jax import cluster as cluster_lib
  config = tiny_config()
  config.resources.gpu = 2  # the module's cluster offers one GPU, on one worker
  client = cluster_lib.connect(cluster.address)
  try:
    with pytest.raises(cluster_lib.ClusterError, match=re.escape(
        'no worker offers the resources one job needs (GPU=2); start workers with dask '
        'worker ... --resources "GPU=2"')):
      cluster_lib.ClusterRunner(client).run(
          [replicas.Job('g', config, str(tmp_path / 'g'), [{'seed': 0}])])
    assert not (tmp_path / 'g').exists()
  finally:
    client.close()


def _can_unshare_mounts() -> bool:
  if not shutil.which('unshare'):
    return False
  probe = subprocess.run(['unshare', '--mount', 'true'], capture_output=True)
  return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_mounts(), reason='needs unshare --mount (root)')
def test_a_worker_that_does_not_share_the_workdir_is_refused_in_one_line(tmp_path):
  """A worker in its own mount namespace with an empty tmpfs over the test's folder: the
  same path, other storage, as on a host without the shared filesystem."""
  from cnn_jax import cluster as cluster_lib
  (tmp_path / 'logs').mkdir()
  running = Cluster(tmp_path / 'logs', hosts=())
  with open(tmp_path / 'logs' / 'worker.log', 'w') as log:
    worker = subprocess.Popen(
        ['unshare', '--mount', 'sh', '-c', f'mount -t tmpfs tmpfs {tmp_path} && exec '
         f'{sys.executable} -m distributed.cli.dask_worker {running.address} --host '
         f'{WORKER_HOSTS[1]} --nthreads 1 --no-dashboard'],
        env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
  try:
    client = cluster_lib.connect(running.address, timeout=30)
    client.wait_for_workers(1, timeout=90)
    workdir = tmp_path / 'sweep'
    with pytest.raises(cluster_lib.ClusterError) as refused:
      cluster_lib.ClusterRunner(client).run(
          [replicas.Job('g', tiny_config(), str(workdir / 'g'), [{'seed': 0}])])
    message = str(refused.value)
    assert '\n' not in message
    assert re.match(rf'worker tcp://{re.escape(WORKER_HOSTS[1])}:\d+ cannot use '
                    rf'{re.escape(str(workdir))} \(FileNotFoundError: .*\): the workdir '
                    r'must be on storage every worker shares', message), message
    assert os.listdir(workdir) == []  # the probe file is gone, nothing was submitted
    client.close()
  finally:
    _stop(worker)
    running.stop()


def test_local_n_spawns_single_threaded_worker_processes(tmp_path):
  from cnn_jax import cluster as cluster_lib
  client = cluster_lib.connect('local:1')
  try:
    (worker,) = client.scheduler_info()['workers'].values()
    assert worker['nthreads'] == 1
    (pid,) = client.run(os.getpid).values()
    # Spawned: a fresh interpreter running multiprocessing's spawn_main, not a fork of
    # this process (which has JAX initialised).
    with open(f'/proc/{pid}/cmdline', 'rb') as f:
      assert b'spawn_main' in f.read()
    outcome = cluster_lib.ClusterRunner(client, runner=_locking_runner).run(
        [replicas.Job('g', tiny_config(), str(tmp_path / 'g'), [{'seed': 0}])],
        log=lambda *_: None)['g']
    assert outcome.summaries == [{'variant': {'seed': 0}}] and outcome.error is None
  finally:
    client.close()


def _read(path) -> str:
  return path.read_text() if path.exists() else ''


def _slow_runner(config, workdir, variants, log=print):
  """train_replicas, pausing 3 s at each end-of-epoch log line: a window to kill it in
  after its first checkpoints (every 4 steps), without changing what it computes."""
  def slow_log(line):
    log(line)
    if line.startswith('epoch 1/'):
      time.sleep(3)
  return replicas.train_replicas(config, workdir, variants, log=slow_log)


def test_a_killed_worker_s_group_resumes_elsewhere_and_the_sweep_equals_the_local_run(
    tmp_path, config, local_rows, cluster):
  """Kept last: it kills one of the module's two workers."""
  from cnn_jax import cluster as cluster_lib
  workdir = str(tmp_path / 'sweep')
  client = cluster_lib.connect(cluster.address)
  runner = cluster_lib.ClusterRunner(client, runner=_slow_runner, table_every_s=5)
  lines, result = [], {}
  thread = threading.Thread(target=lambda: result.update(rows=sweep.run_sweep(
      config, workdir, AXES, SEEDS, log=lines.append, fan_out=runner.run)))
  thread.start()
  # The first group to log its first epoch (its steps 4 and 8 are checkpointed) is
  # paused in that line: kill the worker training it.
  victim = group = None
  deadline = time.time() + 240
  while victim is None and time.time() < deadline and thread.is_alive():
    for line in list(lines):
      found = re.match(r'\[(\S+) @ (\S+)\] epoch 1/2', line)
      if found:
        group, victim = found.groups()
        break
    time.sleep(0.2)
  assert victim in WORKER_HOSTS, lines
  assert not os.path.exists(os.path.join(workdir, group, 'summary.json'))
  _stop(cluster.workers[victim])
  thread.join(timeout=400)
  client.close()
  assert not thread.is_alive()
  text = '\n'.join(lines)
  # Both workers trained groups before one was lost.
  assert {h for h in WORKER_HOSTS if re.search(rf'running on {re.escape(h)}', text)} == set(
      WORKER_HOSTS), text
  with open(os.path.join(workdir, group, cluster_lib.LOG_FILE)) as f:
    group_log = f.read()
  resumed = [int(s) for s in re.findall(r'resumed from step (\d+)', group_log)]
  assert resumed and resumed[0] > 0, group_log
  survivor = next(h for h in WORKER_HOSTS if h != victim)
  assert f'{survivor} {group}: started on' in group_log  # retried on the other worker
  rows = result['rows']
  assert all(r['status'] == 'done' for r in rows)
  assert next(r for r in rows if r['group'] == group)['host'] == survivor
  _assert_same_results(workdir, local_rows[0], rows, local_rows[1])
  print(f'\nkilled {victim} in {group}; resumed from step {resumed[0]} of '
        f'{_summaries(workdir, group)[0]["steps"]}')
