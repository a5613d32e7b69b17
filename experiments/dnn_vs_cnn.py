"""The DNN-vs-CNN study: first-layer parameters against input size, and both models trained
(see cnn_jax.dnn_vs_cnn).

  python -m experiments.dnn_vs_cnn                 # table, then MLP and CNN with 3 seeds each
  python -m experiments.dnn_vs_cnn --notrain       # the parameter table alone (seconds)
"""

import os

from absl import flags

from cnn_jax import config_utils, dnn_vs_cnn
from experiments import cli
from experiments.configs.default import validate

cli.define_cluster_flags()

_SEEDS = flags.DEFINE_integer('seeds', 3, 'Seeds per model (0 .. N-1).')
_TRAIN = flags.DEFINE_bool('train', True, 'Train both models (else the table alone).')
_MLP = flags.DEFINE_string('mlp_config', os.path.join(cli.CONFIG_DIR, 'mlp_fashion_mnist.py'),
                           'The dense model.')
_CNN = flags.DEFINE_string('cnn_config', os.path.join(cli.CONFIG_DIR, 'dnn_vs_cnn_cnn.py'),
                           'The convolutional model.')
_WORKDIR = flags.DEFINE_string('workdir', dnn_vs_cnn.DEFAULT_WORKDIR,
                               'Parent of the run directories (mlp/, cnn/).')
_OUT = flags.DEFINE_string('out', 'experiments/results/dnn_vs_cnn',
                           'Folder for results.json, results.md and the figures.')


def main(argv):
  cli.start(argv)
  with cli.bad_settings():
    for flag in (_MLP, _CNN):
      validate(config_utils.load_config(flag.value), f'--{flag.name}={flag.value}')
  try:
    cluster = cli.cluster_runner()
    with cli.run_stops():  # preemption (exit 75, rerun resumes), a busy or broken workdir
      results = dnn_vs_cnn.run(
          {'mlp': _MLP.value, 'cnn': _CNN.value}, seeds=_SEEDS.value, train=_TRAIN.value,
          workdir=_WORKDIR.value, out=_OUT.value,
          command=cli.command_line('experiments.dnn_vs_cnn'), fan_out=cluster and cluster.run)
  except (ValueError, RuntimeError) as e:
    raise SystemExit(f'error: {e}') from e
  print(dnn_vs_cnn.format_results(results))


if __name__ == '__main__':
  cli.run(main)
