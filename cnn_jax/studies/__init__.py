"""Studies that test the lesson's claims, each a module with the same face.

  python -m experiments.study --study NAME [--seeds N] [--tiny] [--workdir DIR] [--out DIR]

A study module has:

* ``TITLE``: one line, the claim it tests.
* ``DEFAULT_SEEDS``: seeds per setting of its committed results (at least 3).
* ``runs(config_dir, tiny=False) -> {run name: config}``: every training run it needs,
  built from the config files in ``config_dir``; ``tiny`` shrinks them to seconds (the
  tests run that). The entry point validates them all before anything trains.
* ``run(config_dir, *, seeds, workdir, out, tiny=False, command='', log=print) -> dict``:
  trains the runs (each run's seeds as one vmapped program, in ``workdir/<run name>``,
  read back when finished), measures, and writes ``results.json``, ``results.md`` and
  its figures into ``out`` (None: writes nothing). The results hold
  ``provenance.environment(command)``, so the page states the command, commit and
  machine that produced it.
* ``format_results(results) -> str``: the markdown page, with the paragraph that
  interprets the numbers computed from them (never written by hand).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Name -> module under cnn_jax.studies; imported when asked for (each pulls in training).
STUDIES = {
    'dropout_data': 'cnn_jax.studies.dropout_data',
    'permuted_pixels': 'cnn_jax.studies.permuted_pixels',
    'shifted_inputs': 'cnn_jax.studies.shifted_inputs',
    'stride_pool': 'cnn_jax.studies.stride_pool',
}


def names() -> list[str]:
  """The study names, as ``--study`` takes them."""
  return list(STUDIES)


def get(name: str) -> ModuleType:
  """The study module called ``name``.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  if name not in STUDIES:
    raise ValueError(f'unknown study {name!r}; the studies are: {", ".join(STUDIES)}')
  return importlib.import_module(STUDIES[name])
