"""Fans the studies' groups out over a Dask cluster; knows nothing about models.

  python -m experiments.sweep --config ... --cluster tcp://127.0.0.1:8786
  python -m experiments.sweep --config ... --cluster local:4   # LocalCluster, 4 workers

A *job* is today's unit of work, one compiled program (a sweep group, a reproduced
reference): :class:`cnn_jax.train.replicas.Job`. :class:`ClusterRunner` submits each
job as one Dask task, which calls the runner (default
:func:`cnn_jax.train.replicas.train_replicas`) in the job's own workdir on whichever
worker Dask picks, and gathers the :class:`cnn_jax.train.replicas.Outcome`\\ s.

What Dask provides and this module relies on, rather than reimplementing:

* placement: tasks carry the job's worker resources (``config.resources``), so a
  ``GPU=1`` job only lands on a worker started with ``--resources GPU=1``;
* lost workers: a task whose worker dies is rescheduled by the scheduler (up to its
  ``distributed.scheduler.allowed-failures``); the retried task resumes from the newest
  orbax checkpoint in the shared workdir, as any rerun of ``train_and_evaluate`` does.
  Exceptions raised by training (a non-finite loss) are deterministic and are *not*
  retried: they become the job's one-line error;
* security: ``tls://`` addresses with :class:`distributed.Security`.

The workdirs must be on storage every worker sees: :meth:`ClusterRunner.run` checks
that each worker can read a file the driver wrote and write one the driver can read,
and refuses with one line otherwise. Each job leaves ``cluster.log`` (its log lines,
with the host) and ``cluster.json`` (host, start, duration) in its workdir.

Only imported with ``--cluster``: without it the studies run as before and Dask is not
imported.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Callable, Sequence

import dask
import distributed
from distributed.comm import get_address_host

from cnn_jax.train import replicas
from cnn_jax.train import workdir as workdir_lib

LOG_FILE = workdir_lib.CLUSTER_LOG_FILE
PLACEMENT_FILE = workdir_lib.CLUSTER_PLACEMENT_FILE
_TOPIC = 'cnn_jax.cluster'
CONNECT_TIMEOUT_S = 10
BUSY_RETRY_S = 2.0  # how often a job waits for the live owner of its workdir
# Environment variables read when the TLS flags are not given (Dask's own
# DASK_DISTRIBUTED__COMM__TLS__* configuration is read too, by Security()).
TLS_ENV = {'tls_ca_file': 'CNN_JAX_TLS_CA', 'tls_client_cert': 'CNN_JAX_TLS_CERT',
           'tls_client_key': 'CNN_JAX_TLS_KEY'}


class ClusterError(RuntimeError):
  """The cluster cannot be used (unreachable, no fitting worker, storage not shared)."""


def security(ca: str = '', cert: str = '', key: str = '') -> distributed.Security:
  """A TLS :class:`distributed.Security` from files, or from the environment.

  Args:
    ca: the certificate authority's certificate (PEM); else ``$CNN_JAX_TLS_CA``.
    cert: this client's certificate, signed by the CA; else ``$CNN_JAX_TLS_CERT``.
    key: its private key; else ``$CNN_JAX_TLS_KEY``.

  Returns:
    A Security requiring encryption; without any file, Dask's own configuration
    (``DASK_DISTRIBUTED__COMM__TLS__CA_FILE`` ...).
  """
  files = {name: value or os.environ.get(env, '')
           for (name, env), value in zip(TLS_ENV.items(), (ca, cert, key))}
  files = {name: value for name, value in files.items() if value}
  for name, path in files.items():
    if not os.path.isfile(path):
      raise ClusterError(f'TLS {name}: {path} is not a file')
  return distributed.Security(require_encryption=True, **files)


def connect(address: str, tls: distributed.Security | None = None,
            timeout: float = CONNECT_TIMEOUT_S) -> distributed.Client:
  """A Dask client for ``address``.

  Args:
    address: ``tcp://HOST:PORT`` (trusted networks only: a scheduler runs whatever it
      is sent), ``tls://HOST:PORT`` (certificates from ``tls``) or ``local:N`` (a
      :class:`distributed.LocalCluster` of N single-threaded worker processes, spawned,
      never forked from this process that may have initialised JAX).
    tls: for ``tls://`` addresses; default :func:`security` from the environment.
    timeout: seconds to reach the scheduler.

  Returns:
    The connected client.

  Raises:
    ClusterError: one line, for a malformed or unreachable address or a refused TLS
      handshake.
  """
  if address.startswith('local:'):
    try:
      workers = int(address.split(':', 1)[1])
    except ValueError:
      workers = 0
    if workers < 1:
      raise ClusterError(f'--cluster {address}: expected local:N with N >= 1 workers')
    # The worker processes read their logging level from the environment they inherit;
    # at INFO they would print their shutdown into the command's output.
    os.environ.setdefault('DASK_LOGGING__DISTRIBUTED', 'error')
    with dask.config.set({'distributed.worker.multiprocessing-method': 'spawn'}):
      # Loopback only: nothing but this machine needs to reach a local cluster.
      local = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, host='127.0.0.1',
                                       dashboard_address=None)
    return distributed.Client(local)
  if not address.startswith(('tcp://', 'tls://')):
    raise ClusterError(f'--cluster {address}: expected tcp://HOST:PORT, tls://HOST:PORT or '
                       f'local:N')
  if address.startswith('tls://') and tls is None:
    tls = security()
  try:
    return distributed.Client(address, timeout=timeout, security=tls)
  except (OSError, TimeoutError) as e:  # refused, timed out, TLS handshake failed
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise ClusterError(f'cannot connect to the Dask scheduler at {address} ({reason}); is '
                       f'it running (dask scheduler --host HOST --port PORT), and for tls:// '
                       f'are the certificates signed by its CA?') from None


def resources(config) -> dict[str, float]:
  """The Dask worker resources one job of ``config`` needs (``config.resources``).

  ``CPU`` and ``GPU`` count devices, ``MEMORY`` is in bytes (the Dask docs' names);
  zero fields are not requested.
  """
  wanted = {'CPU': config.resources.cpu, 'GPU': config.resources.gpu,
            'MEMORY': config.resources.memory_gb * 1e9}
  return {name: float(value) for name, value in wanted.items() if value}


def _probe(path: str, token: str) -> str | None:
  """On a worker: whether it sees the driver's probe file and can write beside it."""
  try:
    with open(path) as f:
      if f.read() != token:
        return f'{path} holds another content'
    with open(f'{path}.{uuid.uuid4().hex}', 'w') as f:
      f.write(token)
      return f.name
  except OSError as e:
    return f'{type(e).__name__}: {e}'


def check_shared_storage(client: distributed.Client, directory: str) -> None:
  """Refuses a directory that some worker cannot see or write.

  The driver writes a probe file; every worker must read it and write one the driver
  then reads: a worker-local folder of the same path fails the first step.

  Raises:
    ClusterError: naming the worker and the shared-storage rule.
  """
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(os.path.abspath(directory), f'.cluster-probe-{uuid.uuid4().hex}')
  token = uuid.uuid4().hex
  with open(path, 'w') as f:
    f.write(token)
  try:
    answers = client.run(_probe, path, token)
    for worker, answer in sorted(answers.items()):
      if not (answer and answer.startswith(path) and os.path.exists(answer)):
        reason = answer if answer and not answer.startswith(path) else (
            'the driver cannot see the file it wrote')
        raise ClusterError(
            f'worker {worker} cannot use {os.path.abspath(directory)} ({reason}): the '
            f'workdir must be on storage every worker shares (a shared filesystem path, '
            f'the same on every host)')
      os.remove(answer)
  finally:
    os.remove(path)


def _train_job(runner: replicas.Runner, job: replicas.Job) -> replicas.Outcome:
  """On a worker: trains one job in its workdir, logging to ``cluster.log``.

  A retried task (its first worker died) finds the first attempt's checkpoints and
  ``train_and_evaluate`` resumes from the newest finalized one. One owner per workdir
  (``train_and_evaluate``'s lock, :func:`cnn_jax.train.workdir.lock`): while another
  live process holds it, the task waits and tries again.
  """
  worker = distributed.get_worker()
  host = get_address_host(worker.address)
  os.makedirs(job.workdir, exist_ok=True)
  started = time.time()
  worker.log_event(_TOPIC, {'job': job.name, 'state': 'running', 'host': host,
                            'time': started})
  with open(os.path.join(job.workdir, LOG_FILE), 'a') as log_file:
    def log(line: str) -> None:
      log_file.write(f'{time.strftime("%H:%M:%S")} {host} {line}\n')
      log_file.flush()
      worker.log_event(_TOPIC, {'job': job.name, 'line': line, 'host': host})

    log(f'{job.name}: started on {worker.address} (pid {os.getpid()})')
    summaries, error, waiting = None, None, False
    while True:
      try:
        summaries = runner(job.config, job.workdir, job.variants, log=log)
      except workdir_lib.WorkdirBusyError as e:
        # An earlier attempt still trains here (its worker lost to the scheduler but
        # alive, or its driver gone): wait for it, then resume or read back its end.
        if not waiting:
          log(f'{job.name}: waiting: {e}')
        waiting = True
        time.sleep(BUSY_RETRY_S)
        continue
      except Exception as e:  # pylint: disable=broad-except  (reported as the job's row)
        error = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
        error = error.rstrip(': ')
        log(f'{job.name}: failed: {error}')
      break
  outcome = replicas.Outcome(summaries, error, host, time.time() - started, started)
  with open(os.path.join(job.workdir, PLACEMENT_FILE), 'w') as f:
    json.dump({'host': host, 'worker': worker.address, 'started': started,
               'duration_s': outcome.duration_s, 'error': error}, f, indent=2)
  return outcome


class _Progress:
  """Per-job state for the driver's log: queued, running on HOST, done, failed."""

  def __init__(self, jobs: Sequence[replicas.Job], log: Callable[[str], None]):
    self.log = log
    self.start = time.time()
    self.state = {job.name: {'state': 'queued', 'host': '', 'submitted': self.start,
                             'started': None, 'duration_s': None} for job in jobs}

  def event(self, event) -> None:
    """Handles a worker's event (runs on the client's event loop thread)."""
    _, msg = event
    job = self.state.get(msg.get('job'))
    if job is None:
      return
    if msg.get('state') == 'running':
      resumed = job['started'] is not None
      job.update(state='running', host=msg['host'], started=msg['time'])
      self.log(f'[cluster] {msg["job"]}: {"restarted" if resumed else "running"} on '
               f'{msg["host"]} ({msg["time"] - job["submitted"]:.1f} s after submit)')
    elif 'line' in msg:
      self.log(f'[{msg["job"]} @ {msg["host"]}] {msg["line"]}')

  def finish(self, name: str, outcome: replicas.Outcome) -> None:
    job = self.state[name]
    job.update(state='failed' if outcome.error else 'done', host=outcome.host,
               duration_s=outcome.duration_s)
    what = f'failed: {outcome.error}' if outcome.error else 'done'
    took = '' if outcome.duration_s is None else f' in {outcome.duration_s:.1f} s'
    self.log(f'[cluster] {name}: {what} on {outcome.host or "-"}{took}')

  def table(self) -> str:
    """The jobs as a plain-text table, with an ETA from the finished jobs' durations."""
    now = time.time()
    lines = [f'{"job":40} {"state":8} {"host":15} {"elapsed":>8}']
    for name, job in self.state.items():
      if job['duration_s'] is not None:
        elapsed = job['duration_s']
      elif job['started'] is not None:
        elapsed = now - job['started']
      else:
        elapsed = now - job['submitted']
      lines.append(f'{name[:40]:40} {job["state"]:8} {job["host"] or "-":15} '
                   f'{elapsed:7.1f}s')
    durations = [j['duration_s'] for j in self.state.values() if j['duration_s']]
    left = sum(j['state'] in ('queued', 'running') for j in self.state.values())
    if durations and left:
      lines.append(f'ETA ~{left * sum(durations) / len(durations):.0f} s of work left '
                   f'(mean job {sum(durations) / len(durations):.1f} s x {left} jobs, '
                   f'before dividing by the workers)')
    return '\n'.join(lines)


class ClusterRunner:
  """Runs jobs as Dask tasks; see the module docstring.

  Args:
    client: a connected client (:func:`connect`).
    runner: trains one job on a worker (:data:`cnn_jax.train.replicas.Runner`); it is
      pickled with cloudpickle, so it must be importable there.
    table_every_s: seconds between progress tables in the log.
    one_line_errors: raise a :class:`ClusterError` as ``SystemExit`` (its one line),
      for the command-line tools.
  """

  def __init__(self, client: distributed.Client, runner: replicas.Runner | None = None,
               table_every_s: float = 30.0, one_line_errors: bool = False):
    self.client = client
    self.runner = runner or replicas.train_replicas
    self.table_every_s = table_every_s
    self.one_line_errors = one_line_errors

  def _check_resources(self, wanted: dict[str, float]) -> None:
    workers = self.client.scheduler_info(n_workers=-1)['workers']
    if not workers:
      raise ClusterError('the Dask cluster has no workers: start some with dask worker '
                         'SCHEDULER_ADDRESS --nthreads 1')
    if not any(all(w.get('resources', {}).get(k, 0) >= v for k, v in wanted.items())
               for w in workers.values()):
      flags = ' '.join(f'{k}={v:g}' for k, v in wanted.items())
      raise ClusterError(f'no worker offers the resources one job needs ({flags}); start '
                         f'workers with dask worker ... --resources "{flags}"')

  def run(self, jobs: Sequence[replicas.Job], log: Callable[[str], None] = print
          ) -> dict[str, replicas.Outcome]:
    """Trains every job on the cluster and waits for all of them.

    Args:
      jobs: the jobs; their workdirs must be distinct (one owner per workdir).
      log: progress lines: a job's state changes, its training log lines (prefixed
        ``[job @ host]``) and a table every ``table_every_s`` seconds.

    Returns:
      Job name -> :class:`cnn_jax.train.replicas.Outcome`; a failed job's has
      ``summaries`` None and its one-line ``error``.

    Raises:
      ClusterError: before anything is submitted, if the workdirs are not on shared
        storage or no worker offers a job's resources.
    """
    try:
      return self._run(jobs, log)
    except ClusterError as e:
      if self.one_line_errors:
        raise SystemExit(f'error: {e}') from None
      raise

  def _run(self, jobs, log):
    if not jobs:
      return {}
    # The workers resolve paths in their own working directories: send absolute ones.
    jobs = [job._replace(workdir=os.path.abspath(job.workdir)) for job in jobs]
    for directory in sorted({os.path.dirname(job.workdir) for job in jobs}):
      check_shared_storage(self.client, directory)
    wanted = [resources(job.config) for job in jobs]
    for need in {tuple(sorted(w.items())) for w in wanted}:
      self._check_resources(dict(need))
    progress = _Progress(jobs, log)
    self.client.subscribe_topic(_TOPIC, progress.event)
    try:
      futures = {}
      for job, need in zip(jobs, wanted):
        # pure=False: a rerun must train again, never reuse a cached result.
        future = self.client.submit(_train_job, self.runner, job, resources=need or None,
                                    pure=False, key=f'train-{job.name}-{uuid.uuid4().hex[:8]}')
        futures[future] = job.name
      log(f'[cluster] submitted {len(jobs)} job(s) to {self.client.scheduler.address} '
          f'({len(self.client.scheduler_info(n_workers=-1)["workers"])} workers)')
      outcomes, remaining = {}, set(futures)
      while remaining:
        try:
          done, _ = distributed.wait(list(remaining), timeout=self.table_every_s,
                                     return_when='FIRST_COMPLETED')
        except TimeoutError:
          log(progress.table())
          continue
        for future in done:
          name = futures[future]
          try:
            outcome = future.result()
          except Exception as e:  # pylint: disable=broad-except  (e.g. KilledWorker)
            line = str(e).splitlines()[0] if str(e) else ''
            outcome = replicas.Outcome(None, f'{type(e).__name__}: {line}',
                                       progress.state[name]['host'], None, None)
          outcomes[name] = outcome
          progress.finish(name, outcome)
        remaining -= set(done)
      log(progress.table())
      return {job.name: outcomes[job.name] for job in jobs}
    finally:
      self.client.unsubscribe_topic(_TOPIC)
