"""Tests for cnn_jax.ops.dropout (inverted dropout with an explicit PRNG key)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.ops import dropout

N = 100_000  # elements for the statistical checks
SIGMAS = 5  # binomial tolerance: a correct op fails with probability ~1e-6


def _positive(seed, *shape):
  # Strictly positive inputs, so a zero in the output can only come from the mask.
  return np.random.default_rng(seed).uniform(1., 2., size=shape).astype(np.float32)


def _key(seed=0):
  return jax.random.key(seed)


@pytest.mark.parametrize('rate', [0.1, 0.3, 0.5, 0.8])
def test_zero_fraction_and_survivor_scaling(rate):
  x = _positive(0, N)
  y = np.asarray(dropout(x, rate, _key(1)))
  dropped = y == 0
  assert abs(dropped.mean() - rate) < SIGMAS * np.sqrt(rate * (1 - rate) / N)
  # Inverted dropout: survivors are scaled up by 1 / (1 - rate).
  np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - rate), rtol=1e-6)


@pytest.mark.parametrize('rate', [0.2, 0.5, 0.9])
def test_mean_preserved_in_expectation(rate):
  # E[y_i] = x_i; Var[y_i] = x_i^2 * rate / (1 - rate), so the mean over N elements
  # has std sqrt(sum x_i^2 * rate / (1 - rate)) / N.
  x = _positive(2, N)
  y = np.asarray(dropout(x, rate, _key(3)), np.float64)
  std = np.sqrt(np.sum(x.astype(np.float64) ** 2) * rate / (1 - rate)) / N
  assert abs(y.mean() - x.mean()) < SIGMAS * std


def test_deterministic_is_identity_and_key_may_be_none():
  x = _positive(4, 3, 5)
  np.testing.assert_array_equal(dropout(x, 0.5, None, deterministic=True), x)
  np.testing.assert_array_equal(dropout(x, 0.5, _key(), deterministic=True), x)


def test_rate_zero_is_identity():
  x = _positive(5, 3, 5)
  np.testing.assert_array_equal(dropout(x, 0.0, _key()), x)


def test_same_key_same_mask_different_key_different_mask():
  x = _positive(6, 1000)
  a, b, c = (np.asarray(dropout(x, 0.5, k)) for k in (_key(7), _key(7), _key(8)))
  np.testing.assert_array_equal(a, b)
  # Independent masks at rate 0.5 disagree on half the positions.
  disagree = np.mean((a == 0) != (c == 0))
  assert abs(disagree - 0.5) < SIGMAS * np.sqrt(0.25 / x.size)


@pytest.mark.parametrize('broadcast_dims', [(1, 2), (-3, -2)])
def test_spatial_dropout_shares_mask_over_broadcast_dims(broadcast_dims):
  # NHWC features, mask shared over H and W: each (n, c) map is dropped as a whole.
  rate, n, c = 0.5, 64, 64
  x = _positive(9, n, 2, 3, c)
  y = np.asarray(dropout(x, rate, _key(10), broadcast_dims=broadcast_dims))
  zeros = (y == 0).reshape(n, 6, c)
  kept = ~zeros.any(axis=1)  # (n, c)
  assert np.all(zeros.all(axis=1) | kept)  # all-zero or all-kept, nothing in between
  survivors = np.broadcast_to(kept[:, None, None, :], x.shape)
  np.testing.assert_allclose(y[survivors], x[survivors] / (1 - rate), rtol=1e-6)
  assert abs(kept.mean() - (1 - rate)) < SIGMAS * np.sqrt(rate * (1 - rate) / kept.size)
  # Independent along N and C: neighbouring examples (and channels) agree only half
  # the time, as independent fair coins do; a mask shared over N or C would agree always.
  for agree in (np.mean(kept[0::2] == kept[1::2]), np.mean(kept[:, 0::2] == kept[:, 1::2])):
    assert abs(agree - 0.5) < SIGMAS * np.sqrt(0.25 / (kept.size / 2))


def test_rate_traced_under_jit_equals_python_rate():
  x = _positive(11, 1000)
  jitted = jax.jit(dropout)(x, 0.3, _key(12))
  np.testing.assert_array_equal(jitted, dropout(x, 0.3, _key(12)))


def test_vmap_over_rates():
  rates = np.array([0.1, 0.25, 0.5, 0.75], np.float32)
  x = _positive(13, 20_000)
  ys = np.asarray(jax.vmap(lambda r: dropout(x, r, _key(14)))(rates))
  for rate, y in zip(rates, ys):
    rate = float(rate)
    assert abs(np.mean(y == 0) - rate) < SIGMAS * np.sqrt(rate * (1 - rate) / x.size)
    np.testing.assert_array_equal(y, dropout(x, rate, _key(14)))


@pytest.mark.parametrize('rate', [1.0, -0.1, 1.5])
def test_out_of_range_python_rate_raises(rate):
  pattern = r'rate must be in \[0, 1\).*rate=' + re.escape(repr(rate))
  with pytest.raises(ValueError, match=pattern):
    dropout(np.ones(3), rate, _key())


def test_traced_rate_one_gives_zeros_and_finite_gradients():
  x = _positive(15, 50)
  f = jax.jit(lambda v, r: jnp.sum(dropout(v, r, _key(16)) * v))
  np.testing.assert_array_equal(jax.jit(lambda v, r: dropout(v, r, _key(16)))(x, 1.0),
                                np.zeros_like(x))
  grad_x, grad_rate = jax.grad(f, argnums=(0, 1))(x, 1.0)
  assert np.all(np.isfinite(grad_x)) and np.isfinite(grad_rate)
  np.testing.assert_array_equal(grad_x, np.zeros_like(x))


@pytest.mark.parametrize('rate', [0.25, 0.6])
def test_gradient_is_mask_over_keep_probability(rate):
  x = _positive(17, 500)
  cotangent = np.random.default_rng(18).standard_normal(500).astype(np.float32)
  y = np.asarray(dropout(x, rate, _key(19)))
  grad = jax.grad(lambda v: jnp.sum(dropout(v, rate, _key(19)) * cotangent))(x)
  np.testing.assert_allclose(grad, cotangent * (y != 0) / (1 - rate), rtol=1e-6)


@pytest.mark.parametrize('kwargs,key_seed,fragment', [
    (dict(broadcast_dims=(3,)), 0, 'broadcast_dims=(3,) has axis 3'),
    (dict(broadcast_dims=(1, -1)), 0, 'repeats an axis'),
    ({}, None, 'PRNG key is required'),
])
def test_bad_arguments_raise(kwargs, key_seed, fragment):
  key = None if key_seed is None else _key(key_seed)
  with pytest.raises(ValueError, match=re.escape(fragment)):
    dropout(np.ones((2, 3)), 0.5, key, **kwargs)
