"""Orbax checkpointing: keep the last K plus the best by eval accuracy, resume exactly.

Everything goes through ``orbax.checkpoint.CheckpointManager`` with
``args=StandardSave/StandardRestore``. Orbax writes each step into a temporary
directory and renames it when complete, so a save killed midway never shadows the
previous checkpoint; on restore only finalized steps are considered.

Errors never delete or overwrite saved work: a checkpoint that cannot be restored
raises :class:`CheckpointError` before anything is saved, saying whether it is
unreadable, written by another model (the array that differs) or failed to load. A
save that fails (a full or read-only disk) raises :class:`CheckpointWriteError`; the
steps saved before are intact and a later run resumes from the newest.
"""

from __future__ import annotations

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

EVAL_METRIC = 'eval_accuracy'


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be restored into the current run."""


class CheckpointWriteError(RuntimeError):
  """A checkpoint cannot be written (disk full, read-only); older ones are untouched."""


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
  # Naming the handler lets a fresh manager read a step's metadata before restoring it.
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_handlers=ocp.StandardCheckpointHandler())


def save(mngr: ocp.CheckpointManager, step: int, items, eval_accuracy: float | None = None):
  """Saves ``items`` (a pytree) at ``step``, with the eval accuracy for best-N.

  Args:
    mngr: the manager.
    step: training step.
    items: pytree of arrays to save.
    eval_accuracy: metric attached to this checkpoint, if an evaluation just ran.

  Raises:
    CheckpointWriteError: one line naming the folder and the cause, if it cannot be
      written.
  """
  metrics = (None if eval_accuracy is None else
             {EVAL_METRIC: float(eval_accuracy), 'step': int(step)})
  try:
    mngr.save(step, args=ocp.args.StandardSave(items), metrics=metrics, force=True)
    mngr.wait_until_finished()
  # Orbax and tensorstore report a full or read-only disk as OSError or ValueError
  # (tensorstore's status text), sometimes wrapped; the cause is in the message.
  except Exception as e:  # pylint: disable=broad-except
    saved = sorted(mngr.all_steps())
    kept = (f'the previous checkpoints (steps {saved}) are intact' if saved
            else 'no earlier checkpoint exists')
    reason = ' '.join(f'{type(e).__name__}: {e}'.split())[:300]
    raise CheckpointWriteError(
        f'cannot write the checkpoint at step {step} in {mngr.directory} ({reason}); '
        f'{kept}. Free disk space or make the folder writable, then rerun the same '
        f'command to resume.') from e


def _path_names(path) -> tuple:
  """A tree path as plain names, so a dataclass field and a dict key compare equal."""
  return tuple(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
               for k in path)


def _leaf_specs(tree) -> dict:
  """``{path: (shape, dtype)}`` of a tree of arrays or array metadata."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_path_names(path): (tuple(leaf.shape), np.dtype(leaf.dtype))
          for path, leaf in leaves}


def _mismatch(stored: dict, expected: dict) -> str | None:
  """How a checkpoint's arrays differ from the run's (names the first differences)."""
  missing = sorted(set(expected) - set(stored))
  extra = sorted(set(stored) - set(expected))
  changed = sorted(k for k in set(stored) & set(expected) if stored[k] != expected[k])
  parts = []
  if missing:
    parts.append(f'{len(missing)} array(s) missing, e.g. {"/".join(missing[0])}')
  if extra:
    parts.append(f'{len(extra)} unexpected array(s), e.g. {"/".join(extra[0])}')
  for key in changed[:3]:
    (shape, dtype), (want_shape, want_dtype) = stored[key], expected[key]
    parts.append(f'{"/".join(key)} is {dtype}{list(shape)}, this run needs '
                 f'{want_dtype}{list(want_shape)}')
  return '; '.join(parts) or None


def restore(mngr: ocp.CheckpointManager, target, step: int | None = None):
  """Restores the given (or newest finalized) step into the structure of ``target``.

  The stored arrays' names, shapes and dtypes are compared with ``target`` first, so a
  checkpoint of another model is refused by name (orbax would cast dtypes silently),
  and a failure while reading says what failed.

  Args:
    mngr: the manager.
    target: pytree of arrays or ``jax.ShapeDtypeStruct`` with the expected structure
      (e.g. from ``jax.eval_shape``); shardings are taken from it where present.
    step: step to restore; None for the newest.

  Returns:
    ``(step, items)``, or ``(None, None)`` when the directory holds no checkpoint.

  Raises:
    CheckpointError: if the checkpoint is unreadable, does not fit ``target``, or
      reading it fails (the message names which).
  """
  if step is None:
    step = mngr.latest_step()
  if step is None:
    return None, None
  where = f'the checkpoint at step {step} in {mngr.directory}'
  advice = (f'Nothing was deleted. Use a new --workdir, or move the step directory out '
            f'of {mngr.directory} to resume from an older one.')
  try:
    stored = _leaf_specs(mngr.item_metadata(step).tree)
  except Exception as e:  # orbax raises many types for missing or damaged metadata
    raise CheckpointError(f'cannot restore {where}: its metadata is unreadable (corrupt '
                          f'or incomplete: {type(e).__name__}: {str(e)[:300]}). '
                          f'{advice}') from e
  mismatch = _mismatch(stored, _leaf_specs(target))
  if mismatch:
    raise CheckpointError(f'cannot restore {where}: it was written by a different model '
                          f'or config ({mismatch}). {advice}')
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
  try:
    items = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  except (OSError, ValueError) as e:  # what orbax/tensorstore raise for damaged files
    raise CheckpointError(f'cannot restore {where}: reading its arrays failed '
                          f'({type(e).__name__}: {str(e)[:300]}); the files are corrupt or '
                          f'truncated. {advice}') from e
  except Exception as e:  # out of memory, a sharding problem: not the checkpoint's fault
    raise CheckpointError(f'cannot restore {where}: {type(e).__name__}: {str(e)[:300]} '
                          f'(its array names, shapes and dtypes match this run). '
                          f'{advice}') from e
  return step, items
