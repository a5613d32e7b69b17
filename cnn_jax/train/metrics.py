"""Metrics to ``metrics.jsonl`` (always) and TensorBoard (optional), from process 0 only."""

from __future__ import annotations

import json
import math
import os

import jax
from absl import logging

METRICS_FILE = 'metrics.jsonl'


def _tensorboard_writer(logdir: str):
  """A TensorBoard writer if tensorflow and tensorboard are importable, else None."""
  try:
    from flax.metrics import tensorboard  # needs tensorflow + tensorboard; optional
  except ImportError as e:
    logging.warning('TensorBoard logging is off (%s); metrics.jsonl has every metric', e)
    return None
  return tensorboard.SummaryWriter(logdir)


class MetricsWriter:
  """Appends one JSON object per event to ``workdir/metrics.jsonl``.

  A resumed run first drops the records logged after its checkpoint's step (and any
  final test record, and a last line torn by a kill), so the file reads as if the run
  had never been interrupted.

  Args:
    workdir: the run directory.
    resume_step: the step restored from a checkpoint (0 for a fresh run).
    tensorboard: also write TensorBoard event files (if TensorFlow is installed).
  """

  def __init__(self, workdir: str, resume_step: int = 0, tensorboard: bool = True):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, METRICS_FILE)
    self._tb = None
    if not self.active:
      return
    if os.path.exists(self.path):
      # Imported here: the workdir module builds on the trainer, which the loop
      # imports beside this one.
      from cnn_jax.train.workdir import read_metrics
      # The test evaluation closes a run; a resumed run writes its own. A line torn by
      # a kill is dropped by the reader.
      kept = [json.dumps(r) + '\n' for r in read_metrics(self.path)
              if r['step'] <= resume_step and r['split'] != 'test']
      tmp = self.path + '.tmp'
      with open(tmp, 'w') as f:
        f.writelines(kept)
      os.replace(tmp, self.path)
    if tensorboard:
      self._tb = _tensorboard_writer(os.path.join(workdir, 'tensorboard'))

  def write(self, step: int, split: str, **values) -> dict:
    """Logs one event.

    Args:
      step: training step.
      split: ``'train'``, ``'eval'`` or ``'test'``.
      **values: metric values (floats or ints).

    Returns:
      The record written.
    """
    record = {'step': int(step), 'split': split}
    record.update({k: (float(v) if isinstance(v, float) or hasattr(v, 'dtype') else v)
                   for k, v in values.items()})
    if self.active:
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')
      if self._tb is not None:
        # The record's values, already plain floats: numpy scalars (float32 metrics)
        # are not Python floats and would be skipped.
        for k, v in record.items():
          if (k not in ('step', 'split', 'epoch') and isinstance(v, (int, float))
              and not isinstance(v, bool) and math.isfinite(v)):
            self._tb.scalar(f'{split}/{k}', v, step)
    return record

  def close(self):
    if self._tb is not None:
      self._tb.flush()
