"""Independent reference implementations for the op tests.

Everything except :func:`reduce_window_max_pool` is plain Python/numpy written from the
definitions (explicit loops, float64) and never calls ``cnn_jax``, so a test that
compares an op against these can actually fail. Arrays are channels-last with a
leading batch axis: ``(N, *spatial, C)``.
"""

from __future__ import annotations

import itertools

import numpy as np


def as_tuple(value, ndim):
  """An int or a sequence as a tuple of ``ndim`` ints."""
  return (value,) * ndim if isinstance(value, int) else tuple(value)


def effective_kernel(kernel, dilation=1):
  """Extent of a dilated kernel: ``k`` taps spaced ``dilation`` apart."""
  return (kernel - 1) * dilation + 1


def same_padding_tf(in_size, kernel, stride, dilation=1):
  """(lo, hi) padding of TensorFlow's 'SAME', from its documented formula.

  tf.nn docs ("SAME padding"): ``pad = max(k - s, 0)`` if ``in % s == 0`` else
  ``max(k - in % s, 0)``; ``pad_before = pad // 2`` and the rest goes after.
  """
  k = effective_kernel(kernel, dilation)
  if in_size % stride == 0:
    total = max(k - stride, 0)
  else:
    total = max(k - in_size % stride, 0)
  return total // 2, total - total // 2


def padding_pairs(padding, in_sizes, kernel_sizes, strides, dilations=None):
  """Explicit (lo, hi) pairs for every padding form the ops accept.

  Modes from their definitions: VALID none, SAME as TF, FULL ``k_eff - 1`` both sides
  (every partial overlap), CAUSAL ``k_eff - 1`` on the left only (1-D).
  """
  ndim = len(in_sizes)
  dilations = dilations or (1,) * ndim
  k_eff = [effective_kernel(k, d) for k, d in zip(kernel_sizes, dilations)]
  if isinstance(padding, str):
    if padding == 'VALID':
      return [(0, 0)] * ndim
    if padding == 'SAME':
      return [same_padding_tf(n, k, s, d)
              for n, k, s, d in zip(in_sizes, kernel_sizes, strides, dilations)]
    if padding == 'FULL':
      return [(k - 1, k - 1) for k in k_eff]
    if padding == 'CAUSAL' and ndim == 1:
      return [(k_eff[0] - 1, 0)]
    raise ValueError(padding)
  if isinstance(padding, int):
    return [(padding, padding)] * ndim
  if ndim == 1 and len(padding) == 2 and all(isinstance(p, int) for p in padding):
    return [tuple(padding)]
  return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def conv_ref(x, kernel, stride=1, padding='VALID', dilation=1, groups=1):
  """N-D cross-correlation from the definition, batched or unbatched.

  ``y[n, o, g*Cg_out + j] = sum_{tap, i} xpad[n, o*s + tap*d, g*Cg_in + i] *
  w[tap, i, g*Cg_out + j]`` where ``xpad`` is ``x`` with explicit zero padding and
  group ``g`` sees only its own slice of input channels.
  """
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  nd = kernel.ndim - 2
  unbatched = x.ndim == nd + 1
  if unbatched:
    x = x[None]
  strides, dilations = as_tuple(stride, nd), as_tuple(dilation, nd)
  ksize = kernel.shape[:nd]
  pads = padding_pairs(padding, x.shape[1:-1], ksize, strides, dilations)
  xp = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)])
  cin_g = x.shape[-1] // groups
  cout_g = kernel.shape[-1] // groups
  out_sizes = [(xp.shape[1 + i] - effective_kernel(ksize[i], dilations[i])) // strides[i] + 1
               for i in range(nd)]
  y = np.zeros((x.shape[0], *out_sizes, kernel.shape[-1]))
  for b in range(x.shape[0]):
    for o in itertools.product(*map(range, out_sizes)):
      for tap in itertools.product(*map(range, ksize)):
        pos = tuple(o[i] * strides[i] + tap[i] * dilations[i] for i in range(nd))
        for g in range(groups):
          ci, co = slice(g * cin_g, (g + 1) * cin_g), slice(g * cout_g, (g + 1) * cout_g)
          y[(b, *o, co)] += xp[(b, *pos, ci)] @ kernel[(*tap, slice(None), co)]
  return y[0] if unbatched else y


def _windows(x, window, stride, pads):
  """Yields (batch, output index, per-dim lists of in-bounds input indices).

  Windows are placed in padded coordinates and mapped back to the input; indices
  that fall in the padding are left out.
  """
  sizes = x.shape[1:-1]
  out_sizes = [(n + lo + hi - k) // s + 1
               for n, k, s, (lo, hi) in zip(sizes, window, stride, pads)]
  for b in range(x.shape[0]):
    for o in itertools.product(*map(range, out_sizes)):
      idx = [[j for j in range(oi * s - lo, oi * s - lo + k) if 0 <= j < n]
             for oi, s, (lo, _), k, n in zip(o, stride, pads, window, sizes)]
      yield b, o, idx


def _pool_out_shape(x, window, stride, pads):
  sizes = x.shape[1:-1]
  return (x.shape[0],) + tuple((n + lo + hi - k) // s + 1 for n, k, s, (lo, hi)
                               in zip(sizes, window, stride, pads)) + (x.shape[-1],)


def max_pool_ref(x, window, stride, pads):
  """Max over the in-bounds elements of each window (padding never wins)."""
  x = np.asarray(x)
  y = np.zeros(_pool_out_shape(x, window, stride, pads), x.dtype)
  for b, o, idx in _windows(x, window, stride, pads):
    block = x[b][np.ix_(*idx, np.arange(x.shape[-1]))]
    y[(b, *o)] = block.reshape(-1, x.shape[-1]).max(axis=0)
  return y


def avg_pool_ref(x, window, stride, pads, count_include_pad=True):
  """Window mean; padded zeros count in the divisor only if ``count_include_pad``."""
  x = np.asarray(x, np.float64)
  y = np.zeros(_pool_out_shape(x, window, stride, pads))
  for b, o, idx in _windows(x, window, stride, pads):
    block = x[b][np.ix_(*idx, np.arange(x.shape[-1]))].reshape(-1, x.shape[-1])
    divisor = np.prod(window) if count_include_pad else block.shape[0]
    y[(b, *o)] = block.sum(axis=0) / divisor
  return y


def avg_pool_vjp_ref(x_shape, window, stride, pads, cotangent, count_include_pad=True):
  """Gradient of ``sum(avg_pool(x) * cotangent)``: each output spreads its cotangent
  evenly (divided by the same divisor as the forward pass) over its in-bounds inputs."""
  cotangent = np.asarray(cotangent, np.float64)
  grad = np.zeros(x_shape)
  for b, o, idx in _windows(np.zeros(x_shape), window, stride, pads):
    divisor = np.prod(window) if count_include_pad else np.prod([len(i) for i in idx])
    grad[b][np.ix_(*idx, np.arange(x_shape[-1]))] += cotangent[(b, *o)] / divisor
  return grad


def max_pool_argmax_ref(x, window, stride, pads):
  """Input coordinates of the first maximum (row-major in the window) of each output.

  Returns an int array of shape ``out_shape + (ndim,)``; the max-pool derivative
  routes each output's (co)tangent to exactly that element.
  """
  x = np.asarray(x)
  nd = len(window)
  out = np.zeros(_pool_out_shape(x, window, stride, pads) + (nd,), np.int64)
  for b, o, idx in _windows(x, window, stride, pads):
    positions = list(itertools.product(*idx))  # row-major order within the window
    for c in range(x.shape[-1]):
      values = [x[(b, *p, c)] for p in positions]
      out[(b, *o, c)] = positions[int(np.argmax(values))]  # argmax: first occurrence
  return out


def max_pool_vjp_ref(x, window, stride, pads, cotangent):
  """Gradient of ``sum(max_pool(x) * cotangent)`` routed to the first maxima."""
  x, cotangent = np.asarray(x), np.asarray(cotangent, np.float64)
  arg = max_pool_argmax_ref(x, window, stride, pads)
  grad = np.zeros(x.shape)
  for out_index in np.ndindex(*cotangent.shape):
    b, c = out_index[0], out_index[-1]
    grad[(b, *arg[out_index], c)] += cotangent[out_index]
  return grad


def max_pool_jvp_ref(x, window, stride, pads, tangent):
  """Tangent of ``max_pool`` at ``x``: each output copies the tangent of its first max."""
  x, tangent = np.asarray(x), np.asarray(tangent, np.float64)
  arg = max_pool_argmax_ref(x, window, stride, pads)
  out = np.zeros(arg.shape[:-1])
  for out_index in np.ndindex(*out.shape):
    b, c = out_index[0], out_index[-1]
    out[out_index] = tangent[(b, *arg[out_index], c)]
  return out


def reduce_window_max_pool(x, window, stride, pads):
  """Max pooling with ``lax.reduce_window`` (JAX, not cnn_jax), batched ``x``.

  A second, independent implementation whose JAX derivative (``select_and_scatter``)
  also routes the gradient to the first maximum of each window.
  """
  import jax.numpy as jnp
  from jax import lax
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *stride, 1),
                           ((0, 0), *pads, (0, 0)))
