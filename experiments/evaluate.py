"""Evaluates the latest, best or a given checkpoint of a training workdir.

  python -m experiments.evaluate --workdir runs/fashion_mnist_cnn [--checkpoint best] \
      [--split test]
"""

import json

from absl import app, flags

from cnn_jax.train.workdir import evaluate_checkpoint
from experiments import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'latest', "'latest', 'best' or a step.")
_SPLIT = flags.DEFINE_enum('split', 'test', ['test', 'eval'], 'Split to evaluate.')


def main(argv):
  cli.start(argv)
  print(json.dumps(evaluate_checkpoint(_WORKDIR.value, _CHECKPOINT.value, _SPLIT.value)))


if __name__ == '__main__':
  app.run(main)
