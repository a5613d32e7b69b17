"""Vmapped replicas and multi-step calls: each must compute what a plain run computes."""

import json
import os
import signal

import numpy as np
import pytest
from configs.tiny import get_config as tiny_config
from idx_files import prepare_toy_tfds

from cnn_jax.train import checkpoint
from cnn_jax.config_utils import apply_overrides
from cnn_jax.train.loop import Preempted, train_and_evaluate
from cnn_jax.train.trainer import Trainer
from cnn_jax.train.workdir import evaluate_checkpoint
from cnn_jax.train.replicas import is_vmappable, train_replicas

# Every test here trains on the toy dataset or builds a trainer on it.
pytestmark = pytest.mark.slow

QUIET = dict(log=lambda *_: None)
# Batched convolutions and reductions may reassociate float sums: close, not bitwise.
TOL = dict(rtol=2e-4, atol=2e-5)
VARIANTS = [{'seed': 3, 'model.dropout_rate': 0.0},
            {'seed': 4, 'model.dropout_rate': 0.5, 'model.dense_dropout_rate': 0.2}]


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


def _config(toy_dir, **fields):
  config = tiny_config(toy_dir)
  config.num_epochs = 2
  config.evaluate_train = True
  for k, v in fields.items():
    config[k] = v
  return config


def _metrics(path):
  with open(os.path.join(path, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _assert_same_run(got_dir, got, want_dir, want):
  for key in ('test_accuracy', 'test_loss', 'train_accuracy', 'train_loss',
              'best_eval_accuracy'):
    np.testing.assert_allclose(got[key], want[key], **TOL, err_msg=key)
  for key in ('best_eval_step', 'steps', 'num_params'):
    assert got[key] == want[key], key
  got_m, want_m = _metrics(got_dir), _metrics(want_dir)
  assert [(m['step'], m['split']) for m in got_m] == [(m['step'], m['split']) for m in want_m]
  for g, w in zip(got_m, want_m):
    for key in ('loss', 'accuracy', 'learning_rate'):
      if key in w:
        np.testing.assert_allclose(g[key], w[key], **TOL, err_msg=f'{key} at {w}')


def test_is_vmappable():
  assert is_vmappable('seed') and is_vmappable('model.dropout_rate')
  assert is_vmappable('model.dense_dropout_rate')
  assert not is_vmappable('model.strides') and not is_vmappable('optimizer.learning_rate')
  assert not is_vmappable('dataset.dropout_rate')


def test_each_replica_matches_its_own_run(toy_dir, tmp_path):
  """Replica i of one vmapped program == a separate run with its seed and rates."""
  base = _config(toy_dir)
  summaries = train_replicas(base, str(tmp_path / 'vmapped'), VARIANTS, **QUIET)
  assert [s['variant']['seed'] for s in summaries] == [3, 4]
  # Missing keys are completed from the base config (0.5 in the tiny config).
  assert summaries[0]['variant']['model.dense_dropout_rate'] == base.model.dense_dropout_rate
  for i, variant in enumerate(VARIANTS):
    alone = str(tmp_path / f'alone{i}')
    want = train_and_evaluate(apply_overrides(base, variant), alone, **QUIET)
    _assert_same_run(str(tmp_path / 'vmapped' / f'replica_{i:02d}'), summaries[i], alone, want)
  # Different seeds and rates give different runs (the test could fail otherwise).
  assert summaries[0]['train_loss'] != summaries[1]['train_loss']
  with open(tmp_path / 'vmapped' / 'summary.json') as f:
    assert json.load(f)['replicas'] == json.loads(json.dumps(summaries))
  # Evaluating the saved stacked state reproduces each replica's test accuracy.
  result = evaluate_checkpoint(str(tmp_path / 'vmapped'))
  np.testing.assert_allclose(result['accuracy'], [s['test_accuracy'] for s in summaries],
                             **TOL)


def test_replicas_resume_and_refuse_other_variants(toy_dir, tmp_path):
  config = _config(toy_dir)
  workdir = str(tmp_path / 'run')
  variants = [{'seed': 0}, {'seed': 1}]
  first = train_replicas(config, workdir, variants, **QUIET)
  lines = []
  again = train_replicas(config, workdir, variants, log=lines.append)
  assert again == json.loads(json.dumps(first))  # a finished run is reported, not rerun
  assert not any(line.startswith("epoch") for line in lines)
  with pytest.raises(ValueError, match='replicas'):
    train_replicas(config, workdir, [{'seed': 0}, {'seed': 2}], **QUIET)


def test_replicas_reject_shape_changing_and_unknown_keys(toy_dir, tmp_path):
  config = _config(toy_dir)
  with pytest.raises(ValueError, match='cannot differ between vmapped replicas'):
    train_replicas(config, str(tmp_path / 'a'), [{'model.strides': 2}], **QUIET)
  with pytest.raises(ValueError, match="unknown config field 'model.input_dropout_rate'"):
    train_replicas(config, str(tmp_path / 'b'), [{'model.input_dropout_rate': 0.1}], **QUIET)
  with pytest.raises(ValueError, match='at least one replica'):
    Trainer(config, variants=[])
  assert not os.listdir(tmp_path / 'a') or not os.path.exists(tmp_path / 'a' / 'config.json')


@pytest.mark.parametrize('steps_per_call', [4, 0])
def test_multi_step_calls_match_single_steps(toy_dir, tmp_path, steps_per_call):
  """``steps_per_call`` (a lax.scan over steps) changes speed, not results."""
  # One call per epoch logs and checkpoints at epoch ends only; so does the reference.
  every = 4 if steps_per_call else 0
  reference = _config(toy_dir, log_every_steps=every, checkpoint_every_steps=every)
  want = train_and_evaluate(reference, str(tmp_path / 'one'), **QUIET)
  config = _config(toy_dir, steps_per_call=steps_per_call, log_every_steps=every,
                   checkpoint_every_steps=every)
  got = train_and_evaluate(config, str(tmp_path / 'many'), **QUIET)
  _assert_same_run(str(tmp_path / 'many'), got, str(tmp_path / 'one'), want)


def test_multi_step_calls_resume_exactly(toy_dir, tmp_path):
  config = _config(toy_dir, steps_per_call=4, num_epochs=3)
  reference = train_and_evaluate(config, str(tmp_path / 'ref'), **QUIET)
  mngr = checkpoint.manager(str(tmp_path / 'ref' / 'checkpoints'))
  # Saved between calls, not only at epoch ends (steps 12, 24, 36); the last two kept.
  assert 32 in mngr.all_steps()
  mngr.close()

  class Stop(Exception):
    pass

  def stop_in_epoch_2(line):
    if line.startswith('epoch 2/'):
      raise Stop
  with pytest.raises(Stop):
    train_and_evaluate(config, str(tmp_path / 'cut'), log=stop_in_epoch_2)
  resumed = train_and_evaluate(config, str(tmp_path / 'cut'), **QUIET)
  for key in ('test_accuracy', 'test_loss', 'train_accuracy', 'best_eval_accuracy'):
    assert resumed[key] == reference[key], key


def test_steps_per_call_must_fit_the_loop(toy_dir):
  with pytest.raises(ValueError, match='must divide steps per epoch'):
    Trainer(_config(toy_dir, steps_per_call=5, log_every_steps=0,
                    checkpoint_every_steps=0))
  with pytest.raises(ValueError, match='must divide log_every_steps'):
    Trainer(_config(toy_dir, steps_per_call=3, log_every_steps=4))
  with pytest.raises(ValueError, match='int >= 1'):
    Trainer(_config(toy_dir, steps_per_call=-1))


@pytest.mark.slow
def test_replicas_preempted_between_logged_steps_resume_bitwise(toy_dir, tmp_path,
                                                                monkeypatch):
  config = _config(toy_dir, log_every_steps=12, checkpoint_every_steps=12)
  variants = [{'seed': 0}, {'seed': 1, 'model.dropout_rate': 0.3}]
  reference = train_replicas(config, str(tmp_path / 'ref'), variants, **QUIET)

  # A real SIGTERM to this process during the call of step 17, between logged steps.
  calls = []
  train_step = Trainer.train_step

  def signalled_step(self, state, args):
    calls.append(None)
    if len(calls) == 17:
      os.kill(os.getpid(), signal.SIGTERM)
    return train_step(self, state, args)
  monkeypatch.setattr(Trainer, 'train_step', signalled_step)
  cut = str(tmp_path / 'cut')
  with pytest.raises(Preempted, match='at step 17/24: saved a checkpoint'):
    train_replicas(config, cut, variants, **QUIET)
  assert len(calls) == 17
  monkeypatch.undo()

  resumed = train_replicas(config, cut, variants, **QUIET)
  timing = {'wall_s', 'compile_s', 'train_images_per_sec', 'images_per_sec', 'elapsed_s'}
  strip = lambda r: {k: v for k, v in r.items() if k not in timing}
  assert [strip(r) for r in resumed] == [strip(r) for r in reference]
  for replica in ('replica_00', 'replica_01'):
    got = [strip(r) for r in _metrics(os.path.join(cut, replica))]
    want = [strip(r) for r in _metrics(str(tmp_path / 'ref' / replica))]
    assert got == want  # the interval cut at step 17 is logged at 24 as if unbroken
