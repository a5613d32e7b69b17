"""The workdir contract: what a run leaves on disk, how it is read back and re-checked.

A single run's workdir::

  workdir/config.json      {'config', 'environment'[, 'variants']}: written once
  workdir/metrics.jsonl    one JSON record per event (train / eval / test)
  workdir/summary.json     the final results (``{'replicas': [...]}`` with replicas)
  workdir/checkpoints/     orbax steps: {'state': TrainState, 'meta': bookkeeping}
  workdir/replica_NN/      with vmapped replicas: each one's metrics and summary
  workdir/.lock            while a run trains: its pid, host and start time
  workdir/cluster.log      with --cluster: the job's log lines (host, time), and
  workdir/cluster.json     where and how long it ran (cnn_jax.cluster writes both)

A workdir is only ever resumed by the same run: :func:`check_same_run` refuses a
different config or set of replicas, and a folder that is not empty but holds no
``config.json`` (someone else's files), before anything is written. Each checkpoint
also carries a hash of the config that saved it (:func:`config_hash`), compared on
restore. A finished run whose checkpoints were removed is refused, not retrained.

Every JSON file here is read through :func:`read_json` / :func:`read_metrics`, which
check the type of what they read and raise :class:`WorkdirFileError`, one line naming
the file, for anything else. JSON files are written whole or not at all
(:func:`write_json`); ``metrics.jsonl`` is appended, so a kill can tear its last line,
which readers drop (the resumed run rewrites the file up to its checkpoint). Readers
accept a workdir in every state a kill leaves: no ``config.json`` yet, no checkpoint
yet, no ``summary.json`` yet, a torn metrics line, a checkpoint step without its commit
marker (orbax ignores it).

One owner per workdir: a training run holds ``workdir/.lock`` (an exclusive
``fcntl.flock`` on the file, which records the holder's pid, host and start time) from
before it reads the workdir until it returns. A second process is refused at once with
:class:`WorkdirBusyError` naming the holder. The kernel drops a flock when its process
dies, however it dies, so the lock of a killed run is stale by construction and the
next run takes it over; a run that returns deletes the file. (On NFS, flock is
emulated with byte-range locks, which the server also releases when a client dies.)
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import socket
import tempfile

import ml_collections
import numpy as np

from cnn_jax import provenance
from cnn_jax.train import checkpoint, replicas
from cnn_jax.train.steps import NO_BAD_STEP
from cnn_jax.train.trainer import Trainer

CONFIG_FILE = 'config.json'
SUMMARY_FILE = 'summary.json'
CHECKPOINT_DIR = 'checkpoints'
LOCK_FILE = '.lock'
CLUSTER_LOG_FILE = 'cluster.log'
CLUSTER_PLACEMENT_FILE = 'cluster.json'
# What may stand in a workdir before its config.json: a stale lock, and the cluster
# task's own files, which it opens before it starts the run.
_BEFORE_CONFIG = {LOCK_FILE, CLUSTER_LOG_FILE, CLUSTER_PLACEMENT_FILE}


class WorkdirBusyError(RuntimeError):
  """Another live process holds the workdir's lock."""


class WorkdirFileError(ValueError):
  """A workdir file does not hold what it must (the message names the file)."""


def read_json(path: str) -> dict:
  """Reads a JSON file that must hold an object.

  Raises:
    FileNotFoundError: if there is no such file.
    WorkdirFileError: one line naming ``path``, if it is not JSON or not an object.
  """
  with open(path) as f:
    text = f.read()
  try:
    value = json.loads(text)
  except ValueError as e:
    raise WorkdirFileError(f'{path} is not valid JSON ({e}); it was damaged or not '
                           f'written by cnn_jax: move it away') from None
  if not isinstance(value, dict):
    raise WorkdirFileError(f'{path} holds a JSON {type(value).__name__}, not an object; '
                           f'it was not written by cnn_jax: move it away')
  return value


def read_metrics(path: str) -> list[dict]:
  """The records of a ``metrics.jsonl`` (none if it does not exist).

  A last line without its newline is a write cut short by a kill: it is dropped.

  Raises:
    WorkdirFileError: naming the file and line, for any other line that is not a
      record (a JSON object with an int ``step`` and a str ``split``).
  """
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().split('\n')
  # After the last newline: '' for a whole file, else a torn line.
  records = []
  for number, line in enumerate(lines[:-1], 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except ValueError:
      record = None
    if not (isinstance(record, dict) and isinstance(record.get('step'), int)
            and isinstance(record.get('split'), str)):
      raise WorkdirFileError(f'{path}:{number} is not a metrics record (a JSON object '
                             f'with step and split): {line[:80]!r}; move the file away')
    records.append(record)
  return records


def write_json(path: str, value) -> None:
  """Writes ``value`` as JSON to ``path`` whole or not at all (a kill keeps the old file)."""
  fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + '.', suffix='.tmp',
                             dir=os.path.dirname(path) or '.')
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(value, f, indent=2, default=str)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from other users
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


@contextlib.contextmanager
def lock(workdir: str, log=print):
  """Holds ``workdir/.lock`` for the duration of the block: one owner per workdir.

  Args:
    workdir: an existing run directory.
    log: told when the lock of a killed run is taken over.

  Yields:
    Nothing; the lock is released (and its file deleted) when the block exits.

  Raises:
    WorkdirBusyError: at once, naming the holder's pid and host, if a live process
      holds the lock.
  """
  path = os.path.join(workdir, LOCK_FILE)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _lock_holder(fd)
      os.close(fd)
      raise WorkdirBusyError(
          f'{workdir} is in use by pid {holder.get("pid", "?")} on host '
          f'{holder.get("host", "?")} (since {holder.get("start", "?")}; {path}): wait '
          f'for it to finish or stop it, or use another --workdir') from None
    # The file may have been deleted by the previous holder between our open and our
    # flock: then we hold a lock nobody else can see; start again on the new file.
    try:
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:
      break
    os.close(fd)
  stale = _lock_holder(fd)
  if stale:
    log(f'taking over the lock of pid {stale.get("pid")} on {stale.get("host")}, which '
        f'ended without releasing it')
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps({
      'pid': os.getpid(), 'host': socket.gethostname(),
      'start': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
  }).encode(), 0)
  try:
    yield
  finally:
    # Deleted while still held, so no other process can lock the old file meanwhile.
    # On a folder gone read-only the file stays: closing releases the lock all the same.
    with contextlib.suppress(OSError):
      os.unlink(path)
    os.close(fd)


def _lock_holder(fd: int) -> dict:
  """What a lock file says about its holder (empty if it says nothing readable)."""
  try:
    holder = json.loads(os.pread(fd, 4096, 0) or b'{}')
  except ValueError:
    return {}
  return holder if isinstance(holder, dict) else {}


def check_same_run(workdir: str, config, variants=None) -> None:
  """Refuses to resume a workdir written by a different config or replica set.

  Args:
    workdir: the run directory (a missing ``config.json`` means a new run).
    config: the run's ConfigDict.
    variants: the checked variants (:func:`cnn_jax.train.replicas.check_variants`).

  Raises:
    ValueError: naming the fields that differ, or the files of a folder that is not a
      training workdir; nothing is changed.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    foreign = sorted(set(os.listdir(workdir)) - _BEFORE_CONFIG)
    if foreign:
      raise ValueError(f'{workdir} is not empty ({", ".join(foreign[:4])}) and holds no '
                       f'{CONFIG_FILE}: it is not a training workdir. Use a new --workdir; '
                       f'nothing was changed.')
    return
  saved = read_record(workdir)
  provenance.refuse_different_run(
      workdir, 'config',
      {'config': saved['config'], 'variants': saved.get('variants')},
      {'config': config.to_dict(), 'variants': variants})


def write_config(workdir: str, config, variants=None) -> None:
  """Writes ``config.json`` (config, variants, environment) unless it exists.

  Written only once the workdir is known to be usable, and never rewritten: a failed
  resume must not change what the workdir says about its run.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if os.path.exists(path):
    return
  record = {'config': config.to_dict(), 'environment': provenance.environment()}
  if variants is not None:
    record['variants'] = variants
  write_json(path, record)


def read_record(workdir: str) -> dict:
  """The parsed ``config.json`` of a workdir (its config, variants and environment).

  Raises:
    FileNotFoundError: if there is none.
    WorkdirFileError: if it does not hold a ``config`` object (and a list of
      ``variants``, if any).
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {workdir} is not a training workdir (or '
                            f'its run was stopped before it started)')
  record = read_json(path)
  variants = record.get('variants')
  if not isinstance(record.get('config'), dict) or not (
      variants is None or isinstance(variants, list)
      and all(isinstance(v, dict) for v in variants)):
    raise WorkdirFileError(f'{path} lacks the "config" object (or has malformed '
                           f'"variants"): it was not written by cnn_jax; move it away')
  return record


def _config_from_record(record: dict) -> ml_collections.ConfigDict:
  def tuples(value):
    if isinstance(value, dict):
      return {k: tuples(v) for k, v in value.items()}
    return tuple(tuples(v) for v in value) if isinstance(value, list) else value

  return ml_collections.ConfigDict(tuples(record['config']))


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (JSON lists turned back into tuples).

  Raises:
    FileNotFoundError: if the workdir has no ``config.json``.
  """
  return _config_from_record(read_record(workdir))


def replica_dirs(workdir: str, num_replicas: int | None) -> list[str]:
  """Where each replica's metrics and summary go: the workdir itself for one run."""
  if num_replicas is None:
    return [workdir]
  return [os.path.join(workdir, replicas.replica_dir(i)) for i in range(num_replicas)]


def read_summary(workdir: str, num_replicas: int | None):
  """A finished run's summary (the list of per-replica ones with replicas), or None.

  Raises:
    WorkdirFileError: if ``summary.json`` is not the summary of such a run.
  """
  path = os.path.join(workdir, SUMMARY_FILE)
  if not os.path.exists(path):
    return None
  saved = read_json(path)
  if num_replicas is None:
    return saved
  found = saved.get('replicas')
  if not (isinstance(found, list) and all(isinstance(r, dict) for r in found)):
    raise WorkdirFileError(f'{path} has no "replicas" list: it is not the summary of a '
                           f'run of {num_replicas} replicas')
  return found


def write_summaries(workdir: str, summaries: list[dict], num_replicas: int | None) -> None:
  """Writes ``summary.json`` (and each replica's own with replicas)."""
  if num_replicas is None:
    result = summaries[0]
  else:
    result = {'replicas': summaries}
    for directory, summary in zip(replica_dirs(workdir, num_replicas), summaries):
      write_json(os.path.join(directory, SUMMARY_FILE), summary)
  write_json(os.path.join(workdir, SUMMARY_FILE), result)


def config_hash(config, variants=None) -> np.ndarray:
  """The sha256 of a run's resolved config and variants, as 8 uint32 (checkpoint meta).

  Computed from the JSON form, so a config read back from ``config.json`` (lists for
  tuples) hashes like the one that wrote it.
  """
  text = json.dumps(provenance.jsonable({'config': config.to_dict(), 'variants': variants}),
                    sort_keys=True)
  return np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint32).copy()


def checkpoint_meta(num_replicas: int | None = None, best_eval_accuracy=-1.0,
                    best_eval_step=-1, elapsed_s: float = 0.0, epoch_sums=None,
                    epoch_steps: int = 0, pending=None, config_hash=None) -> dict:
  """Run bookkeeping saved beside the state, so a resumed run reports like an unbroken one.

  ``epoch_sums`` are the running (loss, accuracy) sums of the current epoch, kept in
  float32 on both sides so a resumed epoch mean is bitwise the uninterrupted one.
  ``pending`` holds the summed metrics of the calls since the last logged step (only a
  preempted run saves between logged steps), ``{'loss', 'accuracy', 'count',
  'bad_step'}`` as the train calls return them, so the resumed run logs that interval
  as the uninterrupted one does. ``config_hash`` (:func:`config_hash`) ties the
  checkpoint to its config. With K replicas the best-eval, epoch and pending fields get
  a leading (K,) axis.
  """
  lead = () if num_replicas is None else (num_replicas,)
  sums = np.zeros(lead + (2,)) if epoch_sums is None else epoch_sums
  if pending is None:
    pending = {'loss': np.zeros(lead), 'accuracy': np.zeros(lead),
               'count': np.zeros(lead), 'bad_step': np.full(lead, NO_BAD_STEP)}
  return {'best_eval_accuracy': np.broadcast_to(best_eval_accuracy, lead).astype(np.float32),
          'best_eval_step': np.broadcast_to(best_eval_step, lead).astype(np.int32),
          'elapsed_s': np.array(elapsed_s, np.float32),
          'epoch_sums': np.asarray(sums, np.float32),
          'epoch_steps': np.array(epoch_steps, np.int32),
          'pending': {'loss': np.asarray(pending['loss'], np.float32),
                      'accuracy': np.asarray(pending['accuracy'], np.float32),
                      'count': np.asarray(pending['count'], np.int32),
                      'bad_step': np.asarray(pending['bad_step'], np.int32)},
          'config_hash': np.zeros(8, np.uint32) if config_hash is None else config_hash}


# Checkpoints saved before preemption and config hashes were added lack these fields.
_NEWER_META = ('pending', 'config_hash')


def checkpoint_target(trainer: Trainer, legacy: bool = False) -> dict:
  """The abstract ``{'state', 'meta'}`` tree a checkpoint of this run restores into.

  Args:
    trainer: the run's trainer.
    legacy: the tree of a checkpoint saved without the ``pending`` and ``config_hash``
      meta fields (by an older version of this package).
  """
  meta = checkpoint_meta(trainer.num_replicas)
  if legacy:
    meta = {k: v for k, v in meta.items() if k not in _NEWER_META}
  return {'state': trainer.abstract_state(), 'meta': meta}


def _is_legacy(mngr, step: int | None) -> bool:
  """Whether the checkpoint at ``step`` predates the ``pending`` and hash meta fields."""
  try:
    stored = mngr.item_metadata(step).tree['meta']
  except Exception:  # pylint: disable=broad-except  (checkpoint.restore reports it)
    return False
  return not any(k in stored for k in _NEWER_META)


def restore_checkpoint(mngr, trainer: Trainer, step: int | None = None):
  """:func:`checkpoint.restore` into this run's structure, refusing another config's.

  Args:
    mngr: the workdir's checkpoint manager.
    trainer: the run's trainer.
    step: the step to restore; None for the newest finalized one.

  Returns:
    ``(step, {'state', 'meta'})``, or ``(None, None)`` without a checkpoint.

  Raises:
    checkpoint.CheckpointError: if it cannot be restored, or was saved by a run of
      another config or set of replicas (its ``config_hash`` differs).
  """
  step = mngr.latest_step() if step is None else step
  if step is None:
    return None, None
  # An older checkpoint has no hash to compare; config.json still vouches for it.
  legacy = _is_legacy(mngr, step)
  step, items = checkpoint.restore(mngr, checkpoint_target(trainer, legacy), step)
  if not legacy and not np.array_equal(
      items['meta']['config_hash'], config_hash(trainer.config, trainer.variants)):
    raise checkpoint.CheckpointError(
        f'cannot restore the checkpoint at step {step} in {mngr.directory}: it was saved '
        f'by a run of another config (its config hash differs from this one\'s). Nothing '
        f'was deleted. Use a new --workdir, or the config that trained it.')
  return step, items


def restore(workdir: str, which: str = 'latest'):
  """Restores a saved train state of a workdir, read-only.

  Args:
    workdir: a run directory written by ``loop.train_and_evaluate``.
    which: ``'latest'``, ``'best'`` (by eval accuracy) or a step number.

  Returns:
    ``(trainer, step, state)``: the run's :class:`Trainer` (model, data, steps), the
    restored step and its train state.

  Raises:
    FileNotFoundError: if the directory is not a workdir, there is no such checkpoint,
      or the dataset is not prepared (``cnn_jax.data.NotPreparedError``: read-only,
      this never prepares or downloads it).
    WorkdirFileError: if ``config.json`` is damaged.
    checkpoint.CheckpointError: if it cannot be restored.
  """
  # Everything that can be checked without the data is checked first: a read-only tool
  # must not load (let alone prepare or download) a dataset to find there is nothing.
  record = read_record(workdir)
  config, variants = _config_from_record(record), record.get('variants')
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{workdir} has no {CHECKPOINT_DIR}/ folder: train it first '
                            f'with python -m experiments.train --workdir {workdir}')
  if variants is not None and which == 'best':
    raise ValueError(f'{workdir} holds {len(variants)} vmapped replicas, each with its own '
                     f'best step (see replica_*/summary.json); name a step instead of best')
  mngr = checkpoint.manager(directory, read_only=True)
  step = None if which in ('latest', 'best') else int(which)
  if step is not None and step not in mngr.all_steps():
    raise FileNotFoundError(f'no checkpoint at step {step} in {workdir}; saved steps: '
                            f'{sorted(mngr.all_steps())}')
  if mngr.latest_step() is None:
    raise FileNotFoundError(f'no checkpoint in {directory}: train the workdir first (or '
                            f'let a run finish its first save)')
  trainer = Trainer(config, variants=variants, prepare_data=False)
  step, items = restore_checkpoint(mngr, trainer, step)
  if which == 'best':
    best_step = int(items['meta']['best_eval_step'])
    if best_step < 0:
      raise FileNotFoundError(f'{workdir} has no evaluated checkpoint (no eval split)')
    step, items = restore_checkpoint(mngr, trainer, best_step)
  mngr.close()
  return trainer, step, items['state']


def evaluate_checkpoint(workdir: str, which: str = 'latest', split: str = 'test') -> dict:
  """Evaluates a saved checkpoint of a workdir (read-only: nothing is written).

  Args:
    workdir: a run directory.
    which: ``'latest'``, ``'best'`` (by eval accuracy) or a step number.
    split: ``'test'`` or ``'eval'``.

  Returns:
    ``{'step', 'split', 'loss', 'accuracy'[, 'top5_accuracy']}`` (lists, one value per
    replica, for a workdir of vmapped replicas).

  Raises:
    FileNotFoundError: if there is no such checkpoint, or the dataset is not prepared.
    ValueError: for ``split='eval'`` on a run without an eval split, or a damaged
      ``config.json`` (:class:`WorkdirFileError`).
    checkpoint.CheckpointError: if it cannot be restored.
  """
  trainer, step, state = restore(workdir, which)
  if split == 'eval' and not trainer.has_eval:
    raise ValueError(f'the run in {workdir} has no eval split')
  result = trainer.evaluate(state, split)
  return {'step': step, 'split': split,
          **{k: np.asarray(v).tolist() for k, v in result.items()}}
