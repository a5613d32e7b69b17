"""Trains a model from a config file into a workdir (resuming it if it holds a run).

  python -m experiments.train      # the lesson's CNN on Fashion-MNIST, about a minute
  python -m experiments.train --config experiments/configs/fashion_mnist_cnn.py \
      --workdir runs/fashion_mnist_cnn --config.num_epochs=5 --config.model.dropout_rate=0.3

On SIGTERM or SIGINT the run checkpoints the step in flight and exits with code 75
(``loop.PREEMPTED_EXIT_CODE``); the same command resumes it.

Multi-host: pass --coordinator_address/--num_processes/--process_id on every process
(or nothing under SLURM / Open MPI, whose environment jax.distributed reads itself).
"""

import os

from absl import flags
from ml_collections import config_flags

from cnn_jax import config_utils
from cnn_jax.train import sharding
from cnn_jax.train.loop import format_summary, train_and_evaluate
from experiments import cli
from experiments.configs.default import validate

_DEFAULT_CONFIG = 'experiments/configs/fashion_mnist_lesson.py'
_CONFIG = cli.define_config(
    _DEFAULT_CONFIG, 'Experiment config file.',
    is_main=__name__ == '__main__')
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Run directory (config.json, metrics, checkpoints); default '
    'runs/<config file name>.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', None,
                                   'host:port of process 0, for multi-host runs.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Processes in a multi-host run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'This process in a multi-host run.')


def main(argv):
  cli.start(argv)
  # First: validating traces the model's summary, which starts JAX's backend, and
  # jax.distributed must be initialised before that.
  sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                  _PROCESS_ID.value)
  with cli.bad_settings():  # before anything is built or written
    validate(_CONFIG.value)
  config_file = config_flags.get_config_filename(flags.FLAGS['config'])
  workdir = _WORKDIR.value or os.path.join('runs', config_utils.config_name(config_file))
  with cli.run_stops():  # preemption (exit 75, rerun resumes), a busy or broken workdir
    summary = train_and_evaluate(_CONFIG.value, workdir)
  # Results this run has no value for (no eval split: no best eval step) are left out.
  print(format_summary({k: v for k, v in summary.items() if v is not None}))


if __name__ == '__main__':
  cli.run(main)
