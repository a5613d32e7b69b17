"""The shifted-inputs study: the shift against a loop, the evaluation against a plain
forward pass, and the tiny setting end to end."""

import json
import os

import jax
import numpy as np
import pytest
from test_study_permuted_pixels import (CONFIG_DIR, QUIET, _differences, on_toy_data,
                                        replica_accuracies, toy_data_dir)

from cnn_jax import config_utils, provenance, studies
from cnn_jax.data import load
from cnn_jax.studies import permuted_pixels, shifted_inputs
from cnn_jax.train import workdir as workdir_lib
from experiments.configs.default import validate

assert toy_data_dir  # the module-scoped fixture, shared with the permuted-pixels tests

# Where the pixel at (row, column) lands: one step of each direction.
_STEPS = {'right': (0, 1), 'left': (0, -1), 'down': (1, 0), 'up': (-1, 0)}


def shift_loop(images, shift, direction):
  """Reference: move each pixel on its own; what lands outside is lost, the rest zero."""
  out = np.zeros_like(images)
  n, h, w, _ = images.shape
  dr, dc = _STEPS[direction]
  for i in range(n):
    for r in range(h):
      for c in range(w):
        rr, cc = r + dr * shift, c + dc * shift
        if 0 <= rr < h and 0 <= cc < w:
          out[i, rr, cc] = images[i, r, c]
  return out


def test_registered():
  assert studies.get('shifted_inputs') is shifted_inputs
  assert shifted_inputs.DEFAULT_SEEDS >= 3


@pytest.mark.parametrize('direction', shifted_inputs.DIRECTIONS)
@pytest.mark.parametrize('shift', [0, 1, 3, 5, 7, 9])
def test_shift_matches_a_pixel_loop(direction, shift):
  images = np.random.default_rng(shift).integers(1, 256, (2, 5, 7, 2)).astype(np.uint8)
  moved = shifted_inputs.shift_images(images, shift, direction)
  assert moved.dtype == np.uint8 and moved.shape == images.shape
  np.testing.assert_array_equal(moved, shift_loop(images, shift, direction))
  if shift == 0:
    np.testing.assert_array_equal(moved, images)


def test_shift_refuses_bad_input():
  images = np.zeros((1, 4, 4, 1))
  with pytest.raises(ValueError, match=r"direction='diagonal'; use one of right, left"):
    shifted_inputs.shift_images(images, 1, 'diagonal')
  with pytest.raises(ValueError, match=r'shift=-1 must be >= 0'):
    shifted_inputs.shift_images(images, -1, 'left')
  with pytest.raises(ValueError, match=r'expects a batch \(N, H, W, C\)'):
    shifted_inputs.shift_images(images[0], 1, 'left')


@pytest.mark.parametrize('tiny', [False, True])
def test_runs_share_the_permuted_studys_models_and_add_global_pooling(tiny):
  configs = shifted_inputs.runs(CONFIG_DIR, tiny=tiny)
  assert list(configs) == ['mlp', 'cnn', 'cnn_gap']
  others = permuted_pixels.runs(CONFIG_DIR, tiny=tiny)
  for name in ('mlp', 'cnn'):  # same name, same run: one workdir serves both studies
    assert _differences(configs[name], others[name]) == {}
  assert _differences(configs['cnn'], configs['cnn_gap']) == {
      'model.head': ('dense', 'global_avg')}
  if not tiny:
    gap = config_utils.load_config(os.path.join(CONFIG_DIR, 'study_gap_cnn.py'))
    assert _differences(gap, configs['cnn_gap']) == {}
  for config in configs.values():
    validate(config)


def _plain_accuracy(workdir, replica, shift, direction):
  """Accuracy from the restored parameters, a whole-split forward pass, an argmax."""
  trainer, _, state = workdir_lib.restore(workdir)
  images, labels = load(trainer.config.dataset, may_prepare=False)['test']
  params = jax.tree.map(lambda a: a[replica], state.params)
  x = shift_loop(images, shift, direction).astype(np.float32) / 255
  logits = trainer.model.apply({'params': params}, x)
  return float(np.mean(np.argmax(logits, -1) == labels))


@pytest.mark.slow
def test_tiny_setting_end_to_end(tmp_path, monkeypatch, toy_data_dir):
  on_toy_data(monkeypatch, shifted_inputs, toy_data_dir)
  workdir, out = tmp_path / 'runs', tmp_path / 'out'
  seeds, shifts, directions = 2, len(shifted_inputs.SHIFTS), len(shifted_inputs.DIRECTIONS)
  results = shifted_inputs.run(CONFIG_DIR, seeds=seeds, workdir=str(workdir), out=str(out),
                               tiny=True, command='pytest', **QUIET)
  with open(out / 'results.json') as f:
    assert json.load(f) == provenance.jsonable(results)
  assert (out / shifted_inputs.FIGURE).stat().st_size > 0
  markdown = (out / 'results.md').read_text()
  assert markdown == shifted_inputs.format_results(results)
  assert shifted_inputs.interpretation(results) in markdown
  assert set(results['runs']) == {'mlp', 'cnn', 'cnn_gap'}
  for name, record in results['runs'].items():
    shifted = np.array(record['shifted'])
    assert shifted.shape == (seeds, shifts, directions)
    # Shift 0 is the run's own test evaluation.
    accuracies = replica_accuracies(workdir / name, seeds)
    assert record['test_accuracies'] == accuracies
    np.testing.assert_allclose(shifted[:, 0, :],
                               np.repeat(np.array(accuracies)[:, None], directions, 1),
                               atol=1e-6)
    by_shift = shifted.mean(axis=2)
    np.testing.assert_allclose(record['by_shift'], by_shift)
    np.testing.assert_allclose(record['shift_mean'], by_shift.mean(axis=0))
    np.testing.assert_allclose(record['shift_std'], by_shift.std(axis=0, ddof=1))
    np.testing.assert_allclose(record['drop'], by_shift[:, 0] - by_shift[:, -1])
    for mean in record['shift_mean']:
      assert f'{100 * mean:.2f}' in markdown
  for a, b in shifted_inputs.PAIRS:
    for i, test in enumerate(results['tests'][f'{a}-{b}']):
      expected = permuted_pixels.compare(np.array(results['runs'][a]['by_shift'])[:, i],
                                         np.array(results['runs'][b]['by_shift'])[:, i])
      assert test == expected
  # A moved image is evaluated as a plain forward pass of the restored parameters sees it.
  for name, replica, shift, direction in (('cnn', 1, 3, 'left'), ('cnn_gap', 0, 6, 'down'),
                                          ('mlp', 0, 2, 'up')):
    j = shifted_inputs.DIRECTIONS.index(direction)
    assert results['runs'][name]['shifted'][replica][shift][j] == pytest.approx(
        _plain_accuracy(str(workdir / name), replica, shift, direction), abs=1e-6)


@pytest.mark.slow
def test_shifting_a_permuted_run_is_refused(tmp_path, monkeypatch, toy_data_dir):
  on_toy_data(monkeypatch, permuted_pixels, toy_data_dir)
  config = permuted_pixels.runs(CONFIG_DIR, tiny=True)['mlp_permuted']
  permuted_pixels.train({'mlp_permuted': config}, 1, str(tmp_path), **QUIET)
  with pytest.raises(ValueError, match='trained on permuted inputs'):
    shifted_inputs.shifted_accuracies(str(tmp_path / 'mlp_permuted'))
