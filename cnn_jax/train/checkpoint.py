"""Orbax checkpointing: keep the last K plus the best by eval accuracy, resume exactly.

Everything goes through ``orbax.checkpoint.CheckpointManager`` with
``args=StandardSave/StandardRestore``. Orbax writes each step into a temporary
directory and renames it when complete, so a save killed midway never shadows the
previous checkpoint; on restore only finalized steps are considered.

Errors never delete or overwrite saved work: a checkpoint that cannot be restored
(corrupt, or written by another architecture) raises :class:`CheckpointError` before
anything is saved.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

EVAL_METRIC = 'eval_accuracy'


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored into the current run."""


def manager(directory: str, keep: int = 2, read_only: bool = False) -> ocp.CheckpointManager:
  """Opens (or creates) a checkpoint directory.

  Args:
    directory: the ``checkpoints/`` folder of a workdir.
    keep: number of most recent checkpoints to keep; the best by
      :data:`EVAL_METRIC` is kept in addition.
    read_only: open without the right to write or delete (evaluation tools).

  Returns:
    A ``CheckpointManager``.
  """
  # The loop decides when to save (every N steps, after evaluations, at the end).
  options = ocp.CheckpointManagerOptions(
      preservation_policy=pp.AnyPreservationPolicy([
          pp.LatestN(keep),
          # Ties go to the later step, as in the loop's bookkeeping of the best step.
          pp.BestN(get_metric_fn=lambda m: (m[EVAL_METRIC], m['step']), reverse=False, n=1,
                   keep_checkpoints_without_metrics=False),
      ]),
      create=not read_only, read_only=read_only,
      # Incomplete temporary directories from a killed save are not checkpoints.
      cleanup_tmp_directories=not read_only,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mngr: ocp.CheckpointManager, step: int, items, eval_accuracy: float | None = None):
  """Saves ``items`` (a pytree) at ``step``, with the eval accuracy for best-N.

  Args:
    mngr: the manager.
    step: training step.
    items: pytree of arrays to save.
    eval_accuracy: metric attached to this checkpoint, if an evaluation just ran.
  """
  metrics = (None if eval_accuracy is None else
             {EVAL_METRIC: float(eval_accuracy), 'step': int(step)})
  mngr.save(step, args=ocp.args.StandardSave(items), metrics=metrics, force=True)
  mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, target, step: int | None = None):
  """Restores the given (or newest finalized) step into the structure of ``target``.

  Args:
    mngr: the manager.
    target: pytree of arrays or ``jax.ShapeDtypeStruct`` with the expected structure
      (e.g. from ``jax.eval_shape``); shardings are taken from it where present.
    step: step to restore; None for the newest.

  Returns:
    ``(step, items)``, or ``(None, None)`` when the directory holds no checkpoint.

  Raises:
    CheckpointError: if the checkpoint is corrupt or does not fit ``target``.
  """
  if step is None:
    step = mngr.latest_step()
  if step is None:
    return None, None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  try:
    items = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  except Exception as e:  # orbax raises many types; all mean "cannot use this"
    raise CheckpointError(
        f'cannot restore the checkpoint at step {step} in {mngr.directory}: '
        f'{type(e).__name__}: {str(e)[:500]}\nIt is either corrupt or was written by a '
        f'different model/config. Nothing was deleted. Use a new --workdir, or move the '
        f'broken step directory out of {mngr.directory} to resume from an older one.'
    ) from e
  return step, items
