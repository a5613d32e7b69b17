"""The training engine in-process: steps, optimizers, the loop, the workdir contract."""

import functools
import hashlib
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from configs.tiny import get_config as tiny_config
from idx_files import prepare_toy_tfds

from cnn_jax import models
from cnn_jax.models.simple_cnn import SimpleCNN
from cnn_jax.train import checkpoint
from cnn_jax.train.loop import train_and_evaluate
from cnn_jax.train.trainer import Trainer
from cnn_jax.train.workdir import evaluate_checkpoint, write_config
from cnn_jax.train.steps import (NO_BAD_STEP, create_train_state, cross_entropy, eval_step,
                                 train_step)

QUIET = dict(log=lambda *_: None)
TIMING = {'images_per_sec', 'elapsed_s', 'wall_s', 'compile_s', 'train_images_per_sec'}


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
  return prepare_toy_tfds(tmp_path_factory.mktemp('toy_idx'),
                          tmp_path_factory.mktemp('toy_tfds'))


@pytest.fixture(scope='module')
def finished_run(toy_dir, tmp_path_factory):
  """One complete tiny run, shared by the tests that only read its workdir."""
  workdir = str(tmp_path_factory.mktemp('run'))
  summary = train_and_evaluate(tiny_config(toy_dir), workdir, **QUIET)
  return workdir, summary


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _tree_digest(directory):
  """sha256 of every file under a directory, to prove nothing was changed or deleted."""
  digest = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, 'rb') as f:
        digest[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return digest


def test_run_learns_and_writes_the_documented_workdir(finished_run):
  workdir, summary = finished_run
  assert summary['test_accuracy'] > 0.5  # chance is 0.1
  # conv 3x3x1x8 + bias, dense from 14x14x8 pooled features to 32, head 32 -> 10.
  assert summary['num_params'] == (9 * 8 + 8) + (14 * 14 * 8 * 32 + 32) + (32 * 10 + 10)
  assert 0 < summary['best_eval_accuracy'] <= 1 and summary['best_eval_step'] in (12, 24, 36)
  assert {'test_accuracy', 'test_loss', 'best_eval_accuracy', 'best_eval_step', 'wall_s',
          'compile_s', 'train_images_per_sec', 'num_params'} <= set(summary)
  with open(os.path.join(workdir, 'summary.json')) as f:
    assert json.load(f) == json.loads(json.dumps(summary))
  with open(os.path.join(workdir, 'config.json')) as f:
    saved = json.load(f)
  assert saved['config']['model']['features'] == [8]
  assert {'jax', 'flax', 'optax', 'devices', 'git_commit'} <= set(saved['environment'])
  records = _records(workdir)
  train = [r for r in records if r['split'] == 'train']
  # 384 examples / batch 32 = 12 steps per epoch, 3 epochs, logged every 4 steps.
  assert [r['step'] for r in train] == list(range(4, 37, 4))
  assert {'step', 'epoch', 'split', 'loss', 'accuracy', 'learning_rate', 'images_per_sec',
          'elapsed_s'} <= set(train[0])
  assert train[-1]['loss'] < train[0]['loss']
  evals = [r for r in records if r['split'] == 'eval']
  assert [r['step'] for r in evals] == [12, 24, 36]
  assert max(r['accuracy'] for r in evals) == summary['best_eval_accuracy']
  test = [r for r in records if r['split'] == 'test']
  assert len(test) == 1 and test[0]['accuracy'] == summary['test_accuracy']
  mngr = checkpoint.manager(os.path.join(workdir, 'checkpoints'), read_only=True)
  # keep_checkpoints=2: the latest two, plus the best by eval accuracy.
  assert sorted(mngr.all_steps()) == sorted({32, 36, summary['best_eval_step']})


def test_eval_every_epochs_evaluates_every_nth_epoch_and_the_last(toy_dir, tmp_path):
  config = tiny_config(toy_dir)
  config.eval_every_epochs = 2  # 12 steps per epoch, 3 epochs: steps 24 and 36
  summary = train_and_evaluate(config, str(tmp_path), **QUIET)
  evals = [r['step'] for r in _records(str(tmp_path)) if r['split'] == 'eval']
  assert evals == [24, 36]
  assert summary['best_eval_step'] in (24, 36)


@pytest.mark.slow
def test_same_seed_same_run(toy_dir, tmp_path, finished_run):
  workdir, summary = finished_run
  again = train_and_evaluate(tiny_config(toy_dir), str(tmp_path), **QUIET)
  strip = lambda d: {k: v for k, v in d.items() if k not in TIMING}
  assert strip(again) == strip(summary)
  assert [strip(r) for r in _records(str(tmp_path))] == [strip(r) for r in _records(workdir)]


@pytest.mark.slow
def test_rerun_of_a_finished_workdir_resumes_without_training(toy_dir, finished_run):
  workdir, summary = finished_run
  lines = []
  again = train_and_evaluate(tiny_config(toy_dir), workdir, log=lines.append)
  assert lines == [f'resumed from step 36 in {workdir}']
  assert again == json.loads(json.dumps(summary))  # reported again, timings included
  assert [r['split'] for r in _records(workdir)].count('test') == 1


@pytest.mark.slow
def test_evaluate_checkpoint_reads_the_workdir(finished_run):
  workdir, summary = finished_run
  result = evaluate_checkpoint(workdir)
  assert result['step'] == 36 and result['accuracy'] == summary['test_accuracy']
  best = evaluate_checkpoint(workdir, 'best', 'eval')
  assert best['step'] == summary['best_eval_step']
  assert best['accuracy'] == summary['best_eval_accuracy']
  with pytest.raises(FileNotFoundError, match='no checkpoint at step 3'):
    evaluate_checkpoint(workdir, '3')


@pytest.mark.slow
def test_resume_refuses_a_different_config(toy_dir, finished_run):
  workdir, _ = finished_run
  config = tiny_config(toy_dir)
  config.model.features = (16,)
  before = _tree_digest(workdir)
  with pytest.raises(ValueError, match=r'model.features: \[8\] -> \[16\].*new --workdir'):
    train_and_evaluate(config, workdir, **QUIET)
  assert _tree_digest(workdir) == before


# Orbax's reader threads report the failed reads again when they are torn down.
def _replace_config_json(workdir, config):
  os.remove(os.path.join(workdir, 'config.json'))
  write_config(workdir, config)


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_checkpoint_of_another_architecture_or_corrupt_gives_clear_error(toy_dir, tmp_path):
  config = tiny_config(toy_dir)
  config.num_epochs = 1
  workdir = str(tmp_path)
  train_and_evaluate(config, workdir, **QUIET)
  config.model.features = (16,)
  _replace_config_json(workdir, config)  # bypass the config check on purpose
  before = _tree_digest(os.path.join(workdir, 'checkpoints'))
  with pytest.raises(checkpoint.CheckpointError,
                     match=r'(?s)step 12.*different model or config.*kernel is '
                           r'float32\[3, 3, 1, 8\], this run needs float32\[3, 3, 1, 16\]'
                           r'.*Nothing was deleted'):
    train_and_evaluate(config, workdir, **QUIET)
  assert _tree_digest(os.path.join(workdir, 'checkpoints')) == before

  # Corrupt every array file of the newest step: same error, files untouched.
  config.model.features = (8,)
  _replace_config_json(workdir, config)
  step_dir = os.path.join(workdir, 'checkpoints', '12')
  for root, _, files in os.walk(step_dir):
    for name in files:
      if name not in ('_CHECKPOINT_METADATA',):
        with open(os.path.join(root, name), 'r+b') as f:
          f.truncate(max(os.path.getsize(os.path.join(root, name)) // 3, 1))
  before = _tree_digest(os.path.join(workdir, 'checkpoints'))
  with pytest.raises(checkpoint.CheckpointError, match='cannot restore the checkpoint at step 12'):
    train_and_evaluate(config, workdir, **QUIET)
  assert _tree_digest(os.path.join(workdir, 'checkpoints')) == before


@pytest.mark.slow
def test_nan_stops_with_the_step_and_keeps_checkpoints_finite(toy_dir, tmp_path):
  config = tiny_config(toy_dir)
  # The learning rate explodes at step 18 of 36, after the checkpoints of steps 4-16.
  config.optimizer.schedule = 'piecewise'
  config.optimizer.boundaries = (0.5,)
  config.optimizer.decay_factor = 1e33
  with pytest.raises(FloatingPointError, match=r'non-finite loss or gradients at step (\d+)') as e:
    train_and_evaluate(config, str(tmp_path), **QUIET)
  bad_step = int(str(e.value).split('at step ')[1].split()[0])
  mngr = checkpoint.manager(os.path.join(str(tmp_path), 'checkpoints'), read_only=True)
  steps = mngr.all_steps()
  assert steps and all(step <= bad_step for step in steps)


def test_nonfinite_batch_leaves_the_state_unchanged():
  model = models.create('simple_cnn', features=(4,), hidden=(8,))
  image = jnp.ones((4, 8, 8, 1)).at[0, 0, 0, 0].set(jnp.nan)
  state = create_train_state(model, optax.sgd(0.1), jax.random.key(1), image)
  new, metrics = jax.jit(train_step)(state, {'image': image, 'label': jnp.arange(4)},
                                     jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, new.params, state.params)
  assert int(metrics['bad_step']) == 0 and int(new.step) == 1
  _, ok = jax.jit(train_step)(new, {'image': jnp.ones((4, 8, 8, 1)), 'label': jnp.arange(4)},
                              jax.random.key(2))
  assert int(ok['bad_step']) == NO_BAD_STEP


def test_train_step_uses_step_dependent_dropout_keys():
  model = models.create('simple_cnn', features=(4,), hidden=(8,), dropout_rate=0.5)
  batch = {'image': jax.random.normal(jax.random.key(0), (8, 8, 8, 1)),
           'label': jnp.arange(8) % 10}
  state = create_train_state(model, optax.sgd(0.1), jax.random.key(1), batch['image'])
  key = jax.random.key(2)
  step = jax.jit(train_step)
  _, m1 = step(state, batch, key)
  _, m1b = step(state, batch, key)
  assert float(m1['loss']) == float(m1b['loss'])  # same (key, step): same masks
  _, m2 = step(state.replace(step=state.step + 1), batch, key)
  assert float(m1['loss']) != float(m2['loss'])  # next step: new masks, same params


def test_ema_follows_the_incremental_formula():
  model = models.create('simple_cnn', features=(2,), hidden=())
  batch = {'image': jnp.ones((2, 4, 4, 1)), 'label': jnp.array([0, 1])}
  state = create_train_state(model, optax.sgd(0.5), jax.random.key(0), batch['image'],
                             use_ema=True)
  new, _ = train_step(state, batch, jax.random.key(1), ema_decay=0.9)
  jax.tree.map(lambda e, old, p: np.testing.assert_allclose(e, 0.9 * old + 0.1 * p, rtol=1e-6),
               new.ema_params, state.params, new.params)


def test_eval_flip_averages_the_logits_of_each_image_and_its_mirror():
  model = models.create('simple_cnn', features=(3,), hidden=(), num_classes=4)
  rng = np.random.default_rng(0)
  images = rng.standard_normal((5, 6, 7, 1)).astype(np.float32)
  labels = np.array([0, 1, 2, 3, 1])
  state = create_train_state(model, optax.sgd(0.1), jax.random.key(0), images)
  variables = {'params': state.params}
  # Reference: numpy mirrors the width axis; a mean of the two logits, then the loss.
  logits = (np.asarray(model.apply(variables, images)) +
            np.asarray(model.apply(variables, np.ascontiguousarray(images[:, :, ::-1])))) / 2
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  mask = np.array([1, 1, 1, 1, 0])  # the last example is padding
  batch = {'image': images, 'label': labels, 'mask': mask}
  got = eval_step(state, batch, flip=True)
  np.testing.assert_allclose(got['loss_sum'], -(log_p[np.arange(5), labels] * mask).sum(),
                             rtol=1e-5)
  assert got['correct'] == ((logits.argmax(-1) == labels) * mask).sum()
  assert got['count'] == 4


def test_eval_flip_config_reaches_the_evaluation(toy_dir):
  config = tiny_config(toy_dir)
  plain = Trainer(config)
  state = plain.init_state()
  config.eval_flip = True
  flipped = Trainer(config).evaluate(state, 'test')
  apply = state.apply_fn
  mirrored = state.replace(apply_fn=lambda v, x, **kw: (apply(v, x, **kw) +
                                                        apply(v, x[:, :, ::-1], **kw)) / 2)
  expected = plain.evaluate(mirrored, 'test')
  assert flipped['loss'] != plain.evaluate(state, 'test')['loss']
  np.testing.assert_allclose(flipped['loss'], expected['loss'], rtol=1e-6)


def test_aux_loss_adds_the_weighted_auxiliary_cross_entropy():
  class WithAux(SimpleCNN):  # a tiny model that sows one auxiliary head, like GoogLeNet
    @nn.compact
    def __call__(self, x, train=False):
      logits = super().__call__(x, train)
      if train:
        self.sow('intermediates', 'aux_logits', 2.0 * logits)
      return logits

  model = WithAux(features=(2,), hidden=())
  batch = {'image': jax.random.normal(jax.random.key(0), (4, 4, 4, 1)),
           'label': jnp.array([0, 1, 2, 3])}
  state = create_train_state(model, optax.sgd(0.0), jax.random.key(1), batch['image'])
  _, plain = train_step(state, batch, jax.random.key(2))
  _, with_aux = train_step(state, batch, jax.random.key(2), aux_loss_weight=0.3)
  logits = model.apply({'params': state.params}, batch['image'])
  aux = cross_entropy(2.0 * logits, batch['label']).mean()
  np.testing.assert_allclose(with_aux['loss'], plain['loss'] + 0.3 * aux, rtol=1e-5)


@pytest.mark.slow
def test_half_precision_trains_in_bfloat16_with_float32_parameters(toy_dir, tmp_path):
  config = tiny_config(toy_dir)
  config.num_epochs = 1
  config.half_precision = True
  summary = train_and_evaluate(config, str(tmp_path), **QUIET)
  assert np.isfinite(summary['test_loss'])
  with open(os.path.join(str(tmp_path), 'metrics.jsonl')) as f:
    assert all(np.isfinite(json.loads(line)['loss']) for line in f)
  result = evaluate_checkpoint(str(tmp_path))  # restores float32 parameters
  assert result['accuracy'] == summary['test_accuracy']


class _Interrupt(Exception):
  pass


@pytest.mark.slow
@pytest.mark.parametrize('stream', [False, True])
def test_interrupted_run_resumes_to_the_same_result(toy_dir, tmp_path, stream):
  """In memory and streamed from the host: stop after epoch 2's log line, resume."""
  config = tiny_config(toy_dir)
  config.dataset.stream = stream
  config.checkpoint_every_steps = 0  # checkpoints at epoch ends only
  reference = train_and_evaluate(config, str(tmp_path / 'ref'), **QUIET)

  def stop_in_epoch_2(line):
    if line.startswith('epoch 2/'):
      raise _Interrupt  # before epoch 2's checkpoint: the resume starts at step 12

  with pytest.raises(_Interrupt):
    train_and_evaluate(config, str(tmp_path / 'cut'), log=stop_in_epoch_2)
  lines = []
  resumed = train_and_evaluate(config, str(tmp_path / 'cut'), log=lines.append)
  assert lines[0] == f'resumed from step 12 in {tmp_path / "cut"}'
  strip = lambda d: {k: v for k, v in d.items() if k not in TIMING}
  assert strip(resumed) == strip(reference)
  assert reference['test_accuracy'] > 0.3  # learns (chance 0.1) in both modes


def test_metrics_writer_truncates_on_resume_and_writes_tensorboard(tmp_path):
  from cnn_jax.train.metrics import MetricsWriter
  writer = MetricsWriter(str(tmp_path), tensorboard=True)
  for step in (10, 20, 30):
    writer.write(step, 'train', loss=1.0 / step)
  writer.write(20, 'test', accuracy=0.5)  # a final test record: rewritten by the resume
  writer.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 40, "split": "tr')  # a line cut by a kill
  MetricsWriter(str(tmp_path), resume_step=20, tensorboard=False)
  assert [(r['step'], r['split']) for r in _records(str(tmp_path))] == [(10, 'train'),
                                                                         (20, 'train')]
  assert any(name.startswith('events.out.tfevents')
             for name in os.listdir(tmp_path / 'tensorboard'))


def test_tensorboard_receives_numpy_float32_metrics(tmp_path):
  """The loop logs numpy float32 values: each must reach the event files, read back."""
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util

  from cnn_jax.train.metrics import MetricsWriter
  writer = MetricsWriter(str(tmp_path), tensorboard=True)
  writer.write(5, 'train', loss=np.float32(0.25), accuracy=np.float32(0.75),
               learning_rate=1e-3, images_per_sec=100.0, epoch=0.5)
  writer.close()
  events = event_accumulator.EventAccumulator(str(tmp_path / 'tensorboard'),
                                              size_guidance={'tensors': 0})
  events.Reload()
  tags = set(events.Tags()['tensors'])
  assert tags == {'train/loss', 'train/accuracy', 'train/learning_rate',
                  'train/images_per_sec'}
  loss = events.Tensors('train/loss')
  assert [e.step for e in loss] == [5]
  assert float(tensor_util.make_ndarray(loss[0].tensor_proto)) == 0.25


def test_restore_refuses_other_dtypes_and_names_instead_of_casting(tmp_path):
  """Orbax would cast float32 to int32 silently; the restore names the array instead."""
  mngr = checkpoint.manager(str(tmp_path / 'checkpoints'))
  checkpoint.save(mngr, 3, {'w': jnp.ones((2, 3)), 'b': jnp.zeros((3,))})
  as_int = {'w': jax.ShapeDtypeStruct((2, 3), jnp.int32),
            'b': jax.ShapeDtypeStruct((3,), jnp.float32)}
  with pytest.raises(checkpoint.CheckpointError,
                     match=r'step 3.*different model or config \(w is float32\[2, 3\], '
                           r'this run needs int32\[2, 3\]\)'):
    checkpoint.restore(mngr, as_int)
  renamed = {'v': as_int['b'], 'b': as_int['b']}
  with pytest.raises(checkpoint.CheckpointError,
                     match=r'1 array\(s\) missing, e.g. v; 1 unexpected array\(s\), e.g. w'):
    checkpoint.restore(mngr, renamed)
  step, items = checkpoint.restore(mngr, {'w': jax.ShapeDtypeStruct((2, 3), jnp.float32),
                                          'b': as_int['b']})
  assert step == 3 and np.array_equal(items['w'], np.ones((2, 3)))
  mngr.close()


def test_compile_twice_and_top5_from_the_logits_width(toy_dir):
  """compile() may be called again; top-5 appears for > 10 classes without a config field."""
  config = tiny_config(toy_dir)
  trainer = Trainer(config)
  state = trainer.init_state()
  trainer.compile(state)
  _, batches = trainer.compile(state, start_step=4)
  state, metrics = trainer.train_step(state, next(batches))
  assert int(state.step) == 1 and int(metrics['count']) == 1
  assert 'top5_accuracy' not in trainer.evaluate(state, 'test')  # 10 classes: always 100%
  logits = jnp.array([[0., 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]] * 2)
  state = state.replace(apply_fn=lambda *a, **k: logits)
  batch = {'image': jnp.zeros((2, 1)), 'label': jnp.array([7, 6]), 'mask': jnp.ones(2)}
  # Class 7 is among the five largest logits (7..11), class 6 is not.
  assert float(eval_step(state, batch)['correct_top5']) == 1.0


def test_non_finite_step_rolls_back_the_whole_state():
  """Parameters, Adam moments, BatchNorm statistics and the EMA all stay as they were."""
  model = SimpleCNN(features=(4,), hidden=(8,), batch_norm=True, dropout_rate=0.1)
  tx = optax.adam(1e-2)
  images = jax.random.uniform(jax.random.key(1), (8, 8, 8, 1))
  labels = jnp.arange(8) % 10
  state = create_train_state(model, tx, jax.random.key(0), images, use_ema=True)
  step = jax.jit(functools.partial(train_step, ema_decay=0.9))
  # Two good steps first, so every part of the state holds values a rollback could lose.
  for _ in range(2):
    state, metrics = step(state, {'image': images, 'label': labels}, jax.random.key(2))
  assert int(metrics['bad_step']) == NO_BAD_STEP
  poisoned = images.at[0, 0, 0, 0].set(jnp.nan)
  after, metrics = step(state, {'image': poisoned, 'label': labels}, jax.random.key(2))
  assert int(metrics['bad_step']) == 2 and int(after.step) == 3
  parts = {'params': (state.params, after.params),
           'opt_state': (state.opt_state, after.opt_state),
           'batch_stats': (state.batch_stats, after.batch_stats),
           'ema_params': (state.ema_params, after.ema_params)}
  for name, (before, now) in parts.items():
    leaves = jax.tree.leaves(before)
    assert leaves, name
    for old, new in zip(leaves, jax.tree.leaves(now)):
      np.testing.assert_array_equal(np.asarray(new), np.asarray(old), err_msg=name)
