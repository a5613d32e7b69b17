"""Independent reference implementations for the op and model tests.

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


# ---------------------------------------------------------------- model forward passes
#
# The zoo's architectures in evaluation mode (dropout off, BatchNorm on its running
# statistics), written from the papers' descriptions and the models' docstrings with
# the ops above. ``p`` is the model's ``params`` dict and ``s`` its ``batch_stats``
# (Flax's layer names are the interface; nothing else is shared). Inputs are batched
# and channels-last; everything runs in float64.

ACTIVATIONS = {
    'relu': lambda x: np.maximum(x, 0.0),
    'tanh': np.tanh,
    'lecun_tanh': lambda x: 1.7159 * np.tanh(2.0 / 3.0 * x),
    'elu': lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}


def dense_ref(x, layer):
  """``x @ kernel + bias`` of a Dense layer's parameters."""
  return np.asarray(x, np.float64) @ layer['kernel'] + layer['bias']


def batch_norm_ref(x, layer, stats, eps):
  """Inference-mode BatchNorm: ``(x - mean) / sqrt(var + eps) * scale + bias``."""
  return (x - stats['mean']) / np.sqrt(stats['var'] + eps) * layer['scale'] + layer['bias']


def _conv_layer(x, layer, stride=1, padding='VALID', groups=1):
  y = conv_ref(x, layer['kernel'], stride=stride, padding=padding, groups=groups)
  return y + layer['bias'] if 'bias' in layer else y


def _conv_bn(x, p, s, name, stride=1, padding=None, bn_eps=None, act=ACTIVATIONS['relu']):
  """Conv (padding ``k // 2`` unless given) -> BatchNorm if ``name + '_bn'`` exists -> act."""
  k = p[name]['kernel'].shape[0]
  y = _conv_layer(x, p[name], stride, k // 2 if padding is None else padding)
  if f'{name}_bn' in p:
    y = batch_norm_ref(y, p[f'{name}_bn'], s[f'{name}_bn'], bn_eps)
  return act(y) if act is not None else y


def _pool(x, kind, window, stride, padding='VALID'):
  """'max' / 'avg' (padded zeros counted) / 'none' pooling with a square window."""
  if kind == 'none':
    return x
  nd = x.ndim - 2
  pads = padding_pairs(padding, x.shape[1:-1], (window,) * nd, (stride,) * nd)
  ref = max_pool_ref if kind == 'max' else avg_pool_ref
  return ref(np.asarray(x, np.float64), (window,) * nd, (stride,) * nd, pads)


def _dense_stack(x, p, names, head, act):
  """Flatten (row-major over (*spatial, C)) -> dense layers with ``act`` -> head."""
  x = np.asarray(x, np.float64).reshape(x.shape[0], -1)
  for name in names:
    x = act(dense_ref(x, p[name]))
  return dense_ref(x, p[head])


def mlp_ref(p, x, hidden, activation='relu'):
  """MLP: flatten -> ``dense{i}`` with activation -> ``head``."""
  return _dense_stack(x, p, [f'dense{i}' for i in range(len(hidden))], 'head',
                      ACTIVATIONS[activation])


def simple_cnn_ref(p, s, x, n_blocks, kernel_size, strides, padding, pool, pool_window,
                   hidden, activation='relu', bn_eps=1e-5, head='dense'):
  """SimpleCNN (and CNN1D): per block conv -> [BN] -> act -> pool, then dense layers.

  The per-block settings are sequences of ``n_blocks`` values; a block has BatchNorm
  where its parameters hold ``conv{i}_bn``. ``head='global_avg'`` averages each channel
  over the spatial axes before the dense layers.
  """
  act = ACTIVATIONS[activation]
  for i in range(n_blocks):
    x = _conv_bn(x, p, s, f'conv{i}', strides[i], padding[i], bn_eps, act)
    x = _pool(x, pool[i], pool_window[i], pool_window[i])
  if head == 'global_avg':
    x = np.asarray(x, np.float64).mean(axis=tuple(range(1, x.ndim - 1)))
  return _dense_stack(x, p, [f'dense{i}' for i in range(len(hidden))], 'head', act)


def lenet5_ref(p, x, hidden, activation='tanh', pool='avg'):
  """LeNet-5: inputs zero-padded to 32x32, C1 -> S2 -> C3 -> S4 -> C5 (5x5 VALID convs,
  2x2 subsampling) -> F6 -> output."""
  act = ACTIVATIONS[activation]
  short = [max(32 - n, 0) for n in x.shape[1:3]]
  x = np.pad(np.asarray(x, np.float64),
             [(0, 0)] + [(d // 2, d - d // 2) for d in short] + [(0, 0)])
  for conv in ('c1', 'c3'):  # each followed by its subsampling layer (S2, S4)
    x = _pool(act(_conv_layer(x, p[conv])), pool, 2, 2)
  x = act(_conv_layer(x, p['c5']))
  return _dense_stack(x, p, [f'f{6 + i}' for i in range(len(hidden))], 'output', act)


def alexnet_ref(p, x, groups, stem_stride, stem_padding, hidden):
  """AlexNet: conv1 (stem) .. convN, 3x3/2 max pools after conv1, conv2 and the last
  conv, later convs padded ``k // 2``; ReLU; fc layers; head."""
  relu = ACTIVATIONS['relu']
  n = len(groups)
  for i in range(n):
    layer = p[f'conv{i + 1}']
    k = layer['kernel'].shape[0]
    stride, padding = (stem_stride, stem_padding) if i == 0 else (1, k // 2)
    x = relu(_conv_layer(x, layer, stride, padding, groups[i]))
    if i in (0, 1, n - 1):
      x = _pool(x, 'max', 3, 2)
  return _dense_stack(x, p, [f'fc{n + 1 + i}' for i in range(len(hidden))], 'head', relu)


def googlenet_ref(p, s, x, blocks, bn_eps=1e-3):
  """GoogLeNet (Szegedy et al. 2014, Figure 3 and Table 1) without auxiliary heads.

  conv1 7x7/2 -> 3x3/2 max pool -> conv2 1x1 -> conv3 3x3 -> pool -> inception blocks
  (``blocks`` in order; pools after 3b and 4e) -> global average pool -> head. Pools
  are TensorFlow-'SAME'. Each inception block concatenates four branches on channels:
  1x1; 1x1 -> 3x3; 1x1 -> 5x5 (or 3x3); 3x3/1 max pool -> 1x1.
  """
  x = _conv_bn(x, p, s, 'conv1', 2, bn_eps=bn_eps)
  x = _pool(x, 'max', 3, 2, 'SAME')
  x = _conv_bn(x, p, s, 'conv2', bn_eps=bn_eps)
  x = _conv_bn(x, p, s, 'conv3', bn_eps=bn_eps)
  x = _pool(x, 'max', 3, 2, 'SAME')
  for block in blocks:
    bp, bs = p[f'inception{block}'], s.get(f'inception{block}', {})
    branches = [
        _conv_bn(x, bp, bs, 'b1', bn_eps=bn_eps),
        _conv_bn(_conv_bn(x, bp, bs, 'b2_reduce', bn_eps=bn_eps), bp, bs, 'b2', bn_eps=bn_eps),
        _conv_bn(_conv_bn(x, bp, bs, 'b3_reduce', bn_eps=bn_eps), bp, bs, 'b3', bn_eps=bn_eps),
        _conv_bn(_pool(x, 'max', 3, 1, 'SAME'), bp, bs, 'b4', bn_eps=bn_eps),
    ]
    x = np.concatenate(branches, axis=-1)
    if block in ('3b', '4e'):
      x = _pool(x, 'max', 3, 2, 'SAME')
  return dense_ref(x.mean(axis=(1, 2)), p['head'])


def resnet_ref(p, s, x, stage_sizes, stage_strides, block, shortcut, stem_stride, stem_pool,
               stride_in_1x1=False, bn_eps=1e-5):
  """ResNet (He et al. 2015) in evaluation mode.

  Stem conv -> BN -> ReLU -> optional 3x3/2 max pool (padding 1); blocks ``y = F(x)``
  (basic: 3x3, 3x3; bottleneck: 1x1, 3x3, 1x1 with 4x channels), each conv followed by
  BN, ReLU inside F; the output is ``relu(F(x) + shortcut(x))``, the shortcut being
  ``x`` itself, or where the shape changes a 1x1 strided conv + BN (option B) or
  subsampling and zero channels (option A); global average pool; head.
  """
  relu = ACTIVATIONS['relu']
  x = _conv_bn(x, p, s, 'stem_conv', stem_stride, bn_eps=bn_eps)
  if stem_pool != 'none':
    x = _pool(x, stem_pool, 3, 2, 1)
  for i, (size, first_stride) in enumerate(zip(stage_sizes, stage_strides)):
    for j in range(size):
      name = f'stage{i + 1}_block{j}'
      bp, bs = p[name], s[name]
      stride = first_stride if j == 0 else 1
      if block == 'basic':
        y = _conv_bn(x, bp, bs, 'conv1', stride, bn_eps=bn_eps)
        y = _conv_bn(y, bp, bs, 'conv2', bn_eps=bn_eps, act=None)
      else:
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        y = _conv_bn(x, bp, bs, 'conv1', s1, bn_eps=bn_eps)
        y = _conv_bn(y, bp, bs, 'conv2', s3, bn_eps=bn_eps)
        y = _conv_bn(y, bp, bs, 'conv3', bn_eps=bn_eps, act=None)
      if stride != 1 or x.shape[-1] != y.shape[-1]:
        if shortcut == 'B':
          x = _conv_bn(x, bp, bs, 'proj', stride, bn_eps=bn_eps, act=None)
        else:
          x = x[:, ::stride, ::stride]
          x = np.pad(x, [(0, 0)] * 3 + [(0, y.shape[-1] - x.shape[-1])])
      x = relu(y + x)
  return dense_ref(x.mean(axis=(1, 2)), p['head'])


# --------------------------------------------------------------------------- resizing


def _bilinear_weights(n, start, length, out):
  """``(out, n)`` weights resampling the input span ``[start, start + length)`` to ``out``
  samples with a triangle (linear) kernel.

  Pixel ``j`` covers ``[j, j + 1)`` and is sampled at its centre ``j + 0.5``; output
  ``i`` sits at ``start + (i + 0.5) * length / out`` in input coordinates (half-pixel
  centres, as PIL, OpenCV and torch's ``align_corners=False``). When shrinking, the
  kernel widens by ``length / out`` (antialiasing, as PIL); each row is normalised
  over the pixels inside the image, which clamps at the borders.
  """
  stretch = max(1.0, length / out)
  centres = start + (np.arange(out) + 0.5) * length / out
  w = np.maximum(0.0, 1 - np.abs(np.arange(n)[None, :] + 0.5 - centres[:, None]) / stretch)
  return w / w.sum(axis=1, keepdims=True)


def crop_and_resize_ref(image, box, size):
  """Antialiased bilinear resize of the box ``[y0, x0, h, w]`` of ``(H, W, C)`` to ``size``."""
  y0, x0, h, w = box
  rows = _bilinear_weights(image.shape[0], y0, h, size[0])
  cols = _bilinear_weights(image.shape[1], x0, w, size[1])
  return np.einsum('ih,hwc,jw->ijc', rows, np.asarray(image, np.float64), cols)
