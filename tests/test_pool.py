"""Tests for cnn_jax.ops.pool: max_pool, avg_pool, global_avg_pool, global_max_pool."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.ops import avg_pool, global_avg_pool, global_max_pool, max_pool
from references import (avg_pool_ref, avg_pool_vjp_ref, max_pool_jvp_ref, max_pool_ref,
                        max_pool_vjp_ref, padding_pairs, reduce_window_max_pool)

TOL = dict(rtol=1e-5, atol=1e-6)


def _rand(seed, *shape):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _geometry(x_shape, window, stride, padding):
  """(window, strides, pads) tuples for a batched x, resolved by the references."""
  nd = len(window)
  strides = window if stride is None else (
      (stride,) * nd if isinstance(stride, int) else tuple(stride))
  pads = padding_pairs(padding, x_shape[1:-1], window, strides)
  return window, strides, pads


# (x shape, window, stride, padding): overlapping (3x3/2), non-overlapping (the max-pool
# fast path), SAME, int and explicit pairs, 1-D and 2-D, non-divisible sizes.
POOL_CASES = [
    ((2, 6, 6, 3), (2, 2), None, 'VALID'),
    ((2, 5, 7, 2), (2, 2), None, 'VALID'),
    ((2, 5, 5, 2), (2, 2), None, 'SAME'),
    ((1, 7, 6, 2), (3, 3), (2, 2), 'VALID'),
    ((1, 7, 6, 2), (3, 3), (2, 2), 'SAME'),
    ((2, 5, 6, 1), (3, 3), 1, 1),
    ((1, 6, 7, 2), (3, 2), (1, 2), [(1, 2), (0, 1)]),
    ((1, 5, 7, 1), (2, 3), (2, 1), 'SAME'),
    ((1, 5, 5, 2), (2, 2), None, 1),
    ((2, 9, 3), (3,), (2,), 'SAME'),
    ((2, 7, 2), (2,), None, 'VALID'),
    ((1, 8, 2), (4,), (1,), [(1, 3)]),
    ((1, 7, 2), (3,), None, 'SAME'),
    ((2, 7, 6, 3), (1, 1), (2, 2), 'VALID'),  # 1-element windows: a strided slice
    ((1, 7, 6, 2), (1, 1), (3, 2), 'SAME'),
    ((2, 9, 3), (1,), (4,), 'VALID'),
]


@pytest.mark.parametrize('x_shape,window,stride,padding', POOL_CASES)
def test_max_pool_matches_loop_reference(x_shape, window, stride, padding):
  x = _rand(1, *x_shape)
  got = max_pool(x, window, stride=stride, padding=padding)
  np.testing.assert_array_equal(got, max_pool_ref(x, *_geometry(x_shape, window, stride,
                                                                 padding)))


@pytest.mark.parametrize('count_include_pad', [True, False])
@pytest.mark.parametrize('x_shape,window,stride,padding', POOL_CASES)
def test_avg_pool_matches_loop_reference(x_shape, window, stride, padding,
                                         count_include_pad):
  x = _rand(2, *x_shape)
  got = avg_pool(x, window, stride=stride, padding=padding,
                 count_include_pad=count_include_pad)
  want = avg_pool_ref(x, *_geometry(x_shape, window, stride, padding),
                      count_include_pad=count_include_pad)
  np.testing.assert_allclose(got, want, **TOL)


def test_avg_pool_count_include_pad_at_a_corner():
  # 2x2 ones, 2x2 window, padding 1: the corner window holds one real 1 and three pad
  # zeros; PyTorch-style divides by 4, TF-style 'SAME' semantics divide by 1.
  x = np.ones((2, 2, 1), np.float32)
  np.testing.assert_allclose(avg_pool(x, (2, 2), padding=1, count_include_pad=True)[..., 0],
                             np.full((2, 2), 0.25))
  np.testing.assert_allclose(avg_pool(x, (2, 2), padding=1, count_include_pad=False)[..., 0],
                             np.ones((2, 2)))


@pytest.mark.parametrize('dtype', [np.int32, np.float32])
def test_max_pool_integer_and_float_inputs(dtype):
  # Integer inputs take the reduce_window path, floats the fast path; both pad with
  # the lowest value so negative inputs are never beaten by padding.
  x = (np.random.default_rng(3).integers(-9, 0, size=(1, 5, 5, 2))).astype(dtype)
  got = max_pool(x, (2, 2), padding='SAME')
  assert got.dtype == dtype
  np.testing.assert_array_equal(got, max_pool_ref(x, (2, 2), (2, 2), [(0, 1), (0, 1)]))


def test_avg_pool_integer_input_gives_float():
  x = np.arange(16, dtype=np.int32).reshape(4, 4, 1)
  got = avg_pool(x, (2, 2))
  assert jnp.issubdtype(got.dtype, jnp.floating)
  np.testing.assert_allclose(got[..., 0], [[2.5, 4.5], [10.5, 12.5]])


def test_max_pool_2x2_keeps_a_quarter_of_the_values():
  x = _rand(4, 1, 8, 8, 1)
  y = np.asarray(max_pool(x, 2))
  assert y.size == x.size // 4
  blocks = x[0, :, :, 0].reshape(4, 2, 4, 2).transpose(0, 2, 1, 3)
  np.testing.assert_array_equal(y[0, :, :, 0], blocks.max(axis=(2, 3)))
  # Each output is one of its own block's values (distinct random inputs: exactly one).
  matches = (blocks == y[0, :, :, 0][:, :, None, None]).sum(axis=(2, 3))
  np.testing.assert_array_equal(matches, np.ones((4, 4)))


# ------------------------------------------------- gradients of the non-overlapping path

# Non-overlapping windows of float inputs take the custom-derivative fast path.
FAST_CASES = [
    ((1, 4, 4, 2), (2, 2), 'VALID'),
    ((1, 5, 5, 2), (2, 2), 'VALID'),  # crops the last row and column
    ((1, 5, 5, 2), (2, 2), 'SAME'),  # pads one row and column at the end
    ((1, 4, 4, 1), (2, 2), 1),  # pads both sides: windows of one real element
    ((2, 5, 7, 1), (3, 2), 'SAME'),
    ((1, 7, 2), (3,), 'SAME'),
]


def _plateaus(shape, seed):
  """Inputs with ties: constant, zeros, few distinct values, repeated maxima."""
  rng = np.random.default_rng(seed)
  yield 'random', rng.standard_normal(shape).astype(np.float32)
  yield 'ones', np.ones(shape, np.float32)
  yield 'zeros', np.zeros(shape, np.float32)
  yield 'two-levels', rng.integers(0, 2, size=shape).astype(np.float32)
  yield 'negative-ties', -rng.integers(1, 3, size=shape).astype(np.float32)


@pytest.mark.parametrize('x_shape,window,padding', FAST_CASES)
def test_fast_max_pool_gradient_routes_to_first_maximum(x_shape, window, padding):
  # The cotangent of each output must reach exactly one element, the first maximum
  # of its window in row-major order, on plateaus too (marking every tie would scale
  # the gradient). Checked against a numpy argmax and against JAX's own
  # reduce_window(max) derivative.
  geometry = _geometry(x_shape, window, None, padding)
  f = functools.partial(max_pool, window=window, padding=padding)
  # jit once, reuse for every input (eager dispatch of the masked rule is slow).
  op_vjp = jax.jit(lambda v, c: jax.vjp(f, v)[1](c)[0])
  ref_vjp = jax.jit(lambda v, c: jax.vjp(lambda u: reduce_window_max_pool(u, *geometry),
                                         v)[1](c)[0])
  y_shape = max_pool_ref(np.zeros(x_shape), *geometry).shape
  for name, x in _plateaus(x_shape, seed=5):
    cotangent = _rand(6, *y_shape)
    grad = op_vjp(x, cotangent)
    np.testing.assert_allclose(grad, max_pool_vjp_ref(x, *geometry, cotangent), **TOL,
                               err_msg=name)
    np.testing.assert_allclose(grad, ref_vjp(x, cotangent), **TOL, err_msg=name)
    # One unit per window: with a ones cotangent the gradient sums to the output size.
    ones_grad = op_vjp(x, np.ones(y_shape, np.float32))
    assert float(ones_grad.sum()) == np.prod(y_shape), name
    assert set(np.unique(ones_grad)) <= {0.0, 1.0}, name


@pytest.mark.parametrize('x_shape,window,padding', FAST_CASES)
def test_fast_max_pool_forward_mode_matches(x_shape, window, padding):
  geometry = _geometry(x_shape, window, None, padding)
  f = functools.partial(max_pool, window=window, padding=padding)
  op_jvp = jax.jit(lambda v, t: jax.jvp(f, (v,), (t,)))
  op_vjp = jax.jit(lambda v, c: jax.vjp(f, v)[1](c)[0])
  for name, x in _plateaus(x_shape, seed=7):
    tangent = _rand(8, *x_shape)
    y, y_dot = op_jvp(x, tangent)
    np.testing.assert_array_equal(y, max_pool_ref(x, *geometry), err_msg=name)
    np.testing.assert_allclose(y_dot, max_pool_jvp_ref(x, *geometry, tangent), **TOL,
                               err_msg=name)
    # Forward and reverse mode are transposes: <c, J t> == <J^T c, t>.
    cotangent = _rand(9, *y.shape)
    grad = op_vjp(x, cotangent)
    np.testing.assert_allclose(np.vdot(cotangent, y_dot), np.vdot(grad, tangent), rtol=1e-5,
                               err_msg=name)
    if name == 'random':
      # Only without ties: XLA's forward-mode rule for reduce_window(max) does not pick
      # the first maximum of a plateau, so it is no reference there.
      _, ref_dot = jax.jvp(lambda v: reduce_window_max_pool(v, *geometry), (x,),
                           (tangent,))
      np.testing.assert_allclose(y_dot, ref_dot, **TOL)


def test_overlapping_max_pool_gradient_routes_to_first_maximum():
  # 3x3/2 windows overlap: an element that is the max of two windows collects both.
  x_shape, window, stride = (1, 7, 7, 1), (3, 3), (2, 2)
  geometry = _geometry(x_shape, window, stride, 'VALID')
  for name, x in _plateaus(x_shape, seed=9):
    y, vjp = jax.vjp(lambda v: max_pool(v, window, stride=stride), x)
    cotangent = _rand(10, *y.shape)
    np.testing.assert_allclose(vjp(cotangent)[0],
                               max_pool_vjp_ref(x, *geometry, cotangent), **TOL,
                               err_msg=name)


def test_fast_max_pool_second_derivative():
  # f = sum(max_pool(x)^2): with distinct inputs the Hessian is 2 on the diagonal at
  # each window's maximum and 0 elsewhere.
  x = _rand(11, 4, 6, 1)
  f = lambda v: jnp.sum(max_pool(v, (2, 2)) ** 2)
  hessian = np.asarray(jax.jit(jax.hessian(f))(x)).reshape(x.size, x.size)
  chosen = max_pool_vjp_ref(x[None], (2, 2), (2, 2), [(0, 0), (0, 0)],
                           np.ones((1, 2, 3, 1)))[0]
  assert chosen.sum() == 6
  np.testing.assert_allclose(hessian, np.diag(2 * chosen.ravel()), atol=1e-6)
  # grad-of-grad of a smooth function with a plateau input does not crash either.
  g = jax.jit(jax.grad(lambda v: jnp.sum(jax.grad(
      lambda u: jnp.sum(jnp.sin(max_pool(u, (2, 2)))))(v))))
  assert np.all(np.isfinite(g(np.zeros((4, 4, 1), np.float32))))


# ------------------------------------------------------------------- global pools


@pytest.mark.parametrize('fn,reduce', [(global_avg_pool, np.mean),
                                       (global_max_pool, np.max)])
@pytest.mark.parametrize('x_shape,spatial_dims,axes', [
    ((2, 3, 4, 5), None, (1, 2)),  # batched 2-D, inferred
    ((2, 3, 4, 5), 2, (1, 2)),
    ((3, 4, 5), 2, (0, 1)),  # unbatched 2-D: needs spatial_dims
    ((2, 6, 5), 1, (1,)),  # batched 1-D: needs spatial_dims
    ((6, 5), None, (0,)),  # unbatched 1-D, inferred
    ((2, 3, 4, 2, 5), 3, (1, 2, 3)),
])
@pytest.mark.parametrize('keepdims', [False, True])
def test_global_pools(fn, reduce, x_shape, spatial_dims, axes, keepdims):
  x = _rand(12, *x_shape)
  got = fn(x, spatial_dims=spatial_dims, keepdims=keepdims)
  np.testing.assert_allclose(got, reduce(x.astype(np.float64), axis=axes,
                                         keepdims=keepdims), **TOL)


@pytest.mark.parametrize('fn', [global_avg_pool, global_max_pool])
def test_global_pool_unbatched_equals_batched_first_element(fn):
  x = _rand(13, 2, 3, 4, 5)
  np.testing.assert_allclose(fn(x[0], spatial_dims=2), fn(x)[0], rtol=1e-6)


@pytest.mark.parametrize('fn', [global_avg_pool, global_max_pool])
def test_global_pool_ambiguous_3_axis_input(fn):
  with pytest.raises(ValueError, match='spatial_dims'):
    fn(np.zeros((2, 3, 4)))


@pytest.mark.parametrize('fn', [max_pool, avg_pool])
def test_int_window_on_3_axis_input_is_ambiguous(fn):
  with pytest.raises(ValueError, match=r'ambiguous.*window=\(k,\)'):
    fn(np.zeros((4, 4, 2)), 2)


# ------------------------------------------------------------ vmap, jit, batching

TRANSFORM_CASES = [
    (max_pool, dict(window=(2, 2))),  # fast path
    (max_pool, dict(window=(3, 3), stride=(2, 2), padding='SAME')),
    (max_pool, dict(window=(1, 1), stride=(2, 3))),  # strided slice
    (avg_pool, dict(window=(3, 3), stride=(2, 2), padding='SAME', count_include_pad=False)),
    (avg_pool, dict(window=(3,), stride=(1,), padding=1)),
]
TRANSFORM_IDS = ['max-fast', 'max-overlap', 'max-1x1-strided', 'avg-2d-exclude-pad', 'avg-1d']


@pytest.mark.parametrize('fn,kwargs', TRANSFORM_CASES, ids=TRANSFORM_IDS)
def test_vmap_and_unbatched_equal_batched(fn, kwargs):
  # A tuple window fixes the rank, so vmap's unbatched (H, W, C) slices are unambiguous.
  x = _rand(14, 3, 5, 6, 2) if len(kwargs['window']) == 2 else _rand(14, 3, 7, 2)
  f = functools.partial(fn, **kwargs)
  batched = f(x)
  np.testing.assert_allclose(jax.vmap(f)(x), batched, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(f(x[1]), batched[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('fn,kwargs', TRANSFORM_CASES, ids=TRANSFORM_IDS)
def test_jit_equals_eager(fn, kwargs):
  x = _rand(15, 2, 5, 6, 2) if len(kwargs['window']) == 2 else _rand(15, 2, 7, 2)
  f = functools.partial(fn, **kwargs)
  np.testing.assert_allclose(jax.jit(f)(x), f(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('fn,kwargs', TRANSFORM_CASES, ids=TRANSFORM_IDS)
def test_gradient_under_jit_matches_reference(fn, kwargs):
  # The usual training step is jit(grad(loss)); every pooling path must support it.
  x = _rand(16, 2, 5, 6, 2) if len(kwargs['window']) == 2 else _rand(16, 2, 7, 2)
  f = functools.partial(fn, **kwargs)
  geometry = _geometry(x.shape, kwargs['window'], kwargs.get('stride'),
                       kwargs.get('padding', 'VALID'))
  y_shape = max_pool_ref(np.zeros(x.shape), *geometry).shape
  cotangent = _rand(17, *y_shape)
  grad = jax.jit(jax.grad(lambda v: jnp.sum(f(v) * cotangent)))(x)
  if fn is max_pool:
    want = max_pool_vjp_ref(x, *geometry, cotangent)
  else:
    want = avg_pool_vjp_ref(x.shape, *geometry, cotangent,
                            kwargs.get('count_include_pad', True))
  np.testing.assert_allclose(grad, want, **TOL)


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize('fn', [max_pool, avg_pool])
@pytest.mark.parametrize('x_shape,args,kwargs,fragments', [
    pytest.param((1, 4, 4, 1), ((0, 2),), {}, ['window', 'window=(0, 2)'], id='window-0'),
    pytest.param((1, 4, 4, 1), ((2, 2),), dict(stride=0), ['stride', 'stride=0'],
                 id='stride-0'),
    pytest.param((1, 4, 4, 1), ((2, 2),), dict(padding=2),
                 ['padding (2, 2) is not smaller than the window 2', '(1, 4, 4, 1)'],
                 id='padding-ge-window'),
    pytest.param((1, 4, 4, 1), ((5, 2),), {},
                 ['window size 5 is larger', 'input shape (1, 4, 4, 1)'], id='window-too-big'),
    pytest.param((1, 4, 4, 1), ((2, 2),), dict(padding='CAUSAL'), ['CAUSAL'],
                 id='causal-2d'),
    pytest.param((1, 4, 4, 1), ((2, 2),), dict(padding=-1), ['negative'],
                 id='negative-padding'),
    pytest.param((4, 4), ((2, 2),), {}, ['x.shape=(4, 4)'], id='x-rank'),
])
def test_bad_input_raises(fn, x_shape, args, kwargs, fragments):
  with pytest.raises(ValueError, match=re.escape(fragments[0])) as info:
    fn(np.zeros(x_shape, np.float32), *args, **kwargs)
  for fragment in fragments[1:]:
    assert fragment in str(info.value)


def test_bad_input_raises_at_trace_time_under_jit():
  with pytest.raises(ValueError, match='window size 5 is larger'):
    jax.jit(lambda v: max_pool(v, (5, 5)))(jnp.zeros((1, 4, 4, 1)))
