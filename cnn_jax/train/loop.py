"""The training loop: config -> data -> model -> compiled steps -> workdir.

Read :func:`train_and_evaluate` top to bottom; it runs four phases:

1. restore or init: the newest finalized checkpoint of the workdir, else a fresh state;
2. run an interval: compiled calls until the next log, evaluation or checkpoint step;
3. at each such step: sync the interval's metrics (stopping on a non-finite loss),
   evaluate every ``eval_every_epochs`` epochs and after the last, track the best
   step, save a checkpoint;
4. finish: evaluate the test split, write ``summary.json``.

Preemption: SIGTERM or SIGINT (spot instances, maintenance, Ctrl-C) sets a flag that
the loop reads between compiled calls (a signal during start-up, while the data loads
and the step compiles, is acted on before the first call). The run then finishes the
call in flight, checkpoints its step (with the sums of the metrics not yet logged, see
:func:`cnn_jax.train.workdir.checkpoint_meta`), flushes the metrics and raises
:class:`Preempted`; ``experiments.train`` exits with :data:`PREEMPTED_EXIT_CODE`
(75, ``EX_TEMPFAIL``: try again). Rerunning the same command resumes and ends bitwise
as an uninterrupted run. More signals during the save are ignored, so the save
completes (orbax also finalises a step only once it is whole). Signals are only caught
when the run is in the main thread; with several processes, each must get the signal
before the same call (as a scheduler sends it to all of them).

The workdir layout is :mod:`cnn_jax.train.workdir`'s; the compiled calls are
:class:`cnn_jax.train.trainer.Trainer`'s. A single run is handled as one replica, so
the host bookkeeping below always has a leading replica axis (``rows``); only the
device arrays of a single run lack it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time

import jax
import ml_collections
import numpy as np
import tqdm

from cnn_jax.train import checkpoint, replicas
from cnn_jax.train import workdir as workdir_lib
from cnn_jax.train.metrics import MetricsWriter
from cnn_jax.train.steps import NO_BAD_STEP, accumulate
from cnn_jax.train.trainer import Trainer


PREEMPTED_EXIT_CODE = os.EX_TEMPFAIL  # 75: the run stopped early; rerun to resume


class Preempted(Exception):
  """A signal stopped the run; its step is checkpointed (the message says how to resume).

  Attributes:
    step: the saved step the next run resumes from.
  """

  def __init__(self, signal_name: str, step: int, total: int, workdir: str,
               saved: bool = True):
    self.step = step
    where = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
    what = (f'saved a checkpoint in {where}' if saved else
            f'stopped before the first step, nothing new to save in {where}')
    super().__init__(f'preempted ({signal_name}) at step {step}/{total}: {what}; rerun '
                     f'the same command to resume')


class _StopSignals:
  """Within the block, SIGTERM and SIGINT set :attr:`received` instead of stopping.

  Python can only handle signals in the main thread: elsewhere (a worker's thread)
  nothing is caught and :attr:`received` stays None.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    # Later signals are ignored: stopping mid-save would only waste the save.
    self.received = self.received or signal.Signals(signum).name

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def __exit__(self, *exc):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


def itstime(step: int, every: int) -> bool:
  """Whether ``step`` is a multiple of a (nonzero) interval."""
  return bool(every) and step % every == 0


@dataclasses.dataclass
class Bookkeeping:
  """What the host tracks across a run, one row per replica; saved in checkpoints.

  Attributes:
    best_accuracy: (rows,) best eval accuracy so far (-1: none yet).
    best_step: (rows,) the step that reached it (-1: none yet).
    epoch_sums: (rows, 2) float32 sums of the current epoch's train loss and accuracy.
    epoch_steps: steps summed into ``epoch_sums``.
    prior_elapsed: training seconds spent before this process (a resumed run).
    pending: the summed metrics of the calls since the last logged step, restored
      from a preempted run's checkpoint (None: nothing pending).
  """
  best_accuracy: np.ndarray
  best_step: np.ndarray
  epoch_sums: np.ndarray
  epoch_steps: int
  prior_elapsed: float
  pending: dict | None = None

  @classmethod
  def from_meta(cls, meta: dict, rows: int, batched: bool) -> 'Bookkeeping':
    """Reads a checkpoint's meta (whose fields lack the replica axis for one run)."""
    per_row = lambda x: np.asarray(x).reshape(rows, *np.shape(x)[1 if batched else 0:])
    return cls(best_accuracy=per_row(meta['best_eval_accuracy']).astype(np.float64),
               best_step=per_row(meta['best_eval_step']).astype(np.int64),
               epoch_sums=per_row(meta['epoch_sums']).astype(np.float32),
               epoch_steps=int(meta['epoch_steps']),
               prior_elapsed=float(meta['elapsed_s']),
               # Kept as saved (no replica axis for one run): they continue the sums.
               pending=(dict(meta['pending']) if 'pending' in meta
                        and np.any(meta['pending']['count']) else None))

  def to_meta(self, num_replicas: int | None, elapsed_s: float, config_hash,
              pending=None) -> dict:
    """The checkpoint's meta tree (see :func:`workdir.checkpoint_meta`).

    Args:
      num_replicas: None for one run.
      elapsed_s: training seconds so far.
      config_hash: :func:`workdir.config_hash` of the run.
      pending: the host copy of the metrics summed since the last logged step.
    """
    unbatch = (lambda x: x) if num_replicas else (lambda x: x[0])
    return workdir_lib.checkpoint_meta(
        num_replicas, unbatch(self.best_accuracy), unbatch(self.best_step), elapsed_s,
        unbatch(self.epoch_sums), self.epoch_steps, pending, config_hash)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, log=print,
                       mesh=None, variants=None):
  """Trains ``config.model`` on ``config.dataset``, resuming from ``workdir`` if possible.

  Args:
    config: the experiment config (schema: ``experiments/configs/default.py``).
    workdir: run directory; created if missing, resumed if it holds checkpoints.
    log: called with human-readable progress lines.
    mesh: device mesh (default: every device, data parallel).
    variants: None for one run; or one dict of vmappable overrides per replica to
      train them all in one vmapped program (see :func:`cnn_jax.train.replicas.
      train_replicas`, which documents the workdir layout).

  Returns:
    The summary dict also written to ``workdir/summary.json``; with variants, the
    list of per-replica summaries.

  Raises:
    ValueError: for a bad config or a workdir holding a different experiment.
    workdir.WorkdirBusyError: when another live process trains in ``workdir``.
    FloatingPointError: when the loss or gradients become non-finite (the step is
      named; the last checkpoint is left intact).
    checkpoint.CheckpointError: when the workdir's checkpoint cannot be restored.
    Preempted: after SIGTERM or SIGINT, once the step in flight is checkpointed.
  """
  t_start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  # Process 0 owns the workdir for the whole multi-host run.
  owner = (workdir_lib.lock(workdir, log) if jax.process_index() == 0
           else contextlib.nullcontext())
  with owner, _StopSignals() as stop:
    workdir_lib.check_same_run(workdir, config, replicas.check_variants(config, variants))
    trainer = Trainer(config, mesh, variants=variants)
    # Before the checkpoints folder: a folder holding one always says whose it is.
    if jax.process_index() == 0:
      workdir_lib.write_config(workdir, config, trainer.variants)
    mngr = checkpoint.manager(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR),
                              keep=config.keep_checkpoints)
    try:
      return _train(trainer, workdir, mngr, log, t_start, stop)
    finally:
      mngr.close()


def _train(trainer: Trainer, workdir: str, mngr, log, t_start: float, stop: _StopSignals):
  """The four phases of :func:`train_and_evaluate` once the trainer is built."""
  config, num_replicas = trainer.config, trainer.num_replicas
  config_hash = workdir_lib.config_hash(config, trainer.variants)

  # 1. Restore or init.
  state, book, start_step = _restore_or_init(trainer, mngr, workdir, log)
  if start_step >= trainer.total_steps:
    finished = workdir_lib.read_summary(workdir, num_replicas)
    if finished is not None:  # a finished run: report it again, rewrite nothing
      return finished
  dirs = workdir_lib.replica_dirs(workdir, num_replicas)
  for directory in dirs:
    os.makedirs(directory, exist_ok=True)
  writers = [MetricsWriter(d, start_step, tensorboard=config.tensorboard) for d in dirs]
  compile_s, batches = trainer.compile(state, start_step)
  elapsed = lambda: book.prior_elapsed + time.perf_counter() - t_start
  if stop.received:  # before the first call: the workdir is as the last run left it
    raise Preempted(stop.received, start_step, trainer.total_steps, workdir, saved=False)

  # 2./3. Intervals of compiled calls, with a sync at each log, eval or save step.
  steps_per_epoch, total = trainer.steps_per_epoch, trainer.total_steps
  log_every = config.log_every_steps or steps_per_epoch
  checkpoint_every = config.checkpoint_every_steps or steps_per_epoch
  speed = {'images': 0, 'seconds': 0.0}
  bar = _progress(total, start_step)
  totals, t_interval = _pending_totals(trainer, book), time.perf_counter()
  for step, args in zip(range(start_step, total, trainer.steps_per_call), batches):
    state, metrics = trainer.train_step(state, args)
    totals = accumulate(totals, metrics)
    done = step + trainer.steps_per_call
    end_of_epoch = itstime(done, steps_per_epoch)
    if not (end_of_epoch or itstime(done, log_every) or itstime(done, checkpoint_every)
            or done == total):
      if bar is not None:
        bar.update(trainer.steps_per_call)
      if stop.received:  # save between logged steps, with the interval's sums so far
        checkpoint.save(mngr, done, {'state': state, 'meta': book.to_meta(
            num_replicas, elapsed(), config_hash, jax.device_get(totals))})
        _preempted(stop, writers, bar, done, total, workdir)
      continue
    records = _log_interval(trainer, writers, book, jax.device_get(totals), step, done,
                            time.perf_counter() - t_interval, elapsed(), speed, workdir,
                            mngr)
    totals = None
    eval_accuracy = None
    if trainer.has_eval and (itstime(done, steps_per_epoch * config.eval_every_epochs)
                             or done == total):
      eval_accuracy = _evaluate_and_track_best(trainer, state, writers, records, book,
                                               done, elapsed())
    _report(trainer, records, done, bar, end_of_epoch, log)
    # Every evaluated step is saved too, so the best one can be kept and restored.
    if (itstime(done, checkpoint_every) or eval_accuracy is not None or done == total
        or stop.received):
      checkpoint.save(mngr, done, {'state': state, 'meta': book.to_meta(
          num_replicas, elapsed(), config_hash)}, eval_accuracy)
    if stop.received and done < total:
      _preempted(stop, writers, bar, done, total, workdir)
    t_interval = time.perf_counter()
  if bar is not None:
    bar.close()

  # 4. Finish.
  return _finish(trainer, state, writers, book, workdir, elapsed(), compile_s, speed)


def _preempted(stop: _StopSignals, writers, bar, step: int, total: int, workdir: str):
  """Flushes the metrics once ``step`` is saved, and raises :class:`Preempted`."""
  for writer in writers:
    writer.close()
  if bar is not None:
    bar.close()
  raise Preempted(stop.received, step, total, workdir)


def _restore_or_init(trainer: Trainer, mngr, workdir: str, log):
  """The newest finalized checkpoint's state and bookkeeping, or a fresh start.

  Returns:
    ``(state, bookkeeping, start_step)``.

  Raises:
    ValueError: for a finished run without checkpoints (training it again would
      replace its results).
  """
  restored_step, items = workdir_lib.restore_checkpoint(mngr, trainer)
  rows = trainer.num_replicas or 1
  batched = trainer.num_replicas is not None
  if restored_step is None and os.path.exists(
      os.path.join(workdir, workdir_lib.SUMMARY_FILE)):
    raise ValueError(f'{workdir} holds a finished run ({workdir_lib.SUMMARY_FILE}) but no '
                     f'checkpoint in {mngr.directory}: training it again would replace its '
                     f'results. Restore the checkpoints, or use a new --workdir; nothing '
                     f'was changed.')
  if restored_step is None:
    meta = workdir_lib.checkpoint_meta(trainer.num_replicas)
    return trainer.init_state(), Bookkeeping.from_meta(meta, rows, batched), 0
  log(f'resumed from step {restored_step} in {workdir}')
  return (items['state'], Bookkeeping.from_meta(items['meta'], rows, batched),
          int(restored_step))


def _pending_totals(trainer: Trainer, book: Bookkeeping):
  """The restored sums of a preempted interval, on the devices like a call's metrics."""
  if book.pending is None:
    return None
  return jax.device_put(book.pending, trainer.replicated)


def _per_row(trainer: Trainer, value) -> np.ndarray:
  """A host value as (rows, ...): a single run's gets a leading axis of one."""
  value = np.asarray(value)
  return value if trainer.num_replicas else value[None]


def _log_interval(trainer: Trainer, writers, book: Bookkeeping, totals: dict, step: int,
                  done: int, seconds: float, elapsed_s: float, speed: dict, workdir: str,
                  mngr) -> list[dict]:
  """Checks the interval's summed metrics and writes its train records.

  Raises:
    FloatingPointError: naming the first non-finite step (and replica); the last
      checkpoint is left as it is.
  """
  totals = {key: _per_row(trainer, value) for key, value in totals.items()}
  bad = np.flatnonzero(totals['bad_step'] != NO_BAD_STEP)
  if bad.size:
    row = bad[np.argmin(totals['bad_step'][bad])]
    bad_step = int(totals['bad_step'][row])
    replica = ('' if trainer.num_replicas is None else
               f' (replica {row}: {trainer.variants[row]})')
    raise FloatingPointError(
        f'non-finite loss or gradients at step {bad_step} (epoch '
        f'{bad_step // trainer.steps_per_epoch + 1}){replica}; training stopped. The last '
        f'checkpoint in {workdir}/{workdir_lib.CHECKPOINT_DIR} (step {mngr.latest_step()}) '
        f'is intact. Lower optimizer.learning_rate, enable optimizer.grad_clip_norm, or '
        f'check the data.')
  num_steps = int(totals['count'][0])
  images = num_steps * trainer.config.batch_size * len(writers)
  speed['images'] += images
  speed['seconds'] += seconds
  book.epoch_sums = book.epoch_sums + np.stack(
      [totals['loss'], totals['accuracy']], -1).astype(np.float32)
  book.epoch_steps += num_steps
  epoch_means = [{} for _ in writers]
  if itstime(done, trainer.steps_per_epoch):  # the epoch's mean, beside the interval's
    epoch_means = [{'epoch_loss': sums[0] / book.epoch_steps,
                    'epoch_accuracy': sums[1] / book.epoch_steps} for sums in book.epoch_sums]
    book.epoch_sums, book.epoch_steps = np.zeros_like(book.epoch_sums), 0
  learning_rate = float(trainer.schedule(done - 1))
  return [writer.write(done, 'train', epoch=done / trainer.steps_per_epoch,
                       loss=totals['loss'][row] / num_steps,
                       accuracy=totals['accuracy'][row] / num_steps,
                       learning_rate=learning_rate, images_per_sec=images / seconds,
                       elapsed_s=elapsed_s, **epoch_means[row])
          for row, writer in enumerate(writers)]


def _evaluate_and_track_best(trainer: Trainer, state, writers, records, book: Bookkeeping,
                             done: int, elapsed_s: float) -> float:
  """Evaluates the eval split, updates the best step, writes the eval records.

  Returns:
    The eval accuracy (the mean over replicas), which ranks the checkpoint.
  """
  result = {key: _per_row(trainer, value)
            for key, value in trainer.evaluate(state, 'eval').items()}
  better = result['accuracy'] >= book.best_accuracy  # ties: the later step, as orbax's
  book.best_accuracy = np.where(better, result['accuracy'], book.best_accuracy)
  book.best_step = np.where(better, done, book.best_step)
  for row, (writer, record) in enumerate(zip(writers, records)):
    values = {key: float(value[row]) for key, value in result.items()}
    writer.write(done, 'eval', epoch=done / trainer.steps_per_epoch, elapsed_s=elapsed_s,
                 **values)
    record.update({f'eval_{key}': value for key, value in values.items()})
  return float(np.mean(result['accuracy']))


def _report(trainer: Trainer, records, done: int, bar, end_of_epoch: bool, log) -> None:
  """Advances the progress bar, or logs one line per epoch where there is none."""
  steps_per_epoch = trainer.steps_per_epoch
  if bar is not None:
    bar.update(trainer.steps_per_call)
    bar.set_postfix(epoch=f'{done / steps_per_epoch:.2f}', loss=f'{records[0]["loss"]:.4f}',
                    acc=f'{records[0]["accuracy"]:.4f}',
                    img_s=f'{records[0]["images_per_sec"]:.0f}')
    return
  if not end_of_epoch:
    return
  mean = lambda key: np.mean([record[key] for record in records])
  spread = lambda key: (f' (mean of {len(records)}: {min(r[key] for r in records):.4f}-'
                        f'{max(r[key] for r in records):.4f})'
                        if trainer.num_replicas else '')
  evaluated = (f'  eval loss {mean("eval_loss"):.4f} acc {mean("eval_accuracy"):.4f}'
               f'{spread("eval_accuracy")}' if 'eval_accuracy' in records[0] else '')
  # The interval's speed (images of every replica) gives the remaining time.
  images_per_step = trainer.config.batch_size * len(records)
  eta = (trainer.total_steps - done) * images_per_step / records[0]['images_per_sec']
  log(f'epoch {done // steps_per_epoch}/{trainer.config.num_epochs}  step {done}/'
      f'{trainer.total_steps}  train loss {mean("epoch_loss"):.4f} acc '
      f'{mean("epoch_accuracy"):.4f}{evaluated}  {records[0]["images_per_sec"]:.0f} img/s  '
      f'ETA {eta:.0f}s')


def _finish(trainer: Trainer, state, writers, book: Bookkeeping, workdir: str,
            elapsed_s: float, compile_s: float, speed: dict):
  """Evaluates the test split and writes the summaries.

  Returns:
    The run's summary, or the list of per-replica summaries.
  """
  config, num_replicas = trainer.config, trainer.num_replicas
  evaluate = lambda split: {key: _per_row(trainer, value)
                            for key, value in trainer.evaluate(state, split).items()}
  test = evaluate('test')
  train = evaluate('train') if config.evaluate_train else None
  num_params = sum(int(np.prod(p.shape[1 if num_replicas else 0:]))
                   for p in jax.tree.leaves(state.params))
  summaries = []
  for row, writer in enumerate(writers):
    values = {key: float(value[row]) for key, value in test.items()}
    writer.write(trainer.total_steps, 'test', epoch=float(config.num_epochs),
                 elapsed_s=elapsed_s, **values)
    writer.close()
    evaluated = book.best_step[row] >= 0
    summary = {
        'test_accuracy': values['accuracy'], 'test_loss': values['loss'],
        **({'test_top5_accuracy': values['top5_accuracy']} if 'top5_accuracy' in values
           else {}),
        **({'train_accuracy': float(train['accuracy'][row]),
            'train_loss': float(train['loss'][row])} if train else {}),
        'best_eval_accuracy': float(book.best_accuracy[row]) if evaluated else None,
        'best_eval_step': int(book.best_step[row]) if evaluated else None,
        'steps': trainer.total_steps, 'epochs': config.num_epochs, 'wall_s': elapsed_s,
        'compile_s': compile_s,
        'train_images_per_sec': (speed['images'] / speed['seconds'] if speed['seconds']
                                 else None),
        'num_params': num_params,
    }
    if num_replicas is not None:
      summary.update(replicas=num_replicas, variant=trainer.variants[row])
    summaries.append(summary)
  if jax.process_index() == 0:
    workdir_lib.write_summaries(workdir, summaries, num_replicas)
  return summaries[0] if num_replicas is None else summaries


def _progress(total: int, initial: int):
  """A tqdm bar on interactive terminals, None otherwise (logs stay line-based)."""
  if not sys.stderr.isatty() or jax.process_index() != 0:
    return None
  return tqdm.tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True)


def format_summary(summary: dict) -> str:
  """The final results as a small markdown table (fields without a value left out)."""
  def fmt(v):
    if isinstance(v, float):
      return f'{v:.4f}' if abs(v) < 10 else f'{v:,.1f}'
    return f'{v:,}' if isinstance(v, int) else str(v)
  rows = [f'| {k} | {fmt(v)} |' for k, v in summary.items() if v is not None]
  return '\n'.join(['| result | value |', '|---|---|'] + rows)
