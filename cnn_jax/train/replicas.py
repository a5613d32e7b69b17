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

from cnn_jax.train.loop import apply_overrides, is_vmappable, replica_dir, train_and_evaluate

__all__ = ['apply_overrides', 'is_vmappable', 'replica_dir', 'train_replicas']


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
  return train_and_evaluate(config, workdir, log=log, mesh=mesh, variants=list(variants))
