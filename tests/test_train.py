"""The training loop and steps on a tiny learnable toy dataset."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from idx_files import write_toy_dataset

from cnn_jax import models
from cnn_jax.train.loop import train_and_evaluate
from cnn_jax.train.steps import create_train_state, train_step
from experiments.configs import fashion_mnist_cnn


def tiny_config(data_dir):
  config = fashion_mnist_cnn.get_config()
  config.dataset.data_dir = str(data_dir)
  config.model.features = (8,)
  config.model.hidden = (32,)
  config.batch_size = 32
  config.eval_batch_size = 50  # 128 test examples: the last batch is padded and masked
  config.num_epochs = 3
  return config


@pytest.fixture(scope='module')
def toy_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp('toy')
  write_toy_dataset(directory)
  return directory


def test_train_and_evaluate_learns_the_toy(toy_dir):
  lines = []
  summary = train_and_evaluate(tiny_config(toy_dir), log=lines.append)
  assert len(lines) == 3 and 'test loss' in lines[0]
  history = summary['history']
  assert history[-1]['train_loss'] < history[0]['train_loss']
  assert summary['test_accuracy'] > 0.5  # chance is 0.1
  assert summary['num_params'] == (9 * 8 + 8) + (6 * 6 * 8 * 32 + 32) + (32 * 10 + 10)


def test_same_seed_same_run(toy_dir):
  config = tiny_config(toy_dir)
  config.num_epochs = 1
  a = train_and_evaluate(config, log=lambda _: None)['history']
  b = train_and_evaluate(config, log=lambda _: None)['history']
  for ra, rb in zip(a, b):
    assert {k: v for k, v in ra.items() if k != 'images_per_sec'} == \
           {k: v for k, v in rb.items() if k != 'images_per_sec'}


def test_train_step_uses_step_dependent_dropout_keys():
  model = models.create('simple_cnn', features=(4,), hidden=(8,), dropout_rate=0.5)
  batch = {'image': jax.random.normal(jax.random.key(0), (8, 8, 8, 1)),
           'label': jnp.arange(8) % 10}
  state = create_train_state(model, optax.sgd(0.1), jax.random.key(1), batch['image'])
  key = jax.random.key(2)
  step = jax.jit(train_step)
  s1, m1 = step(state, batch, key)
  s1b, m1b = step(state, batch, key)
  assert float(m1['loss']) == float(m1b['loss'])  # same (key, step): same masks
  later = state.replace(step=state.step + 1)
  _, m2 = step(later, batch, key)
  assert float(m1['loss']) != float(m2['loss'])  # next step: new masks, same params


def test_train_step_reduces_loss_on_a_fixed_batch():
  model = models.create('simple_cnn', features=(4,), hidden=(16,))
  rng = np.random.default_rng(0)
  batch = {'image': jnp.asarray(rng.normal(size=(16, 8, 8, 1)), jnp.float32),
           'label': jnp.asarray(rng.integers(0, 10, 16))}
  state = create_train_state(model, optax.adam(1e-2), jax.random.key(0), batch['image'])
  step = jax.jit(train_step)
  first = None
  for _ in range(30):
    state, metrics = step(state, batch, jax.random.key(0))
    first = float(metrics['loss']) if first is None else first
  assert float(metrics['loss']) < 0.5 * first
