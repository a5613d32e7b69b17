"""What the thin entry points under ``experiments/`` share: argument checks, quiet
logging, the ``--config`` flag, the command line recorded beside results, and the
optional PyTorch reference.

Bad settings (a flag that does not parse, an unknown config field, a value outside its
field's domain: see ``experiments/configs/default.py``'s ``validate``) end the program
with ONE line on stderr, ``error: ...``, and exit code 2 (:data:`BAD_SETTINGS_EXIT`),
before anything is built or written. ``--debug`` (or ``CNN_JAX_DEBUG=1`` in the
environment) prints the traceback above that line.
"""

import contextlib
import logging as std_logging
import os
import shlex
import sys
import traceback
from typing import NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

import cnn_jax
from cnn_jax import config_utils
from cnn_jax.train import checkpoint, loop
from cnn_jax.train import workdir as workdir_lib

# The exit code of a bad setting (1 stays for failures during a run), as in argparse.
BAD_SETTINGS_EXIT = 2

_DEBUG = flags.DEFINE_bool(
    'debug', False, 'Show the traceback behind a one-line error about a bad setting '
    '(also CNN_JAX_DEBUG=1 in the environment).')
_VERBOSE = flags.DEFINE_bool(
    'verbose', False, "Show the libraries' own logs (TensorFlow, TFDS, orbax start-up and "
    'INFO lines, progress bars), which are hidden by default.')

# Log records from files under these folders are ours; other packages' are shown from
# ERROR up only, unless --verbose.
_OUR_DIRS = tuple(os.path.dirname(os.path.abspath(f)) + os.sep
                  for f in (cnn_jax.__file__, __file__))

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
    with bad_settings():
      config_utils.check_overrides(sys.argv, 'config', default)
  return config_flags.DEFINE_config_file('config', default, help_string)


def _debug() -> bool:
  if os.environ.get('CNN_JAX_DEBUG', '') not in ('', '0'):
    return True
  # Errors while flags are parsed come before --debug has a value.
  return _DEBUG.value if flags.FLAGS.is_parsed() else '--debug' in sys.argv


def fail(message) -> NoReturn:
  """Ends the program on a bad setting: ``error: message`` on one line, exit code 2.

  Called while an exception is handled, ``--debug`` prints its traceback first.

  Raises:
    SystemExit: always, with code :data:`BAD_SETTINGS_EXIT`.
  """
  if _debug() and sys.exc_info()[0] is not None:
    traceback.print_exc()
  print('error: ' + ' '.join(str(message).split()), file=sys.stderr)
  sys.exit(BAD_SETTINGS_EXIT)


@contextlib.contextmanager
def bad_settings():
  """Turns a ValueError or OSError raised inside into :func:`fail` (one line, exit 2).

  ValueError covers ``ConfigError`` and the library's own one-line refusals (an unknown
  sweep axis or reference, a malformed override). Wrap the checks of the settings, not
  the run: such an error during training is a failure of the run, with its traceback.
  OSError is here for a ``--config`` file that cannot be read (``config_flags`` raises
  it when the config is first used).
  """
  try:
    yield
  except (ValueError, OSError) as e:
    fail(e)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a flag that does not parse as a bad setting."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(e)


@contextlib.contextmanager
def run_stops():
  """Turns a training run's expected stops into one line instead of a traceback.

  A preempted run (SIGTERM/SIGINT; its step is saved) prints how to resume and exits
  with ``loop.PREEMPTED_EXIT_CODE`` (75); a workdir held by another process or holding
  an unreadable file, and a checkpoint that cannot be read or written, exit 1 with
  ``error: ...``. Nothing saved is touched in either case.
  """
  try:
    yield
  except loop.Preempted as e:
    print(e, file=sys.stderr)
    sys.exit(loop.PREEMPTED_EXIT_CODE)
  except (workdir_lib.WorkdirBusyError, workdir_lib.WorkdirFileError,
          checkpoint.CheckpointError, checkpoint.CheckpointWriteError) as e:
    raise SystemExit(f'error: {e}') from None


def run(main, argv: list[str] | None = None) -> None:
  """``app.run(main, argv)``, with flag errors as one line and exit code 2 (see :func:`fail`).

  Args:
    main: the entry point's ``main(argv)``.
    argv: the command line; default ``sys.argv`` (tests pass their own).
  """
  app.run(main, argv, flags_parser=_parse_flags)


class _OursOnly(std_logging.Filter):
  """Lets through our own records, and other packages' from ERROR up."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno >= std_logging.ERROR or record.pathname.startswith(_OUR_DIRS)


def start(argv) -> None:
  """Refuses positional arguments and, without ``--verbose``, quietens the libraries.

  Quiet means: TensorFlow's C++ start-up notices off (it is imported later, only to
  build a dataset or write TensorBoard files), no TFDS progress bars, absl logging at
  WARNING, and other packages' records (TFDS, orbax) shown from ERROR up only. Our own
  one-line notices (building a dataset, resuming a run) still show.

  Exits through :func:`fail` for arguments that are not flags.
  """
  if len(argv) > 1:
    fail(f'unexpected arguments {argv[1:]}: every setting is a --flag')
  if _VERBOSE.value:
    return
  # TF_CPP_MIN_LOG_LEVEL hides TensorFlow's C++ INFO and WARNING lines, but not the
  # oneDNN notice it prints at import; oneDNN only speeds up TensorFlow's own maths,
  # which building a dataset does not use.
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:  # a machine without TFDS (the accelerator kit's): no bars to hide
    pass
  else:
    tfds.display_progress_bar(False)
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  logging.get_absl_handler().addFilter(_OursOnly())


def define_cluster_flags() -> None:
  """The ``--cluster`` flag and its TLS files, for the studies that fan groups out."""
  flags.DEFINE_string(
      'cluster', None, 'Train the groups on a Dask cluster: tcp://HOST:PORT (trusted '
      'networks only: a scheduler runs whatever code it is sent), tls://HOST:PORT (with '
      'the --tls_* files) or local:N (N local single-threaded worker processes). The '
      'workdir must be on storage every worker shares. Without it nothing changes.')
  flags.DEFINE_string('tls_ca', '', 'tls:// CA certificate (PEM); else $CNN_JAX_TLS_CA.')
  flags.DEFINE_string('tls_cert', '', 'tls:// client certificate; else $CNN_JAX_TLS_CERT.')
  flags.DEFINE_string('tls_key', '', 'tls:// client private key; else $CNN_JAX_TLS_KEY.')


def cluster_runner():
  """The ``--cluster`` :class:`cnn_jax.cluster.ClusterRunner`, or None without the flag.

  Connects before anything is written, so an unreachable scheduler costs one line.
  Dask is imported only here, when the flag is given. Its ``run`` is a study's
  ``fan_out`` (every unfinished group at once); it turns a cluster error into one line.

  Raises:
    SystemExit: one line, if the cluster cannot be reached.
  """
  address = flags.FLAGS.cluster
  if not address:
    return None
  from cnn_jax import cluster  # pylint: disable=g-import-not-at-top  (Dask on demand)
  try:
    tls = None
    if address.startswith('tls://'):
      tls = cluster.security(flags.FLAGS.tls_ca, flags.FLAGS.tls_cert, flags.FLAGS.tls_key)
    return cluster.ClusterRunner(cluster.connect(address, tls), one_line_errors=True)
  except cluster.ClusterError as e:
    raise SystemExit(f'error: {e}') from None


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
