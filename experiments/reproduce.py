"""Reproduces published results and tabulates ours against them (see cnn_jax.reproduce).

  python -m experiments.reproduce                # every reference, its default seeds
  python -m experiments.reproduce --only mnist1d_cnn,mnist1d_mlp --seeds 5
  python -m experiments.reproduce --only fashion_mnist_resnet18 \
      --override fashion_mnist_resnet18:num_epochs=3

References whose dataset is not prepared are reported as skipped, with the command that
prepares them; finished references are read back from --workdir, not trained again.
"""

from absl import flags

from cnn_jax import reproduce
from experiments import cli
from experiments.configs.default import validate

cli.define_cluster_flags()

_ONLY = flags.DEFINE_multi_string(
    'only', [], 'Reference name(s) to run; repeat the flag or give a comma list. '
    f'Default: all of {", ".join(reproduce.names())}.')
_SEEDS = flags.DEFINE_integer(
    'seeds', None, 'Seeds per reference (0 .. N-1), for every selected reference. '
    f'Default: each reference\'s own, {reproduce.CHEAP_SEEDS} for the MNIST-1D ones and '
    f'{reproduce.SEEDS} for the others.', lower_bound=1)
_WORKDIR = flags.DEFINE_string('workdir', reproduce.DEFAULT_WORKDIR,
                               'Parent of the per-reference run directories.')
_OUT = flags.DEFINE_string('out', 'experiments/results/reproduce',
                           'Folder for results.json and results.md.')
_OVERRIDE = flags.DEFINE_multi_string(
    'override', [], 'KEY=VALUE for every selected reference\'s config, or '
    'NAME:KEY=VALUE for one (e.g. fashion_mnist_resnet18:num_epochs=3, '
    'dataset.data_dir=/data/tfds).')


def main(argv):
  cli.start(argv)
  with cli.bad_settings():  # every selected reference with the overrides, before any trains
    references = reproduce.select([n for v in _ONLY.value for n in v.split(',') if n])
    for ref in references:
      validate(reproduce.reference_config(ref, cli.CONFIG_DIR, _OVERRIDE.value),
               f'reference {ref.name}')
  try:
    cluster = cli.cluster_runner()
    with cli.run_stops():  # preemption (exit 75, rerun resumes), a busy or broken workdir
      results = reproduce.run(
          references, cli.CONFIG_DIR, seeds=_SEEDS.value, workdir=_WORKDIR.value, out=_OUT.value,
          overrides=_OVERRIDE.value,
          not_run=[r for r in reproduce.REFERENCES if r not in references],
          command=cli.command_line('experiments.reproduce'), fan_out=cluster and cluster.run)
  except (ValueError, RuntimeError) as e:
    raise SystemExit(f'error: {e}') from e
  print(reproduce.format_results(results))
  failed = [r['name'] for r in results['references'] if r['status'] == 'failed']
  if failed:
    raise SystemExit(f'error: {len(failed)} reference(s) failed to train: '
                     f'{", ".join(failed)} (see the table and each one\'s cluster.log)')


if __name__ == '__main__':
  cli.run(main)
