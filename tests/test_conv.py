"""Tests for cnn_jax.ops.conv: conv1d, conv2d, conv (N-D) and convolve1d."""

import functools
import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from jax.test_util import check_grads

from cnn_jax.ops import conv, conv1d, conv2d, convolve1d, output_size
from cnn_jax.ops.shapes import resolve_padding
from references import conv_ref, effective_kernel, padding_pairs

# The module itself (``cnn_jax.ops.conv`` the attribute is the function), to patch.
conv_module = importlib.import_module('cnn_jax.ops.conv')

# float32 op vs float64 reference: sums of a few dozen O(1) products.
TOL = dict(rtol=1e-5, atol=1e-5)


def _rand(rng, *shape):
  return rng.standard_normal(shape).astype(np.float32)


def _per_dim_padding(padding, nd):
  """The padding argument for one spatial dimension, as output_size takes it."""
  if isinstance(padding, (str, int)):
    return [padding] * nd
  if nd == 1 and len(padding) == 2 and all(isinstance(p, int) for p in padding):
    return [tuple(padding)]  # the flat (lo, hi) form of 1-D padding
  return list(padding)


def random_conv_case(nd, seed):
  """A random valid conv call ``(x, kernel, kwargs)`` with tiny shapes, from a seed.

  Covers groups (incl. depthwise: one input channel per group, with and without a
  channel multiplier), strides, dilations, batched and unbatched inputs, and every
  padding form; the padding form cycles with the seed so each one is always tested.
  """
  rng = np.random.default_rng([nd, seed])
  groups = int(rng.choice([1, 2, 3]))
  cin_g, cout_g = rng.integers(1, 3, size=2)
  ksize = tuple(int(k) for k in rng.integers(1, (5 if nd == 1 else 4), size=nd))
  strides = tuple(int(s) for s in rng.integers(1, 4, size=nd))
  dilations = tuple(int(d) for d in rng.integers(1, 3, size=nd))
  kinds = ['VALID', 'SAME', 'FULL', 'int', 'explicit'] + (['CAUSAL'] if nd == 1 else [])
  kind = kinds[seed % len(kinds)]
  if kind == 'int':
    padding = int(rng.integers(0, 3))
  elif kind == 'explicit':
    padding = [int(rng.integers(0, 3)) if rng.random() < 0.3 else
               (int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(nd)]
    if nd == 1 and isinstance(padding[0], tuple) and rng.random() < 0.5:
      padding = padding[0]  # the flat (lo, hi) form of 1-D padding
  else:
    padding = kind
  # Smallest input the (dilated) kernel fits in; SAME always fits (out = ceil(n/s)).
  pads = ([(0, 0)] * nd if padding == 'SAME' else
          padding_pairs(padding, [1] * nd, ksize, strides, dilations))
  sizes = [int(rng.integers(0, 6)) + max(1, effective_kernel(k, d) - lo - hi)
           for k, d, (lo, hi) in zip(ksize, dilations, pads)]
  batch = [(), (1,), (2,)][int(rng.integers(0, 3))]
  x = _rand(rng, *batch, *sizes, cin_g * groups)
  kernel = _rand(rng, *ksize, cin_g, cout_g * groups)
  kwargs = dict(stride=strides, padding=padding, dilation=dilations, groups=groups)
  return x, kernel, kwargs


def _check_against_reference(fn, x, kernel, kwargs):
  got = np.asarray(fn(x, kernel, **kwargs))
  np.testing.assert_allclose(got, conv_ref(x, kernel, **kwargs), err_msg=str(kwargs), **TOL)
  # The documented output-size arithmetic agrees with the array actually built.
  nd = kernel.ndim - 2
  spatial = got.shape[-nd - 1:-1]
  expected = tuple(
      output_size(n, k, s, p, d) for n, k, s, p, d in zip(
          x.shape[-nd - 1:-1], kernel.shape[:nd], kwargs['stride'],
          _per_dim_padding(kwargs['padding'], nd), kwargs['dilation']))
  assert spatial == expected, kwargs


@pytest.mark.parametrize('seed', range(25))
@pytest.mark.parametrize('fn,nd', [(conv1d, 1), (conv2d, 2)], ids=['conv1d', 'conv2d'])
def test_matches_loop_reference_on_random_cases(fn, nd, seed):
  _check_against_reference(fn, *random_conv_case(nd, seed))


def test_conv_3d_matches_loop_reference():
  # conv takes the spatial rank from the kernel; one 3-D case with every knob set.
  rng = np.random.default_rng(0)
  x, kernel = _rand(rng, 2, 4, 5, 3, 4), _rand(rng, 2, 3, 2, 2, 4)
  kwargs = dict(stride=(1, 2, 1), padding=[(1, 0), 1, (0, 2)], dilation=(2, 1, 1),
                groups=2)
  _check_against_reference(conv, x, kernel, kwargs)


def test_conv_3d_same_padding_shape():
  rng = np.random.default_rng(1)
  x, kernel = _rand(rng, 5, 4, 3, 2), _rand(rng, 3, 2, 2, 2, 3)
  got = conv(x, kernel, stride=2, padding='SAME')
  assert got.shape == (3, 2, 2, 3)  # ceil(in / stride) per spatial dim, unbatched
  np.testing.assert_allclose(got, conv_ref(x, kernel, stride=2, padding='SAME'), **TOL)


def test_depthwise_conv2d_is_per_channel_scipy_correlation():
  # groups == C_in: each output channel is a 2-D correlation of its own input channel.
  rng = np.random.default_rng(2)
  x, kernel = _rand(rng, 6, 7, 3), _rand(rng, 3, 2, 1, 3)
  got = conv2d(x, kernel, groups=3)
  for c in range(3):
    want = scipy.signal.correlate(x[..., c].astype(np.float64), kernel[:, :, 0, c],
                                  mode='valid')
    np.testing.assert_allclose(got[..., c], want, **TOL)


@pytest.mark.parametrize('mode,padding', [('valid', 'VALID'), ('full', 'FULL')])
@pytest.mark.parametrize('x_shape,k_shape', [((9,), (3,)), ((6,), (1,)), ((7,), (7,)),
                                             ((6, 7), (3, 2)), ((5, 5), (1, 4))])
def test_single_channel_matches_scipy_correlate(mode, padding, x_shape, k_shape):
  # scipy.signal.correlate is a second reference written by someone else entirely.
  rng = np.random.default_rng(sum(x_shape) * 10 + sum(k_shape))
  x, k = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
  fn = conv1d if len(x_shape) == 1 else conv2d
  got = fn(x[..., None].astype(np.float32), k[..., None, None].astype(np.float32),
           padding=padding)
  np.testing.assert_allclose(got[..., 0], scipy.signal.correlate(x, k, mode=mode), **TOL)


CALLS = [
    pytest.param(conv1d, (2, 9, 4), (3, 2, 4), dict(stride=2, padding='CAUSAL',
                                                    dilation=2, groups=2), id='conv1d'),
    pytest.param(conv2d, (2, 6, 5, 3), (3, 2, 3, 4), dict(stride=(2, 1), padding='SAME'),
                 id='conv2d'),
    pytest.param(conv2d, (2, 5, 5, 2), (3, 3, 1, 2), dict(padding=1, groups=2),
                 id='conv2d-depthwise'),
    pytest.param(conv, (2, 4, 4, 3, 2), (2, 2, 2, 2, 3), dict(padding='FULL'), id='conv3d'),
]


@pytest.mark.parametrize('fn,x_shape,k_shape,kwargs', CALLS)
def test_unbatched_equals_batched_first_element(fn, x_shape, k_shape, kwargs):
  rng = np.random.default_rng(3)
  x, kernel = _rand(rng, *x_shape), _rand(rng, *k_shape)
  batched = fn(x, kernel, **kwargs)
  unbatched = fn(x[0], kernel, **kwargs)
  assert unbatched.shape == batched.shape[1:]
  np.testing.assert_allclose(unbatched, batched[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('fn,x_shape,k_shape,kwargs', CALLS[:3])
def test_vmap_over_batch_equals_batched_call(fn, x_shape, k_shape, kwargs):
  rng = np.random.default_rng(4)
  x, kernel = _rand(rng, *x_shape), _rand(rng, *k_shape)
  f = functools.partial(fn, **kwargs)
  got = jax.vmap(f, in_axes=(0, None))(x, kernel)
  np.testing.assert_allclose(got, f(x, kernel), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got, conv_ref(x, kernel, **kwargs), **TOL)


def test_vmap_over_extra_leading_axis():
  # (B, N, H, W, C): vmap strips B and conv2d sees an ordinary batched input.
  rng = np.random.default_rng(5)
  x, kernel = _rand(rng, 3, 2, 5, 4, 2), _rand(rng, 2, 3, 2, 3)
  got = jax.vmap(lambda xb: conv2d(xb, kernel, stride=2, padding='SAME'))(x)
  assert got.shape == (3, 2, 3, 2, 3)
  for b in range(3):
    np.testing.assert_allclose(got[b], conv_ref(x[b], kernel, stride=2, padding='SAME'),
                               **TOL)


@pytest.mark.parametrize('fn,x_shape,k_shape,kwargs', CALLS)
def test_jit_equals_eager(fn, x_shape, k_shape, kwargs):
  rng = np.random.default_rng(6)
  x, kernel = _rand(rng, *x_shape), _rand(rng, *k_shape)
  f = functools.partial(fn, **kwargs)
  np.testing.assert_allclose(jax.jit(f)(x, kernel), f(x, kernel), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('fn,x_shape,k_shape,kwargs', [
    (conv1d, (1, 6, 2), (3, 2, 2), dict(padding='CAUSAL', dilation=2)),
    (conv2d, (1, 5, 5, 2), (3, 3, 1, 2), dict(stride=2, padding='SAME', groups=2)),
    (conv2d, (4, 4, 1), (2, 3, 1, 2), dict(padding=[(1, 0), (0, 2)], dilation=(1, 2))),
])
@pytest.mark.parametrize('fast_grad', [True, False])
def test_gradients_match_finite_differences(fn, x_shape, k_shape, kwargs, fast_grad):
  # Conv is bilinear, so float32 central differences are accurate up to rounding.
  rng = np.random.default_rng(7)
  x, kernel = _rand(rng, *x_shape), _rand(rng, *k_shape)
  # The fast gradient is a custom VJP: reverse mode only.
  check_grads(functools.partial(fn, fast_grad=fast_grad, **kwargs), (x, kernel), order=1,
              modes=('rev',) if fast_grad else ('rev', 'fwd'), eps=1e-2, atol=1e-2,
              rtol=1e-2)


def _xla_conv(x, kernel, stride, padding, dilation):
  """lax.conv_general_dilated on explicit pads: differentiated by XLA's own rules."""
  nd = kernel.ndim - 2
  # The forward pass is checked against loops above; this only supplies XLA's gradient.
  pads = resolve_padding(padding, x.shape[1:-1], kernel.shape[:nd], (stride,) * nd,
                         (dilation,) * nd)
  letters = 'DHW'[-nd:]
  dn = jax.lax.conv_dimension_numbers(x.shape, kernel.shape,
                                      (f'N{letters}C', f'{letters}IO', f'N{letters}C'))
  return jax.lax.conv_general_dilated(x, kernel, (stride,) * nd, pads, rhs_dilation=(
      dilation,) * nd, dimension_numbers=dn, precision='highest')


def _assert_gradients_equal_xla(x, kernel, cotangent, stride=1, padding='VALID', dilation=1,
                                **kwargs):
  """Both gradients of ``sum(conv(x, kernel) * cotangent)`` against XLA's own rules."""
  ours = jax.grad(lambda x, k: jnp.sum(conv(x, k, stride=stride, padding=padding,
                                            dilation=dilation, precision='highest', **kwargs)
                                       * cotangent), (0, 1))(x, kernel)
  xla = jax.grad(lambda x, k: jnp.sum(_xla_conv(x, k, stride, padding, dilation)
                                      * cotangent), (0, 1))(x, kernel)
  for got, want in zip(ours, xla):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# 3-D: one size and no FULL padding keep the test fast.
_GRADIENT_CASES = [
    (nd, stride, dilation, padding, size)
    for nd in (1, 2, 3)
    for stride, dilation in ((1, 1), (2, 1), (3, 1), (1, 2), (2, 2))
    for padding in ('VALID', 'SAME', 'FULL', 1)
    for size in (7, 8)
    if nd < 3 or (size == 7 and padding != 'FULL')]


@pytest.mark.parametrize('nd,stride,dilation,padding,size', _GRADIENT_CASES)
def test_fast_gradient_equals_xla_gradient(nd, stride, dilation, padding, size):
  """The custom VJP (forward convs and matmuls) against jax.grad of the plain XLA op."""
  rng = np.random.default_rng(size * 100 + stride * 10 + dilation)
  x, kernel = _rand(rng, 2, *(size,) * nd, 3), _rand(rng, *(3,) * nd, 3, 4)
  y = conv(x, kernel, stride=stride, padding=padding, dilation=dilation)
  _assert_gradients_equal_xla(x, kernel, _rand(rng, *y.shape), stride, padding, dilation)


@pytest.mark.parametrize('stride', [1, 2])  # kernel gradient as a conv / as matmuls
def test_fast_gradient_under_vmap_scan_and_bfloat16(stride):
  """Batched kernels (vmapped replicas), a scanned loop, and bfloat16 all agree."""
  rng = np.random.default_rng(3)
  x, kernels = _rand(rng, 4, 9, 9, 2), _rand(rng, 3, 3, 3, 2, 5)
  loss = lambda fast: lambda k, x: jnp.sum(jnp.tanh(conv2d(x, k, stride=stride,
                                                           padding='SAME', fast_grad=fast)))
  want = jnp.stack([jax.grad(loss(False))(k, x) for k in kernels])
  np.testing.assert_allclose(jax.vmap(jax.grad(loss(True)), (0, None))(kernels, x), want,
                             rtol=1e-4, atol=1e-4)

  def scanned(fast):
    def body(k, _):
      return k - 0.1 * jax.grad(loss(fast))(k, x), None
    return jax.jit(lambda k: jax.lax.scan(body, k, None, length=3)[0])(kernels[0])
  np.testing.assert_allclose(scanned(True), scanned(False), rtol=1e-4, atol=1e-4)
  half = jax.grad(loss(True))(kernels[0].astype(jnp.bfloat16), x.astype(jnp.bfloat16))
  assert half.dtype == jnp.bfloat16
  # bfloat16 keeps 8 bits: compare at a few percent of the gradient's scale.
  np.testing.assert_allclose(half.astype(np.float32), want[0],
                             atol=0.05 * float(jnp.abs(want[0]).max()))


# ---------------------------------------------------------------- teaching cases


def test_convolve1d_textbook_example():
  out = convolve1d([1, 2, 3], [1, 2, 3])
  np.testing.assert_array_equal(out, [1, 4, 10, 12, 9])
  # Not "36 = sum of all pairwise products": that number is only the total of the
  # output, because the sum of a convolution is the product of the sums.
  assert out.shape == (5,)
  assert int(out.sum()) == 36 and 36 not in np.asarray(out)


@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
@pytest.mark.parametrize('n,m', [(1, 1), (5, 1), (5, 3), (6, 3), (4, 4), (7, 2), (3, 5),
                                 (2, 7)])
def test_convolve1d_matches_numpy_convolve(mode, n, m):
  # (3, 5) and (2, 7): the kernel is longer than the signal, numpy swaps them.
  rng = np.random.default_rng(100 * n + m)
  a, v = rng.standard_normal(n), rng.standard_normal(m)
  got = convolve1d(a.astype(np.float32), v.astype(np.float32), mode=mode)
  np.testing.assert_allclose(got, np.convolve(a, v, mode=mode), **TOL)


def test_conv1d_is_cross_correlation_on_a_step():
  # y[i] = x[i] * 1 + x[i + 1] * (-1): no kernel flip, so the rising edge between
  # index 2 and 3 gives -1 (a true convolution would give +1).
  x = jnp.array([0., 0., 0., 1., 1., 1.])[:, None]
  kernel = jnp.array([1., -1.])[:, None, None]
  y = np.asarray(conv1d(x, kernel))[:, 0]
  np.testing.assert_array_equal(y, [0., 0., -1., 0., 0.])
  assert np.argmax(np.abs(y)) == 2


@pytest.mark.parametrize('kernel,columns,value', [
    # 2x2 horizontal difference: only the window straddling columns 2|3 sees a change.
    (np.array([[-1., 1.], [-1., 1.]]), [2], 2.),
    # 3x3 Sobel-x: windows covering column 2 and 3 both straddle the edge.
    (np.array([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]]), [1, 2], 4.),
])
def test_conv2d_edge_kernel_responds_only_at_vertical_edge(kernel, columns, value):
  image = np.zeros((6, 6, 1), np.float32)
  image[:, 3:] = 1.  # vertical edge between columns 2 and 3
  y = np.asarray(conv2d(image, kernel[:, :, None, None].astype(np.float32)))[..., 0]
  expected = np.zeros_like(y)
  expected[:, columns] = value
  np.testing.assert_array_equal(y, expected)


# ---------------------------------------------------------------- bad input

X4 = np.zeros((1, 5, 5, 3), np.float32)
K4 = np.zeros((3, 3, 3, 4), np.float32)


@pytest.mark.parametrize('fn,x,kernel,kwargs,fragments', [
    pytest.param(conv2d, np.zeros((5, 5)), K4, {}, ['x.shape=(5, 5)', '(N, H, W, C)'],
                 id='x-rank'),
    pytest.param(conv2d, X4, np.zeros((3, 3, 2, 4)), {},
                 ['channel mismatch', 'kernel.shape=(3, 3, 2, 4)', 'x.shape=(1, 5, 5, 3)'],
                 id='channel-mismatch'),
    pytest.param(conv2d, np.zeros((1, 5, 5, 4)), np.zeros((3, 3, 2, 3)), dict(groups=2),
                 ['groups=2', 'C_out=3', 'kernel.shape=(3, 3, 2, 3)'], id='groups-not-dividing'),
    pytest.param(conv2d, np.zeros((1, 2, 5, 3)), K4, {},
                 ['kernel size 3', 'input shape (1, 2, 5, 3)', 'spatial dimension 0'],
                 id='kernel-larger-than-input'),
    pytest.param(conv1d, np.zeros((4, 1)), np.zeros((3, 1, 1)), dict(dilation=2),
                 ['dilation 2 makes it span 5', 'input size 4'], id='dilated-kernel-too-big'),
    pytest.param(conv2d, X4, K4, dict(stride=0), ['stride', 'stride=0'], id='stride-0'),
    pytest.param(conv2d, X4, K4, dict(stride=(1, 2, 1)), ['stride=(1, 2, 1)', '3 entries'],
                 id='stride-length'),
    pytest.param(conv2d, X4, K4, dict(dilation=0), ['dilation', 'dilation=0'],
                 id='dilation-0'),
    pytest.param(conv2d, X4, K4, dict(padding='HALF'), ["padding='HALF'", 'VALID'],
                 id='unknown-padding'),
    pytest.param(conv2d, X4, K4, dict(padding='CAUSAL'), ["padding='CAUSAL'", '1-D'],
                 id='causal-2d'),
    pytest.param(conv2d, X4, K4, dict(padding=-1), ['padding=-1', 'negative'],
                 id='negative-padding'),
    pytest.param(conv2d, X4, K4, dict(padding=[(0, 1), (-1, 0)]), ['negative'],
                 id='negative-pair'),
    pytest.param(conv2d, X4, K4, dict(groups=0), ['groups=0'], id='groups-0'),
    pytest.param(conv2d, X4, np.zeros((3, 3, 4)), {}, ['kernel.shape=(3, 3, 4)'],
                 id='kernel-rank'),
])
def test_bad_input_raises_naming_argument_and_values(fn, x, kernel, kwargs, fragments):
  with pytest.raises(ValueError, match=re.escape(fragments[0])) as info:
    fn(x, kernel, **kwargs)
  for fragment in fragments[1:]:
    assert fragment in str(info.value)


def test_error_message_quotes_the_callers_unbatched_shape():
  # The op adds a batch axis internally; the message must still show what was passed.
  with pytest.raises(ValueError, match='channel mismatch') as info:
    conv2d(np.zeros((5, 5, 3)), np.zeros((3, 3, 2, 4)))
  assert '(5, 5, 3)' in str(info.value)
  assert '(1, 5, 5, 3)' not in str(info.value)


@pytest.mark.parametrize('x_shape,kwargs,fragment', [((1, 5, 5, 1), dict(stride=0), 'stride=0'),
                                                     ((1, 5, 5, 1), dict(padding='CAUSAL'),
                                                      'CAUSAL'),
                                                     ((1, 2, 2, 1), {}, 'kernel size 3')])
def test_errors_are_raised_at_trace_time_under_jit(x_shape, kwargs, fragment):
  # Shapes and static arguments are checked while tracing: a ValueError, not an XLA error.
  f = jax.jit(functools.partial(conv2d, **kwargs))
  with pytest.raises(ValueError, match=re.escape(fragment)):
    f(jnp.zeros(x_shape), jnp.zeros((3, 3, 1, 1)))


@pytest.mark.parametrize('a,v,mode,fragment', [
    ([[1., 2.]], [1.], 'full', 'a must be a non-empty 1-D'),
    ([1., 2.], [], 'full', 'v must be a non-empty 1-D'),
    ([1., 2.], [1.], 'circular', "mode must be 'full', 'same' or 'valid'"),
])
def test_convolve1d_bad_input(a, v, mode, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    convolve1d(a, v, mode=mode)


@pytest.mark.parametrize('stride,c_in', [(2, 2), (1, 2), (1, 1)],
                         ids=['strided', 'unstrided', 'one_channel'])
@pytest.mark.parametrize('in_axes', [(0, 0), (0, None), (None, 0)],
                         ids=['both', 'shared_kernel', 'shared_input'])
def test_vmapped_conv_equals_a_loop_over_replicas(in_axes, stride, c_in):
  """Every batching pattern of the replica axis (forward and gradients) == a loop."""
  rng = np.random.default_rng(11)
  xs, ks = _rand(rng, 3, 2, 8, 8, c_in), _rand(rng, 3, 3, 3, c_in, 4)
  f = lambda x, k: jnp.sum(jnp.sin(conv2d(x, k, stride=stride, padding='SAME')))
  pick = lambda a, axis, i: a if axis is None else a[i]
  x_in, k_in = (xs if in_axes[0] == 0 else xs[0]), (ks if in_axes[1] == 0 else ks[0])
  got = jax.vmap(jax.value_and_grad(f, (0, 1)), in_axes)(x_in, k_in)
  for i in range(3):
    want = jax.value_and_grad(f, (0, 1))(pick(x_in, in_axes[0], i), pick(k_in, in_axes[1], i))
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g[i], w, rtol=1e-4, atol=1e-4)


# ------------------------------------------------- shape-specific formulations


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('c_out', [1, 6, 16])
def test_single_input_channel_conv2d(stride, c_out):
  """One input channel (LeNet-5's C1; widened on CPU): values and both gradients."""
  rng = np.random.default_rng(c_out * 10 + stride)
  x, kernel = _rand(rng, 3, 11, 10, 1), _rand(rng, 5, 5, 1, c_out)
  kwargs = dict(stride=(stride, stride), padding=2, dilation=(1, 1))
  _check_against_reference(conv2d, x, kernel, kwargs)
  y = conv2d(x, kernel, **kwargs)
  assert y.shape[-1] == c_out
  _assert_gradients_equal_xla(x, kernel, _rand(rng, *y.shape), stride, 2)


@pytest.mark.parametrize('x_shape,k_shape,padding', [
    ((2, 5, 5, 16), (5, 5, 16, 7), 'VALID'),  # LeNet-5's C5
    ((2, 3, 4, 3), (5, 6, 3, 4), 1),  # the padded input is exactly the kernel
    ((2, 3, 4, 3), (5, 6, 3, 4), ((0, 2), (1, 1))),  # ... with uneven padding
    ((3, 6, 2), (6, 2, 5), 'VALID'),  # 1-D
    ((2, 2, 2, 2, 1), (2, 2, 2, 1, 3), 'VALID'),  # 3-D
])
def test_kernel_covering_the_input_is_a_dense_layer(x_shape, k_shape, padding):
  """One output position: the loop reference's values, XLA's gradients, forward mode."""
  rng = np.random.default_rng(len(x_shape) + k_shape[0])
  x, kernel = _rand(rng, *x_shape), _rand(rng, *k_shape)
  nd = kernel.ndim - 2
  kwargs = dict(stride=(1,) * nd, padding=padding, dilation=(1,) * nd)
  _check_against_reference(conv, x, kernel, kwargs)
  y = conv(x, kernel, padding=padding)
  assert y.shape == (x_shape[0], *(1,) * nd, k_shape[-1])
  _assert_gradients_equal_xla(x, kernel, _rand(rng, *y.shape), padding=padding)
  # A matmul: forward mode works without fast_grad=False.
  tangent = _rand(rng, *x_shape)
  _, jvp = jax.jvp(lambda x: conv(x, kernel, padding=padding), (x,), (tangent,))
  np.testing.assert_allclose(jvp, conv_ref(tangent, kernel, **kwargs, groups=1), **TOL)


@pytest.mark.parametrize('x_shape,k_shape,padding', [
    ((2, 28, 28, 1), (5, 5, 1, 6), 2),  # LeNet-5's C1
    ((2, 14, 14, 6), (5, 5, 6, 16), 'VALID'),  # LeNet-5's C3
    ((1, 9, 12, 3), (5, 7, 3, 5), ((1, 2), (0, 3))),  # odd output sizes, uneven pads
    ((2, 11, 11, 2), (9, 9, 2, 3), 'SAME'),  # a 9x9 kernel becomes a 5x5 blocked one
])
def test_space_to_depth_conv(x_shape, k_shape, padding):
  """Few channels and a 5x5-or-larger kernel (computed on 2x2 blocks on CPU)."""
  rng = np.random.default_rng(k_shape[0] + k_shape[-1])
  x, kernel = _rand(rng, *x_shape), _rand(rng, *k_shape)
  kwargs = dict(stride=(1, 1), padding=padding, dilation=(1, 1))
  _check_against_reference(conv2d, x, kernel, kwargs)
  y = conv2d(x, kernel, padding=padding)
  cotangent = _rand(rng, *y.shape)
  for fast in (True, False):
    _assert_gradients_equal_xla(x, kernel, cotangent, padding=padding, fast_grad=fast)
  # Replicas: vmapped kernels and inputs equal a loop.
  xs, ks = np.stack([x, 2 * x]), np.stack([kernel, -kernel])
  f = lambda x, k: jnp.sum(jnp.sin(conv2d(x, k, padding=padding)))
  got = jax.vmap(jax.value_and_grad(f, (0, 1)))(xs, ks)
  for i in range(2):
    want = jax.value_and_grad(f, (0, 1))(xs[i], ks[i])
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g[i], w, rtol=1e-4, atol=1e-4)


# ------------------------------------------- formulations chosen off CPU, run on CPU


@pytest.fixture
def off_cpu(monkeypatch):
  """Makes ``conv`` choose the formulations it uses on GPU/TPU while running on CPU.

  CI has no accelerator, so without this the branches taken off CPU (the flipped-kernel
  input gradient for strided convs, no space-to-depth, no channel widening) would run
  only on machines the tests never see. The CPU-only helpers raise if reached.
  """
  def cpu_only(*args, **kwargs):
    raise AssertionError('a CPU-only formulation ran with the backend patched off CPU')

  monkeypatch.setattr(conv_module, '_on_cpu', lambda: False)
  monkeypatch.setattr(conv_module, '_input_grad_col2im', cpu_only)
  monkeypatch.setattr(conv_module, '_space_to_depth_conv', cpu_only)


@pytest.mark.parametrize('nd,size,kernel,stride,dilation,padding', [
    (2, 9, 3, 1, 1, 'SAME'),
    (2, 9, 3, 2, 1, 'SAME'),
    (2, 10, 3, 3, 1, 'VALID'),  # stride 3: the case a wrong off-CPU gradient hid in
    (2, 11, 3, 3, 2, 1),
    (2, 12, 5, 4, 1, 'FULL'),
    (2, 13, 3, 3, 1, ((2, 0), (1, 3))),  # uneven padding, stride not dividing the size
    (2, 11, 5, 1, 1, 2),  # 5x5, one input channel below: space-to-depth on CPU
    (1, 17, 4, 3, 2, 'SAME'),
    (3, 7, 3, 3, 1, 'SAME'),
])
@pytest.mark.parametrize('c_in', [1, 3])
def test_off_cpu_formulations_match_xla(off_cpu, nd, size, kernel, stride, dilation, padding,
                                        c_in):
  """Values against the loop reference, both gradients against jax.grad of lax's conv."""
  rng = np.random.default_rng([nd, size, kernel, stride, dilation, c_in])
  x, w = _rand(rng, 2, *(size,) * nd, c_in), _rand(rng, *(kernel,) * nd, c_in, 4)
  kwargs = dict(stride=(stride,) * nd, padding=padding, dilation=(dilation,) * nd)
  y = conv(x, w, **kwargs)
  np.testing.assert_allclose(y, conv_ref(x, w, **kwargs), **TOL)
  _assert_gradients_equal_xla(x, w, _rand(rng, *y.shape), stride, padding, dilation)


@pytest.mark.parametrize('on_cpu', [True, False], ids=['cpu', 'off_cpu'])
def test_strided_dilated_gradient_matches_finite_differences(monkeypatch, on_cpu):
  """Stride 3 with dilation 2 and uneven padding against central differences."""
  monkeypatch.setattr(conv_module, '_on_cpu', lambda: on_cpu)
  rng = np.random.default_rng(3)
  x, kernel = _rand(rng, 1, 11, 10, 2), _rand(rng, 3, 2, 2, 3)
  f = functools.partial(conv2d, stride=(3, 2), dilation=(2, 3), padding=[(2, 1), (0, 2)])
  check_grads(f, (x, kernel), order=1, modes=('rev',), eps=1e-2, atol=1e-2, rtol=1e-2)
