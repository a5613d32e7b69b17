"""Runs one of the studies that test the lesson's claims (see cnn_jax.studies).

  python -m experiments.study --study dropout_data          # the committed results
  python -m experiments.study --study dropout_data --tiny   # seconds, into the workdir

Finished runs are read back from --workdir, not trained again; an interrupted one
resumes from its checkpoints.
"""

import os

from absl import flags

from cnn_jax import studies
from experiments import cli
from experiments.configs.default import validate

_STUDY = flags.DEFINE_enum('study', None, studies.names(), 'The study to run.')
_SEEDS = flags.DEFINE_integer('seeds', None, 'Seeds per setting (0 .. N-1); default: the '
                              "study's DEFAULT_SEEDS.", lower_bound=1)
_TINY = flags.DEFINE_bool('tiny', False, 'The seconds-long setting the tests run (results '
                          'go into the workdir unless --out is given).')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Parent of the run directories; default '
                               'runs/studies/STUDY (runs/studies/STUDY_tiny with --tiny).')
_OUT = flags.DEFINE_string('out', None, 'Folder for results.json, results.md and the '
                           'figures; default experiments/results/studies/STUDY '
                           '(WORKDIR/results with --tiny).')
flags.mark_flag_as_required('study')


def main(argv):
  cli.start(argv)
  study = studies.get(_STUDY.value)
  name = _STUDY.value + ('_tiny' if _TINY.value else '')
  workdir = _WORKDIR.value or os.path.join('runs', 'studies', name)
  out = _OUT.value or (os.path.join(workdir, 'results') if _TINY.value
                       else os.path.join('experiments', 'results', 'studies', name))
  with cli.bad_settings():
    for run_name, config in study.runs(cli.CONFIG_DIR, tiny=_TINY.value).items():
      validate(config, f'study {_STUDY.value}, run {run_name}')
  try:
    with cli.run_stops():  # preemption (exit 75, rerun resumes), a busy or broken workdir
      results = study.run(cli.CONFIG_DIR, seeds=_SEEDS.value or study.DEFAULT_SEEDS,
                          workdir=workdir, out=out, tiny=_TINY.value,
                          command=cli.command_line('experiments.study'))
  except (ValueError, RuntimeError) as e:
    raise SystemExit(f'error: {e}') from e
  print(study.format_results(results))


if __name__ == '__main__':
  cli.run(main)
