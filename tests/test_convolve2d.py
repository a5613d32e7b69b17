"""Tests for cnn_jax.ops.convolve2d against scipy.signal.convolve2d and hand values."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from jax.test_util import check_grads

from cnn_jax.ops import convolve2d

# float32 op vs float64 reference: sums of a few dozen O(1) products.
TOL = dict(rtol=1e-5, atol=1e-5)


def test_convolve2d_hand_example():
  # An impulse at (1, 1) puts a copy of the kernel, as it is, at (1, 1): the impulse
  # response ...
  impulse = np.zeros((3, 3), np.float32)
  impulse[1, 1] = 1
  kernel = np.array([[1, 2], [3, 4]], np.float32)
  np.testing.assert_array_equal(convolve2d(impulse, kernel)[1:3, 1:3], kernel)
  # ... while the one 'valid' output of equal shapes pairs a[0, 0] with v[1, 1]: the flip.
  a = np.array([[1, 0], [0, 0]], np.float32)
  np.testing.assert_array_equal(convolve2d(a, kernel, mode='valid'), [[4]])


@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
@pytest.mark.parametrize('a_shape,v_shape', [((1, 1), (1, 1)), ((5, 6), (3, 3)),
                                             ((6, 5), (2, 4)), ((4, 4), (4, 4)),
                                             ((7, 3), (1, 3)), ((3, 4), (5, 6)),
                                             ((2, 2), (5, 7)), ((8, 8), (5, 5))])
def test_convolve2d_matches_scipy(mode, a_shape, v_shape):
  # (3, 4) x (5, 6) and (2, 2) x (5, 7): the kernel is larger, 'valid' swaps them as scipy
  # does; (8, 8) x (5, 5) takes conv2d's path for 5x5 kernels on few channels.
  rng = np.random.default_rng(sum(a_shape) * 100 + sum(v_shape))
  a, v = rng.standard_normal(a_shape), rng.standard_normal(v_shape)
  got = convolve2d(a.astype(np.float32), v.astype(np.float32), mode=mode)
  np.testing.assert_allclose(got, scipy.signal.convolve2d(a, v, mode=mode), **TOL)


def test_convolve2d_integers_and_jit():
  a = np.arange(12).reshape(3, 4)
  v = np.array([[1, -1], [2, 0]])
  got = jax.jit(convolve2d, static_argnames='mode')(a, v, mode='same')
  assert got.dtype == jnp.int32
  np.testing.assert_array_equal(got, scipy.signal.convolve2d(a, v, mode='same'))


@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
def test_convolve2d_gradients(mode):
  # Reverse-mode gradients against finite differences, both arguments.
  rng = np.random.default_rng(3)
  a = jnp.asarray(rng.standard_normal((4, 5)))
  v = jnp.asarray(rng.standard_normal((2, 3)))
  check_grads(lambda a, v: convolve2d(a, v, mode=mode), (a, v), order=1, modes=['rev'],
              atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize('a,v,mode,fragment', [
    ([1., 2.], [[1.]], 'full', 'a must be a non-empty 2-D array, got shape (2,)'),
    ([[1., 2.]], np.zeros((0, 2)), 'full', 'v must be a non-empty 2-D array'),
    ([[1., 2.]], [[1.]], 'circular', "mode must be 'full', 'same' or 'valid'"),
    (np.ones((2, 5)), np.ones((3, 3)), 'valid', 'a.shape=(2, 5) and v.shape=(3, 3)'),
])
def test_convolve2d_bad_input(a, v, mode, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    convolve2d(a, v, mode=mode)
