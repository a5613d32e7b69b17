"""A stand-in for ``train_replicas``'s output, for the tools built on it (sweep, study,
reproduction): their tests check bookkeeping, not training."""

import json
import os

from cnn_jax.train.replicas import replica_dir


def write_replicas_workdir(workdir, config, variants, summaries, metrics=None):
  """Writes the files a finished ``train_replicas`` run leaves in ``workdir``.

  Args:
    workdir: the run's folder (created).
    config: its ConfigDict (``config.json``, as resume checks read it).
    variants: one dict per replica.
    summaries: one summary dict per replica (``summary.json``).
    metrics: optional, one list of ``metrics.jsonl`` records per replica.
  """
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'config': config.to_dict(), 'variants': variants}, f)
  for i, records in enumerate(metrics or []):
    os.makedirs(os.path.join(workdir, replica_dir(i)))
    with open(os.path.join(workdir, replica_dir(i), 'metrics.jsonl'), 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in records)
  with open(os.path.join(workdir, 'summary.json'), 'w') as f:
    json.dump({'replicas': summaries}, f)
