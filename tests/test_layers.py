"""Layers vs Flax's own modules (an independent implementation) and layer semantics."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import layers
from references import conv_ref

KEY = jax.random.key(0)


@pytest.mark.parametrize('shape,kernel,kwargs', [
    ((2, 9, 3), (3,), dict(strides=2, padding='SAME')),
    ((2, 9, 4), (3,), dict(padding='VALID', dilation=2, groups=2)),
    ((2, 8, 7, 3), (3, 3), dict(strides=(2, 1), padding='SAME')),
    ((2, 8, 7, 4), (2, 3), dict(padding=((1, 2), (0, 1)), groups=4)),
    ((8, 7, 3), (3, 3), dict(padding='VALID', use_bias=False)),  # unbatched
])
def test_conv_matches_flax_conv(shape, kernel, kwargs):
  x = jax.random.normal(KEY, shape)
  ours = layers.Conv(6 if kwargs.get('groups', 1) == 1 else 8, kernel, **kwargs)
  variables = ours.init(jax.random.key(1), x)
  flax_kwargs = dict(kwargs)
  flax_kwargs['kernel_dilation'] = flax_kwargs.pop('dilation', 1)
  flax_kwargs['feature_group_count'] = flax_kwargs.pop('groups', 1)
  theirs = nn.Conv(ours.features, kernel, **flax_kwargs)
  # Same parameter structure and shapes as Flax's Conv: checkpoints and counts agree.
  assert (jax.tree.map(jnp.shape, theirs.init(jax.random.key(1), x))
          == jax.tree.map(jnp.shape, variables))
  np.testing.assert_allclose(ours.apply(variables, x), theirs.apply(variables, x),
                             rtol=1e-5, atol=1e-5)


def test_conv_rejects_int_kernel_size():
  with pytest.raises(TypeError, match=r'kernel_size must be a tuple.*\(3,\).*\(3, 3\)'):
    layers.Conv(4, 3).init(KEY, jnp.zeros((1, 8, 8, 1)))


def test_conv_channel_group_error_names_shape():
  with pytest.raises(ValueError, match=r'groups=2.*\(1, 8, 8, 3\)'):
    layers.Conv(4, (3, 3), groups=2).init(KEY, jnp.zeros((1, 8, 8, 3)))


def test_conv_bf16_compute_keeps_f32_params():
  module = layers.Conv(4, (3, 3), dtype=jnp.bfloat16)
  variables = module.init(KEY, jnp.ones((1, 6, 6, 2)))
  assert variables['params']['kernel'].dtype == jnp.float32
  assert module.apply(variables, jnp.ones((1, 6, 6, 2))).dtype == jnp.bfloat16


@pytest.mark.parametrize('window,strides,padding', [
    ((2, 2), None, 'VALID'), ((3, 3), (2, 2), 'VALID'), ((3, 3), (1, 1), 'SAME'),
    ((2,), None, 'VALID'), ((3,), (2,), 'SAME')])
def test_pools_match_flax(window, strides, padding):
  x = jax.random.normal(KEY, (2, 7) + (7,) * (len(window) - 1) + (3,))
  strides_flax = strides or window  # Flax's default stride is 1, ours is the window
  got = layers.MaxPool(window, strides, padding).apply({}, x)
  np.testing.assert_allclose(got, nn.max_pool(x, window, strides_flax, padding), rtol=1e-6)
  # count_include_pad=False is TF's SAME average, which is what Flax computes.
  got = layers.AvgPool(window, strides, padding, count_include_pad=False).apply({}, x)
  np.testing.assert_allclose(got, nn.avg_pool(x, window, strides_flax, padding,
                                              count_include_pad=False), rtol=1e-5)


def test_global_pools():
  x = jax.random.normal(KEY, (2, 5, 4, 3))
  np.testing.assert_allclose(layers.GlobalAvgPool().apply({}, x), x.mean((1, 2)), rtol=1e-6)
  np.testing.assert_allclose(layers.GlobalMaxPool().apply({}, x), x.max((1, 2)))
  x1 = x[:, :, 0]
  np.testing.assert_allclose(layers.GlobalAvgPool(spatial_dims=1).apply({}, x1),
                             x1.mean(1), rtol=1e-6)


def test_dropout_layer_semantics():
  x = jnp.ones((64, 32))
  layer = layers.Dropout(0.5)
  np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)
  a = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(1)})
  b = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(1)})
  c = layer.apply({}, x, deterministic=False, rngs={'dropout': jax.random.key(2)})
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert set(np.unique(a)) <= {0.0, 2.0}
  with pytest.raises(ValueError, match='deterministic'):
    layer.apply({}, x)  # neither the attribute nor the call argument says which mode
  # A zero rate needs no rng, as with Flax's Dropout.
  np.testing.assert_array_equal(layers.Dropout(0.0).apply({}, x, deterministic=False), x)


@pytest.mark.parametrize('rate', [1.0, -0.1])
def test_dropout_layer_rejects_bad_rate_in_eval_too(rate):
  with pytest.raises(ValueError, match='rate'):
    layers.Dropout(rate).apply({}, jnp.ones(3), deterministic=True)


def test_dropout_layer_vmaps_over_rates():
  rates = jnp.array([0.0, 0.25, 0.75])
  x = jnp.ones((200, 50))

  def apply(rate):
    return layers.Dropout(rate).apply({}, x, deterministic=False,
                                      rngs={'dropout': jax.random.key(3)})

  out = jax.jit(jax.vmap(apply))(rates)
  zero_fraction = np.asarray((out == 0).mean(axis=(1, 2)))
  np.testing.assert_allclose(zero_fraction, rates, atol=0.02)


def test_init_and_apply_are_pure():
  module = layers.Conv(3, (3, 3))
  x = jnp.ones((1, 5, 5, 2))
  v1, v2 = module.init(KEY, x), module.init(KEY, x)
  jax.tree.map(np.testing.assert_array_equal, v1, v2)
  before = jax.tree.map(np.array, v1)
  out = module.apply(v1, x)
  # apply is a function of its arguments only: it leaves the variables as they were
  # and gives the convolution of x with exactly those variables.
  jax.tree.map(np.testing.assert_array_equal, v1, before)
  params = before['params']
  np.testing.assert_allclose(out, conv_ref(x, params['kernel'], padding='SAME') + params['bias'],
                             rtol=1e-5, atol=1e-5)
  assert not np.array_equal(module.init(jax.random.key(5), x)['params']['kernel'],
                            v1['params']['kernel'])
