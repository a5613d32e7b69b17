"""Many runs of one architecture in one compiled program: ``jax.vmap`` over replicas.

Replicas may differ in what is a *value* inside the program: the seed (parameter
initialisation, data order, dropout and augmentation keys) and the dropout rates
(traced scalars). They share everything that fixes an array's shape or the program's
structure (stride, kernel size, widths, depth, batch size, optimizer), which is why
those axes of a sweep run as separate programs.

Replica ``i`` computes what ``train_and_evaluate`` computes for its config alone, up
to floating-point reassociation in the batched kernels (``tests/test_replicas.py``:
every metric of a 2-epoch run within 2e-4). Over long runs those last-bit differences
can grow as any perturbation does in training: MNIST-1D's 6,000 steps at learning rate
1e-2 ended at 94.5% test accuracy as replica 0 and 94.1% alone, the same seed.

Workdir layout::

  workdir/config.json          base config, the replicas' variants, environment
  workdir/checkpoints/         one state with a leading replica axis
  workdir/summary.json         {'replicas': [summary, ...]}
  workdir/replica_NN/          metrics.jsonl, summary.json (and tensorboard/) per replica
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple, Sequence

from cnn_jax import config_utils, provenance

# A function that trains one group of replicas: runner(config, workdir, variants,
# log=log) -> [summary, ...]; train_replicas by default, a fake in tests.
Runner = Callable[..., list]


class Job(NamedTuple):
  """One compiled program to train: a sweep group or a reproduced reference.

  Attributes:
    name: the job's name in logs and results (a sweep group's folder name).
    config: the config it trains.
    workdir: its own run directory.
    variants: one dict of vmappable overrides per replica.
  """
  name: str
  config: object
  workdir: str
  variants: list


class Outcome(NamedTuple):
  """What became of a job run elsewhere (:mod:`cnn_jax.cluster`).

  Attributes:
    summaries: the runner's per-replica summaries; None if it failed.
    error: the one-line error of a failed job, else None.
    host: the host that ran it (the last attempt's).
    duration_s: seconds the last attempt took on its worker (None if it was lost).
    started: when that attempt started (Unix time).
  """
  summaries: list | None
  error: str | None
  host: str | None
  duration_s: float | None
  started: float | None


# A function that trains many jobs, e.g. on a cluster: fan_out(jobs, log=log) ->
# {job name: Outcome}; None runs them one after another with a Runner.
FanOut = Callable[..., dict]


def is_vmappable(key: str) -> bool:
  """Whether a dotted config key can differ between the replicas of one program.

  Seeds and dropout rates are values inside the compiled program (keys and a traced
  rate), so replicas can differ in them. Anything that changes an array's shape
  (stride, kernel size, widths, depth, batch size) or the program's structure needs
  its own compiled program.

  Args:
    key: a dotted config key, e.g. ``'model.dropout_rate'``.

  Returns:
    True for ``'seed'`` and for ``model.*dropout_rate`` fields.
  """
  return key == 'seed' or (key.startswith('model.') and key.count('.') == 1 and
                           key.endswith('dropout_rate'))


def check_variants(config, variants) -> list[dict] | None:
  """Checks the replicas' variants and completes each to the same keys.

  Args:
    config: the base config.
    variants: None (one run), or one dict of dotted vmappable keys per replica.

  Returns:
    None, or one dict per replica holding every key any variant sets (a missing key
    takes the base config's value).

  Raises:
    ValueError: for no variants, a key that cannot be vmapped, or one the config does
      not have.
  """
  if variants is None:
    return None
  if not variants:
    raise ValueError('variants is empty: give at least one replica')
  keys = sorted({k for v in variants for k in v})
  bad = [k for k in keys if not is_vmappable(k)]
  if bad:
    raise ValueError(f'{bad} cannot differ between vmapped replicas: only seed and '
                     f'model.*dropout_rate can (they are values inside one program); a '
                     f'field that changes shapes needs its own run')
  for key in keys:
    error = config_utils.unknown_override_error(config, key)
    if error:
      raise ValueError(error)
  return [{k: v.get(k, config[k] if k == 'seed' else config.model[k.split('.')[1]])
           for k in keys} for v in variants]


def replica_dir(index: int) -> str:
  """The folder, inside a workdir of vmapped replicas, of replica ``index``'s files."""
  return f'replica_{index:02d}'


# The runners below import the loop when called: the loop's trainer builds on the
# variant checks above, so this module cannot import it first.

def train_replicas(config, workdir: str, variants, log=print, mesh=None) -> list:
  """Trains one copy of ``config`` per variant, all in one vmapped program.

  Args:
    config: the base experiment config.
    workdir: run directory (resumed if it holds this run's checkpoints).
    variants: one dict per replica of vmappable overrides (:func:`is_vmappable`),
      e.g. ``[{'seed': s, 'model.dropout_rate': r} for s in (0, 1) for r in (0, .5)]``;
      a key missing from a variant takes the base config's value.
    log: called with progress lines (means over replicas).
    mesh: device mesh; the batch axis is sharded over it, the replica axis replicated.

  Returns:
    One summary per replica: the keys of ``train_and_evaluate``'s summary plus
    ``'replicas'`` (K) and ``'variant'``; ``train_images_per_sec`` counts the images of
    all replicas. With ``config.evaluate_train``, also ``train_accuracy`` and
    ``train_loss`` (an evaluation-mode pass over the training split).

  Raises:
    ValueError: for a key that cannot be vmapped or is not in the config, or a workdir
      holding a different run.
  """
  from cnn_jax.train.loop import train_and_evaluate
  return train_and_evaluate(config, workdir, log=log, mesh=mesh, variants=list(variants))


def finished_replicas(workdir: str, config, seeds: Sequence[int]) -> list[dict] | None:
  """The per-seed summaries of a finished run of ``config`` in ``workdir``, if there is one.

  Args:
    workdir: the run directory.
    config: the config it must have been trained with.
    seeds: the seeds it must hold, in order.

  Returns:
    The ``replicas`` of ``workdir/summary.json``, or None if the run has not finished.

  Raises:
    ValueError: if the workdir holds a finished run of another config or other seeds
      (reporting it would mislabel the numbers; training over it would mix runs).
  """
  from cnn_jax.train import workdir as workdir_lib
  summaries = workdir_lib.read_summary(workdir, len(seeds))
  if summaries is None:
    return None
  saved = workdir_lib.read_record(workdir)['config']
  provenance.refuse_different_run(workdir, 'config', saved, config.to_dict())
  found = [r['variant'].get('seed') for r in summaries]
  if found != list(seeds):
    raise ValueError(f'{workdir} holds a finished run of seeds {found}, not '
                     f'{list(seeds)}; use another --workdir or --seeds {len(found)}')
  return summaries


def train_seeds(config, workdir: str, seeds: Sequence[int], runner: Runner | None = None,
                log=print) -> tuple[list[dict], bool]:
  """Trains ``config`` once per seed in ``workdir``, or reads back a finished run.

  Args:
    config: the experiment config.
    workdir: run directory (resumed if it holds an unfinished run).
    seeds: one replica per seed.
    runner: see :data:`Runner`; default :func:`train_replicas`.
    log: progress lines.

  Returns:
    ``(summaries, resumed)``: one summary per seed (``test_accuracy``, ``wall_s``,
    ``num_params``, ``variant``, ...) and whether they were read back.
  """
  summaries = finished_replicas(workdir, config, seeds)
  if summaries is not None:
    return summaries, True
  runner = runner or train_replicas
  return runner(config, workdir, [{'seed': s} for s in seeds], log=log), False


def train_seeds_each(runs: Sequence[tuple[str, object, str]],
                     seeds: Sequence[int] | Mapping[str, Sequence[int]],
                     runner: Runner | None = None, fan_out: FanOut | None = None,
                     log=print) -> dict[str, tuple[list[dict] | None, bool, Outcome | None]]:
  """:func:`train_seeds` for several configs; with ``fan_out``, all unfinished at once.

  Args:
    runs: ``(name, config, workdir)`` per run.
    seeds: one replica per seed, for every run; or run name -> its seeds.
    runner: see :data:`Runner`; used without ``fan_out``, one run after another.
    fan_out: trains the unfinished runs elsewhere (``--cluster``:
      :meth:`cnn_jax.cluster.ClusterRunner.run`); a run that fails there does not
      stop the others.
    log: progress lines.

  Returns:
    Name -> ``(summaries, resumed, outcome)``: ``summaries`` None for a run that
    failed, ``outcome`` the :class:`Outcome` of a run trained by ``fan_out``, else None.
  """
  results, jobs = {}, []
  for name, config, workdir in runs:
    run_seeds = seeds[name] if isinstance(seeds, Mapping) else seeds
    if fan_out is None:
      results[name] = (*train_seeds(config, workdir, run_seeds, runner, log), None)
      continue
    summaries = finished_replicas(workdir, config, run_seeds)
    if summaries is not None:
      results[name] = (summaries, True, None)
    else:
      jobs.append(Job(name, config, workdir, [{'seed': s} for s in run_seeds]))
  if jobs:
    for name, outcome in fan_out(jobs, log=log).items():
      results[name] = (outcome.summaries, False, outcome)
  return results
