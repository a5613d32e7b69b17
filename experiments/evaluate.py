"""Evaluates the latest, best or a given checkpoint of a training workdir (read-only).

It writes nothing, and never prepares or downloads a dataset: the workdir's config and
checkpoint are checked before any data is read.

  python -m experiments.evaluate --workdir runs/fashion_mnist_cnn [--checkpoint best] \
      [--split test]
"""

import json

from absl import flags

from cnn_jax.train.checkpoint import CheckpointError
from cnn_jax.train.workdir import evaluate_checkpoint
from experiments import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'latest', "'latest', 'best' or a step.")
flags.register_validator('checkpoint', lambda v: v in ('latest', 'best') or v.isdigit(),
                         "must be 'latest', 'best' or a step (an int >= 0)")
_SPLIT = flags.DEFINE_enum('split', 'test', ['test', 'eval'], 'Split to evaluate.')


def main(argv):
  cli.start(argv)
  try:
    result = evaluate_checkpoint(_WORKDIR.value, _CHECKPOINT.value, _SPLIT.value)
  # What a workdir can lack (a run stopped early, an unprepared dataset) or hold (a
  # damaged file): one line, not a traceback.
  except (FileNotFoundError, ValueError, CheckpointError) as e:
    raise SystemExit(f'error: {e}') from None
  print(json.dumps(result))


if __name__ == '__main__':
  cli.run(main)
