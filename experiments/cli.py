"""What the thin entry points under ``experiments/`` share: argument checks, quiet
logging, the ``--config`` flag, the command line recorded beside results, and the
optional PyTorch reference."""

import os
import shlex
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from cnn_jax import config_utils


# The reference configs, found from this package so any working directory works;
# relative, so results record 'experiments/configs/...' when run from the repo root.
CONFIG_DIR = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          'configs'))


def define_config(default: str, help_string: str, *, is_main: bool):
  """The ``--config`` file flag (with ``--config.*`` overrides).

  Args:
    default: the config file used without ``--config``.
    help_string: the flag's help.
    is_main: whether the calling module runs as the program (``__name__ ==
      '__main__'``); only then are this process's overrides checked.

  Returns:
    The flag holder.
  """
  if is_main:
    # DEFINE_config_file applies --config.* overrides as soon as it runs; check them
    # first so a typo gets one clear line instead of a traceback.
    config_utils.check_overrides(sys.argv, 'config', default)
  return config_flags.DEFINE_config_file('config', default, help_string)


def start(argv, quiet: bool = True) -> None:
  """Refuses positional arguments; with ``quiet``, logs warnings and above only.

  Raises:
    app.UsageError: for arguments that are not flags.
  """
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if quiet and not flags.FLAGS['verbosity'].present:
    # Orbax and TFDS log every save and read at INFO; --verbosity=0 brings them back.
    logging.set_verbosity(logging.WARNING)


def command_line(module: str) -> str:
  """This run's command line, as ``python -m module ...``, to store beside its results."""
  return shlex.join(['python', '-m', module, *sys.argv[1:]])


def load_torch_reference():
  """experiments.torch_reference, imported only for ``--torch`` (torch is an optional extra).

  Raises:
    SystemExit: naming the requirements file, if torch is not installed.
  """
  try:
    from experiments import torch_reference
  except ModuleNotFoundError as e:
    if e.name != 'torch':
      raise
    raise SystemExit('error: --torch needs PyTorch, a benchmark-only extra: '
                     'pip install -r requirements-bench.txt') from e
  return torch_reference
