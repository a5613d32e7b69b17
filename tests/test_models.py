"""The simple CNN and the model registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import models

KEY = jax.random.key(0)


def _count(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))


def test_simple_cnn_2d_shapes_and_parameter_count():
  model = models.create('simple_cnn', features=(32, 64), hidden=(128,), num_classes=10)
  variables = model.init(KEY, jnp.zeros((2, 28, 28, 1)))
  assert model.apply(variables, jnp.zeros((2, 28, 28, 1))).shape == (2, 10)
  # Hand count: conv 3*3*1*32+32, conv 3*3*32*64+64, dense 7*7*64*128+128, head 128*10+10.
  expected = (9 * 32 + 32) + (9 * 32 * 64 + 64) + (7 * 7 * 64 * 128 + 128) + (128 * 10 + 10)
  assert _count(variables['params']) == expected


def test_simple_cnn_1d_per_block_settings():
  model = models.create('simple_cnn', features=(8, 16), kernel_size=(5, 3), strides=(1, 2),
                        pool=('max', 'none'), hidden=(), num_classes=10)
  x = jnp.zeros((3, 40, 1))
  variables = model.init(KEY, x)
  assert variables['params']['conv0']['kernel'].shape == (5, 1, 8)
  assert variables['params']['conv1']['kernel'].shape == (3, 8, 16)
  # 40 -> conv SAME 40 -> pool 20 -> conv stride 2 SAME 10; head sees 10*16 features.
  assert variables['params']['head']['kernel'].shape == (160, 10)
  assert model.apply(variables, x).shape == (3, 10)


def test_simple_cnn_batch_norm_per_block():
  model = models.create('simple_cnn', features=(4, 8), batch_norm=(True, False), hidden=(),
                        num_classes=10)
  x = jax.random.normal(KEY, (6, 8, 8, 1)) * 3 + 2
  variables = model.init(KEY, x)
  params = variables['params']
  # BatchNorm replaces conv0's bias; conv1 keeps its own.
  assert 'bias' not in params['conv0'] and 'conv1_bn' not in params
  expected = (9 * 4 + 2 * 4) + (9 * 4 * 8 + 8) + (2 * 2 * 8 * 10 + 10)
  assert _count(params) == expected
  assert jax.tree.map(jnp.shape, variables['batch_stats']) == {
      'conv0_bn': {'mean': (4,), 'var': (4,)}}
  # In training the conv0 output is normalised over (N, H, W): before the activation
  # each channel has mean 0 and variance 1 (the BatchNorm's scale and offset start at
  # 1 and 0). Captured with capture_intermediates.
  _, state = model.apply(variables, x, train=True, mutable=['batch_stats', 'intermediates'],
                         capture_intermediates=lambda m, _: m.name == 'conv0_bn')
  y = np.asarray(state['intermediates']['conv0_bn']['__call__'][0])
  np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1, rtol=1e-3)


def test_simple_cnn_dropout_only_in_training():
  model = models.create('simple_cnn', features=(4,), hidden=(16,), dropout_rate=0.5,
                        dense_dropout_rate=0.5)
  x = jax.random.normal(KEY, (4, 8, 8, 1))
  variables = model.init(KEY, x)
  eval1, eval2 = model.apply(variables, x), model.apply(variables, x, train=False)
  np.testing.assert_array_equal(eval1, eval2)
  t1 = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(1)})
  t2 = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
  assert not np.allclose(t1, eval1) and not np.allclose(t1, t2)


def test_registry_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"unknown model 'simple_cn'.*simple_cnn"):
    models.create('simple_cn')
  with pytest.raises(ValueError, match=r"no field\(s\) \['dropout'\].*dropout_rate"):
    models.create('simple_cnn', dropout=0.1)
  with pytest.raises(ValueError, match=r'kernel_size=\(3, 3, 3\) has 3 entries.*2 conv'):
    model = models.create('simple_cnn', features=(4, 8), kernel_size=(3, 3, 3))
    model.init(KEY, jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="pool must be 'max', 'avg' or 'none'"):
    models.create('simple_cnn', pool='min').init(KEY, jnp.zeros((1, 8, 8, 1)))
