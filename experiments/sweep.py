"""Trains a grid of config settings x seeds and tabulates and plots the results.

  python -m experiments.sweep --config experiments/configs/ablation_simple_cnn_dropout_stride.py \
      --seeds 3 [--workdir runs/NAME] [--sweep model.dropout_rate=0,0.5] [--config.x=y]

Axes: the config file's ``get_sweep()``, with each ``--sweep key=v1,v2,...`` replacing
the file's axis of that key or adding one. Seeds: ``config.seed + i`` for ``i <
--seeds``. Settings differing only in seeds and dropout rates train as one vmapped
program; every other combination of values is a run of its own (see cnn_jax.sweep).
Rerunning the command resumes the sweep. Writes ``results.csv``, ``results.md`` and
plots into the workdir and prints the table.
"""

import os

from absl import flags
from ml_collections import config_flags

from cnn_jax import config_utils, sweep
from cnn_jax.data import NotPreparedError
from experiments import cli
from experiments.configs.default import validate

_DEFAULT_CONFIG = 'experiments/configs/ablation_simple_cnn_dropout_stride.py'
_CONFIG = cli.define_config(
    _DEFAULT_CONFIG, 'Experiment config file (with an optional get_sweep()).',
    is_main=__name__ == '__main__')
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Sweep directory; default runs/<config file name>_sweep.')
_SWEEP = flags.DEFINE_multi_string(
    'sweep', [], 'An axis, key=v1,v2,... (e.g. model.dropout_rate=0,0.1,0.3); repeat the '
    "flag for a grid. Replaces the config file's get_sweep() axis of the same key.")
_SEEDS = flags.DEFINE_integer('seeds', 3, 'Seeds per setting: config.seed + 0..N-1.',
                              lower_bound=1)
cli.define_cluster_flags()


def main(argv):
  cli.start(argv)
  spec = config_flags.get_config_filename(flags.FLAGS['config'])
  workdir = _WORKDIR.value or os.path.join('runs', config_utils.config_name(spec) + '_sweep')
  with cli.bad_settings():  # every setting of the grid, before anything trains
    axes = sweep.resolve_axes(_CONFIG.value, config_utils.load_sweep(spec), _SWEEP.value)
    for settings in sweep.expand(axes):
      validate(config_utils.apply_overrides(_CONFIG.value, settings),
               f'sweep setting {sweep.group_name(settings)}')
  try:
    cluster = cli.cluster_runner()
    with cli.run_stops():  # preemption (exit 75, rerun resumes), a busy or broken workdir
      rows = sweep.run_sweep(_CONFIG.value, workdir, axes, _SEEDS.value,
                             command=cli.command_line('experiments.sweep'),
                             fan_out=cluster and cluster.run)
  except (ValueError, NotPreparedError) as e:
    raise SystemExit(f'error: {e}') from e
  print(sweep.format_table(rows, axes))
  print(f'\n{len(rows)} settings x {_SEEDS.value} seeds: {workdir}/{sweep.RESULTS_MD}')
  failed = sorted({row['group'] for row in rows if row.get('status') == 'failed'})
  if failed:
    raise SystemExit(f'error: {len(failed)} group(s) failed: {", ".join(failed)} (see the '
                     f'status column and each group\'s {workdir}/GROUP/cluster.log)')


if __name__ == '__main__':
  cli.run(main)
