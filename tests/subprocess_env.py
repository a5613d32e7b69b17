"""The environment of the tests' subprocesses: the repository importable, JAX on CPU."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What a user's shell has set for none of these: the test run's own XLA flags (forced
# host devices), debug switches and logging settings must not leak into the child.
_UNSET = ('XLA_FLAGS', 'CNN_JAX_DEBUG', 'TF_CPP_MIN_LOG_LEVEL', 'TF_ENABLE_ONEDNN_OPTS')


def subprocess_env(**extra) -> dict:
  """``os.environ`` with the repo and tests/ on PYTHONPATH, CPU JAX, and ``extra`` set."""
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'tests')]),
             JAX_PLATFORMS='cpu')
  for name in _UNSET:
    env.pop(name, None)
  env.update(extra)
  return env
