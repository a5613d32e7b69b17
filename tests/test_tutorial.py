"""docs/tutorial.ipynb runs top to bottom in a fresh kernel (nbclient), with the training
shortened by CNN_JAX_TUTORIAL_FAST=1; any error in any cell fails the test. The stored
notebook is the one docs/build_tutorial.py writes: same cells, with outputs."""

import os
import sys
import time

import nbformat

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'docs'))
import build_tutorial  # noqa: E402  (docs/ is not a package)


def test_tutorial_executes_without_errors(tmp_path, monkeypatch):
  monkeypatch.setenv('CNN_JAX_TUTORIAL_FAST', '1')
  monkeypatch.setenv('CNN_JAX_TUTORIAL_WORKDIR', str(tmp_path / 'run'))
  nb = nbformat.read(build_tutorial.NOTEBOOK, as_version=4)
  start = time.time()
  build_tutorial.execute(nb)  # nbclient raises CellExecutionError on the first error
  assert time.time() - start < 300
  outputs = [o for cell in nb.cells if cell.cell_type == 'code' for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'lesson convolve1D: 36' in text and '[0.325, 0.6625, 1.0]' in text
  assert '| test_accuracy |' in text  # the training cell ran and printed its results
  assert sum('image/png' in o.get('data', {}) for o in outputs) >= 12  # every figure


def test_stored_notebook_is_the_generated_one_with_outputs():
  stored = nbformat.read(build_tutorial.NOTEBOOK, as_version=4)
  built = build_tutorial.build()
  assert [c.source for c in stored.cells] == [c.source for c in built.cells]
  code = [c for c in stored.cells if c.cell_type == 'code']
  # Every cell after the imports prints or draws something.
  assert all(c.outputs for c in code[1:]), 'store the notebook with its outputs'
  assert not [o for c in code for o in c.outputs if o.output_type == 'error']
  assert os.path.getsize(build_tutorial.NOTEBOOK) < 2_000_000
