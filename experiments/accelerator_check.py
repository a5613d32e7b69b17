"""Checks, measures and reproduces on one accelerator in minutes (see cnn_jax.accelerator).

  python -m experiments.accelerator_check --out results/accelerator \
      --fashion_mnist_dir data/fashion-mnist [--budget_s 480]
  python -m experiments.accelerator_check --out /tmp/check --dry_run   # CPU, about a minute

Needs jax, flax, optax, orbax-checkpoint, ml_collections, numpy; not TensorFlow or
tensorflow-datasets (Fashion-MNIST is read from its IDX files). PyTorch, when
importable, is timed beside us on the same device. docs/accelerator.md says what to copy
to a GPU node. Exits with status 1 when a correctness check failed or did not run.
"""

import os

# JAX would take 75% of the GPU's memory at start-up; PyTorch times its models in this
# process too. Both set before anything imports jax or TensorFlow.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import functools

import jax
from absl import app, flags

from cnn_jax import accelerator
from cnn_jax.data import idx
from experiments import cli
from experiments.configs import default, fashion_mnist_93, fashion_mnist_fast

_OUT = flags.DEFINE_string('out', None, 'Folder for results.json and results.md '
                           '(e.g. experiments/results/accelerator/DEVICE).')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Every part at tiny sizes (CPU, about a minute).')
_BUDGET = flags.DEFINE_float('budget_s', 480.0, 'Wall-clock budget in seconds: an item '
                             'starts only when more than its estimate is left.')
_DATA_DIR = flags.DEFINE_string(
    'fashion_mnist_dir', idx.DEBIAN_FASHION_MNIST_DIR,
    'Folder of the four Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...) for '
    'the time-to-accuracy runs.')
_TORCH = flags.DEFINE_bool('torch', True, 'Time the PyTorch versions of the models '
                           '(experiments/torch_reference.py) when torch is importable.')

_CONFIGS = cli.CONFIG_DIR + '/'


def _reference() -> tuple:
  """The PyTorch reference bound to the device JAX runs on, or None and why not."""
  if not _TORCH.value:
    return None, 'off (--notorch)'
  try:
    import torch  # pylint: disable=g-import-not-at-top  (an optional extra)
    from experiments import torch_reference  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as e:
    return None, f'{e.name} is not installed'
  backend = jax.default_backend()
  if backend == 'gpu' and torch.cuda.is_available():
    device = 'cuda'
  elif backend == 'cpu':
    device = 'cpu'
  else:
    return None, f'torch has no device here beside JAX\'s {backend}'
  return functools.partial(torch_reference.benchmark_case, device=device,
                           channels_last=True), ''


def main(argv):
  cli.start(argv)
  if not _OUT.value:
    raise SystemExit('error: --out is required (the folder for results.json and results.md)')
  if _BUDGET.value <= 0:
    raise SystemExit(f'error: --budget_s must be > 0, got {_BUDGET.value}')
  if _DRY_RUN.value:
    # The dry run shows that every part runs, not how fast: without XLA's backend
    # optimisations its CPU programs compile in about half the time. Read when the
    # backend starts, which nothing before this line does.
    os.environ['XLA_FLAGS'] = ' '.join(filter(None, [
        os.environ.get('XLA_FLAGS'), '--xla_backend_optimization_level=0',
        '--xla_llvm_disable_expensive_passes=true']))
  reference, missing = _reference()
  results = accelerator.run(
      _OUT.value, dry_run=_DRY_RUN.value, budget_s=_BUDGET.value,
      command=cli.command_line('experiments.accelerator_check'),
      training_config=(f'{_CONFIGS}fashion_mnist_93.py', fashion_mnist_93.get_config()),
      speed_base=default.get_config(),
      tta_configs=[(f'{_CONFIGS}fashion_mnist_fast.py', fashion_mnist_fast.get_config(), 0.91),
                   (f'{_CONFIGS}fashion_mnist_93.py', fashion_mnist_93.get_config(), 0.93)],
      data_dir=_DATA_DIR.value, reference=reference, reference_missing=missing)
  print(f'wrote {os.path.join(_OUT.value, "results.md")}: '
        f'{accelerator.VERDICT[results["ok"]]}')
  if not results['ok']:
    raise SystemExit(1)


if __name__ == '__main__':
  app.run(main)
