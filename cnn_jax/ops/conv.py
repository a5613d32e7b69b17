"""Convolutions as pure functions on channels-last arrays.

Like every deep-learning framework, :func:`conv1d`, :func:`conv2d` and :func:`conv`
compute a *cross-correlation*: the kernel slides over the input without being flipped,
``y[i] = sum_k x[i * stride + k * dilation] * w[k]``. Since the kernel is learned, the
flip makes no difference to what a network can represent. :func:`convolve1d` and
:func:`convolve2d` are the true convolutions of signal processing (kernel flipped, like
``numpy.convolve`` and ``scipy.signal.convolve2d``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching, lax

from cnn_jax.ops import _validate
from cnn_jax.ops.shapes import Padding, check_fits, normalize_tuple, resolve_padding

_SPATIAL_LETTERS = 'DHW'


def _dimension_numbers(nsp: int):
  letters = _SPATIAL_LETTERS[-nsp:]
  return lax.ConvDimensionNumbers(*(
      lax.conv_dimension_numbers((1,) * (nsp + 2), (1,) * (nsp + 2),
                                 (f'N{letters}C', f'{letters}IO', f'N{letters}C'))))


# XLA:CPU hands a 2-D f32 convolution to YNNPACK only when it has more than 16 input
# or output channels (``IsConvolutionOpSupportedByYnn`` in XLA's ynn_support.cc); the
# rest run on Eigen, which is slow for a single input channel (LeNet-5's C1 1->6:
# 4.9 ms against 1.9 ms as 1->17 on YNNPACK, batch 128; experiments/results/perf_notes.md).
_YNN_MIN_CHANNELS = 17


def _on_cpu() -> bool:
  """Whether programs traced now compile for XLA:CPU, where the formulations below pay."""
  return jax.default_backend() == 'cpu'


# The formulations that only pay on XLA:CPU; elsewhere they must not run.
CPU_ONLY_FORMULATIONS = ('channel_widening', 'space_to_depth', 'input_grad_col2im')
_recorders: list[list[str]] = []


@contextlib.contextmanager
def record_formulations():
  """Collects which formulation each convolution traced inside the block chose.

  The choice depends on the backend and the shapes, and leaves no trace in the
  values: this is how a check proves which path ran (the accelerator check: the
  CPU-only ones, :data:`CPU_ONLY_FORMULATIONS`, are off on GPU/TPU). Names:
  ``'dense_matmul'``, ``'space_to_depth'``, ``'fast_grad'``, ``'xla'`` (the forward
  call); ``'channel_widening'`` (inside a forward convolution);
  ``'input_grad_col2im'``, ``'input_grad_conv'`` (the input gradient of ``fast_grad``).

  Choices are made while tracing, so a jitted function already traced outside the
  block records nothing.

  Yields:
    The list the names are appended to, in tracing order.
  """
  names = []
  _recorders.append(names)
  try:
    yield names
  finally:
    _recorders.remove(names)


def _chose(name: str) -> None:
  for names in _recorders:
    names.append(name)


def _forward_conv(x, kernel, strides, pads, lhs_dilation, rhs_dilation, precision):
  """``lax.conv_general_dilated`` (channels-last) that ``jax.vmap`` batches without groups.

  vmap over both the input and the kernel (replicas of a model) would by default
  become one grouped convolution, which XLA:CPU runs several times slower than the
  separate convolutions. Here a shared kernel folds the vmapped axis into the batch,
  a shared input stacks the kernels along the output channels, and per-replica
  inputs and kernels run as one ordinary convolution per replica.

  On CPU a single-channel 2-D input gets zero output channels appended up to
  ``_YNN_MIN_CHANNELS`` (sliced off again), which moves it from Eigen to YNNPACK.
  """
  nsp = kernel.ndim - 2

  @custom_batching.custom_vmap
  def conv_op(x, kernel):
    c_out = kernel.shape[-1]
    widen = (_YNN_MIN_CHANNELS - c_out if x.shape[-1] == 1 and c_out < _YNN_MIN_CHANNELS
             and nsp == 2 and lhs_dilation == (1,) * nsp and _on_cpu() else 0)
    if widen:
      _chose('channel_widening')
      kernel = jnp.pad(kernel, ((0, 0),) * (nsp + 1) + ((0, widen),))
    y = lax.conv_general_dilated(x, kernel, strides, pads, lhs_dilation=lhs_dilation,
                                 rhs_dilation=rhs_dilation,
                                 dimension_numbers=_dimension_numbers(nsp),
                                 precision=precision)
    return y[..., :c_out] if widen else y

  @conv_op.def_vmap
  def _batched(axis_size, in_batched, x, kernel):
    x_batched, kernel_batched = in_batched
    if not kernel_batched:
      y = conv_op(x.reshape(-1, *x.shape[2:]), kernel)
      return y.reshape(axis_size, -1, *y.shape[1:]), True
    if not x_batched:
      stacked = jnp.moveaxis(kernel, 0, -2).reshape(*kernel.shape[1:-1], -1)
      y = conv_op(x, stacked)
      return jnp.moveaxis(y.reshape(*y.shape[:-1], axis_size, -1), -2, 0), True
    return jnp.stack([conv_op(x[i], kernel[i]) for i in range(axis_size)]), True

  return conv_op(x, kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _conv_fast_grad(x, kernel, strides, pads, dilations, precision):
  """An ungrouped channels-last convolution whose gradients are plain forward ops.

  XLA's own gradient convolutions (transposed dimension numbers, lhs dilation for
  the weight gradient) are fast in a standalone ``jit`` on CPU but 8-20x slower
  inside ``lax.scan``, where a whole epoch runs as one program (see
  ``experiments/results/perf_notes.md``). Here the input gradient is a forward
  convolution of the output gradient with the flipped, in/out-swapped kernel (on
  CPU, strided ones use :func:`_input_grad_col2im`), and the kernel gradient is a
  forward convolution or per-offset matmuls (:func:`_kernel_grad`); all run at full
  speed anywhere, and under ``jax.vmap`` (see :func:`_forward_conv`). Values equal
  XLA's gradients up to float reassociation (``tests/test_conv.py``).
  """
  nsp = kernel.ndim - 2
  return _forward_conv(x, kernel, strides, pads, (1,) * nsp, dilations, precision)


def _conv_fast_grad_fwd(x, kernel, strides, pads, dilations, precision):
  return _conv_fast_grad(x, kernel, strides, pads, dilations, precision), (x, kernel)


def _conv_fast_grad_bwd(strides, pads, dilations, precision, residuals, dy):
  x, kernel = residuals
  nsp = kernel.ndim - 2
  ksize, in_sizes, out_sizes = kernel.shape[:nsp], x.shape[1:-1], dy.shape[1:-1]
  dw = _kernel_grad(x, dy, ksize, strides, pads, dilations, precision)
  if any(s > 1 for s in strides) and _on_cpu():
    _chose('input_grad_col2im')
    return _input_grad_col2im(dy, kernel, in_sizes, strides, pads, dilations, precision), dw
  # Input gradient: dx[i] = sum_k dy_up[i + lo - k*d] w[k], where dy_up holds dy[o] at
  # o*s (zeros between): a correlation of dy_up with the flipped kernel.
  _chose('input_grad_conv')
  grad_pads = []
  for n, o, k, s, d, (lo, _) in zip(in_sizes, out_sizes, ksize, strides, dilations, pads):
    left = (k - 1) * d - lo
    grad_pads.append((left, n - (o - 1) * s - 1 + lo))
  flipped = jnp.swapaxes(jnp.flip(kernel, tuple(range(nsp))), -1, -2)
  dx = _forward_conv(dy, flipped, (1,) * nsp, grad_pads, strides, dilations, precision)
  return dx, dw


def _input_grad_col2im(dy, kernel, in_sizes, strides, pads, dilations, precision):
  """The input gradient as matmuls and shifted copies (col2im), without a convolution.

  ``dy @ w^T`` gives, for every output position, the gradient of the patch it read.
  Those patch gradients are put back in place and summed over the kernel offsets:
  along the trailing spatial axes by zero-padding each offset's slice into position
  (zeros between strided positions), along the first spatial axis by a matmul with a
  0/1 placement matrix. The matmul keeps the sum materialised: written as adds only,
  XLA fused the whole sum into a consumer that reads each value four times (a 2x2
  max pool's gradient) and recomputed it per read (LeNet-5's C3: 1.2 -> 8.9 ms).

  Used on CPU for strided convolutions, whose flipped-kernel form is an lhs-dilated
  convolution over mostly zeros, which XLA:CPU runs on its slower Eigen path
  (ResNet-20's 16->32 stride-2 conv at batch 128: 9.8 -> 3.0 ms).
  """
  nsp = kernel.ndim - 2
  ksize, c_in, c_out = kernel.shape[:nsp], kernel.shape[-2], kernel.shape[-1]
  out_sizes = dy.shape[1:-1]
  w_t = jnp.moveaxis(kernel.reshape(-1, c_in, c_out), -1, 0).reshape(c_out, -1)
  patches = jnp.matmul(dy, w_t, precision=precision).reshape(*dy.shape[:-1], *ksize, c_in)

  # Trailing axes: pad every offset's slice into place and sum.
  rest = list(zip(in_sizes, out_sizes, ksize, strides, dilations, pads))[1:]
  q = 0
  for offset in itertools.product(*(range(k) for k in ksize[1:])):
    config = [(0, 0, 0)] * 2  # batch, first output axis
    for (n, o, _, s, d, (lo, _)), j in zip(rest, offset):
      low = j * d - lo  # where the offset's first output lands, in unpadded coordinates
      config.append((low, n - low - (o - 1) * s - 1, s - 1))
    config += [(0, 0, 0)] * 2  # first kernel axis, channels
    part = patches[(slice(None),) * (nsp + 2) + offset]
    q = q + lax.pad(part, jnp.zeros((), dy.dtype), config)
  # First axis: one matmul over (output position, kernel offset) with a 0/1 matrix
  # whose [i, p, j] is 1 where output p read input i through kernel offset j.
  n, o, k, s, d, (lo, _) = (in_sizes[0], out_sizes[0], ksize[0], strides[0], dilations[0],
                            pads[0])
  place = (np.arange(n)[:, None, None] ==
           np.arange(o)[None, :, None] * s + np.arange(k)[None, None, :] * d - lo)
  rest_axes = list(range(4, 3 + nsp))
  # HIGHEST: the 0/1 matmul must copy dy's values exactly, also where the default
  # precision would round to bfloat16 (GPU/TPU).
  return jnp.einsum(jnp.asarray(place, dy.dtype), [1, 2, 3],
                    q, [0, 2, *rest_axes, 3, 3 + nsp], [0, 1, *rest_axes, 3 + nsp],
                    precision=lax.Precision.HIGHEST)


def _kernel_grad(x, dy, ksize, strides, pads, dilations, precision):
  """``dw[k] = sum over (n, o) of x_pad[n, o*s + k*d] (x) dy[n, o]`` without XLA's own
  weight-gradient convolution (slow inside ``lax.scan`` on CPU).

  Unstrided: one forward convolution with the batch as the contracted feature axis,
  ``x`` as ``(C_in, *spatial, N)`` and ``dy`` as a ``(*out_spatial, N, C_out)``
  kernel; XLA:CPU gives it to YNNPACK (N > 16 features). Against the per-offset
  matmuls it replaced, at batch 128: LeNet-5's C1 8.7 -> 2.5 ms, ResNet-20's 16->16
  3x3 16-37 -> 10 ms. Strided: one ``(C_in x M) @ (M x C_out)`` matmul per kernel
  offset, which stayed faster there (4.9 against 10.2 ms for ResNet-20's 16->32
  stride 2), as the convolution would need a dilated "kernel".
  """
  nsp = len(ksize)
  if all(s == 1 for s in strides):
    x_t = jnp.moveaxis(x, (0, -1), (-1, 0))
    dy_t = jnp.moveaxis(dy, 0, -2)
    dw = _forward_conv(x_t, dy_t, dilations, pads, (1,) * nsp, (1,) * nsp, precision)
    # x_pad can be longer than the last window needs (VALID drops a remainder).
    dw = dw[(slice(None), *(slice(k) for k in ksize))]
    return jnp.moveaxis(dw, 0, -2)
  out_sizes = dy.shape[1:-1]
  x_pad = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  taps = []
  for offset in itertools.product(*(range(k) for k in ksize)):
    start = (0, *(j * d for j, d in zip(offset, dilations)), 0)
    limit = (x.shape[0], *(st + (o - 1) * s + 1 for st, o, s in
                           zip(start[1:-1], out_sizes, strides)), x.shape[-1])
    window = lax.slice(x_pad, start, limit, (1, *strides, 1))
    taps.append(jnp.einsum(window.reshape(-1, x.shape[-1]), [0, 1],
                           dy.reshape(-1, dy.shape[-1]), [0, 2], [1, 2],
                           precision=precision))
  return jnp.stack(taps).reshape(*ksize, x.shape[-1], dy.shape[-1])


_conv_fast_grad.defvjp(_conv_fast_grad_fwd, _conv_fast_grad_bwd)


def _space_to_depth_conv(x, kernel, pads, precision, fast_grad, block: int = 2):
  """A stride-1 2-D convolution computed on ``block x block`` pixel blocks.

  Each output block of ``block x block`` positions is one output pixel of a
  convolution over the input's blocks (space-to-depth): ``block**2 * C_in`` input
  and ``block**2 * C_out`` output channels and a ``ceil((block + k - 1) / block)``
  kernel whose taps are the original ones, rearranged (zeros where a block offset
  falls outside it). About 1.4x the multiply-adds for a 5x5 kernel, but channel
  counts that XLA:CPU gives to YNNPACK instead of its slow Eigen path for few
  channels. At batch 128: LeNet-5's C1 (1 -> 6) forward 2.2 -> 1.3 ms; C3 (6 -> 16)
  forward and both gradients 5.5 -> 3.9 ms. 3x3 kernels got slower, so the caller
  uses it for 5x5 and larger only.
  """
  n, c_in = x.shape[0], x.shape[-1]
  (kh, kw), c_out = kernel.shape[:2], kernel.shape[-1]
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  out = [size - k + 1 for size, k in zip(x.shape[1:3], (kh, kw))]
  blocks = [-(-o // block) for o in out]  # output blocks per axis
  taps = [-(-(block + k - 1) // block) for k in (kh, kw)]  # the blocked kernel's size
  # Zero-pad the input to whole blocks covering every window.
  x = jnp.pad(x, ((0, 0), *((0, block * (b + t - 1) - size) for b, t, size in
                            zip(blocks, taps, x.shape[1:3])), (0, 0)))
  hb, wb = x.shape[1] // block, x.shape[2] // block
  x = x.reshape(n, hb, block, wb, block, c_in).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(n, hb, wb, block * block * c_in)
  # blocked[a, b, (q, p, c), (r, s, o)] = kernel[block*a + q - r, block*b + p - s, c, o].
  a, b, q, p, r, t = np.ix_(*(np.arange(m) for m in (*taps, block, block, block, block)))
  i, j = block * a + q - r, block * b + p - t
  inside = (i >= 0) & (i < kh) & (j >= 0) & (j < kw)
  index = np.where(inside, i * kw + j, kh * kw)  # kh * kw: an appended zero tap
  flat = jnp.concatenate([kernel.reshape(kh * kw, c_in, c_out),
                          jnp.zeros((1, c_in, c_out), kernel.dtype)])
  blocked = flat[index].transpose(0, 1, 2, 3, 6, 4, 5, 7)
  blocked = blocked.reshape(*taps, block * block * c_in, block * block * c_out)
  y = conv(x, blocked, precision=precision, fast_grad=fast_grad)
  y = y.reshape(n, *blocks, block, block, c_out).transpose(0, 1, 3, 2, 4, 5)
  y = y.reshape(n, block * blocks[0], block * blocks[1], c_out)
  return y[:, :out[0], :out[1]]


def _conv_nd(op: str, x, kernel, stride, padding, dilation, groups, precision, fast_grad,
             spatial_dims: int | None = None):
  """Shared implementation of :func:`conv`, :func:`conv1d` and :func:`conv2d`."""
  kernel = jnp.asarray(kernel)
  nsp = kernel.ndim - 2
  if spatial_dims is not None and nsp != spatial_dims:
    letters = ('K', 'KH, KW', 'KD, KH, KW')[spatial_dims - 1]
    raise ValueError(f'{op}: kernel must have shape ({letters}, C_in // groups, C_out), '
                     f'got kernel.shape={tuple(kernel.shape)}')
  if not 1 <= nsp <= 3:
    raise ValueError(f'{op}: kernel must have shape (*kernel_size, C_in // groups, C_out) '
                     f'with 1 to 3 spatial dimensions, got kernel.shape={tuple(kernel.shape)}')
  x, unbatched = _validate.add_batch_axis(op, x, nsp)
  given_shape = x.shape[1:] if unbatched else x.shape  # quote the caller's shape in errors
  in_sizes, c_in = x.shape[1:-1], x.shape[-1]
  ksize, k_in, c_out = kernel.shape[:nsp], kernel.shape[-2], kernel.shape[-1]
  if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
    raise ValueError(f'{op}: groups must be an int >= 1, got groups={groups!r}')
  if c_in % groups or c_out % groups:
    raise ValueError(f'{op}: groups={groups} must divide both the input channels '
                     f'(x.shape={given_shape}, C_in={c_in}) and the output channels '
                     f'(kernel.shape={tuple(kernel.shape)}, C_out={c_out})')
  if k_in * groups != c_in:
    raise ValueError(
        f'{op}: channel mismatch: x has C_in={c_in} channels (x.shape='
        f'{given_shape}) but kernel.shape={tuple(kernel.shape)} expects '
        f'C_in // groups = {k_in} with groups={groups}, i.e. C_in={k_in * groups}')
  if 0 in ksize or c_out == 0:
    raise ValueError(f'{op}: kernel.shape={tuple(kernel.shape)} has a zero-sized axis')
  strides = normalize_tuple(stride, nsp, 'stride')
  dilations = normalize_tuple(dilation, nsp, 'dilation')
  pads = resolve_padding(padding, in_sizes, ksize, strides, dilations)
  check_fits(op, given_shape, in_sizes, ksize, pads, dilations)

  dtype = jnp.result_type(x, kernel)
  x, kernel = x.astype(dtype), kernel.astype(dtype)
  if groups == 1 and all(n + lo + hi == k and d == 1 for n, (lo, hi), k, d in
                         zip(in_sizes, pads, ksize, dilations)):
    # The kernel covers the whole (padded) input once: a dense layer. Its matmul is
    # several times faster than a convolution on CPU, backward most of all
    # (LeNet-5's C5: input gradient 2.6 -> 0.4 ms), and differentiable in every mode.
    _chose('dense_matmul')
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    y = jnp.matmul(x.reshape(x.shape[0], -1), kernel.reshape(-1, c_out), precision=precision)
    y = y.reshape(x.shape[0], *(1,) * nsp, c_out)
  elif (groups == 1 and nsp == 2 and strides == (1, 1) and dilations == (1, 1)
        and min(ksize) >= 5 and c_in < 8 and c_out <= 16 and _on_cpu()):
    _chose('space_to_depth')
    y = _space_to_depth_conv(x, kernel, pads, precision, fast_grad)
  elif groups == 1 and fast_grad:
    _chose('fast_grad')
    y = _conv_fast_grad(x, kernel, strides, tuple(pads), dilations, precision)
  else:
    _chose('xla')
    y = lax.conv_general_dilated(x, kernel, window_strides=strides, padding=pads,
                                 rhs_dilation=dilations,
                                 dimension_numbers=_dimension_numbers(nsp),
                                 feature_group_count=groups, precision=precision)
  return y[0] if unbatched else y


def conv(x, kernel, *, stride=1, padding: Padding = 'VALID', dilation=1, groups: int = 1,
         precision=None, fast_grad: bool = True):
  """N-D cross-correlation (1-D, 2-D or 3-D), the spatial rank taken from the kernel.

  Args:
    x: input of shape ``(N, *spatial, C_in)`` or unbatched ``(*spatial, C_in)``.
    kernel: weights of shape ``(*kernel_size, C_in // groups, C_out)``.
    stride: int or one int per spatial dimension, >= 1.
    padding: ``'VALID'``, ``'SAME'`` (output ``ceil(in / stride)``, extra pad at the end),
      ``'FULL'``, ``'CAUSAL'`` (1-D only), an int for every side, or per-dimension
      entries (an int or a ``(lo, hi)`` pair each). See
      :func:`cnn_jax.ops.shapes.resolve_padding`.
    dilation: kernel dilation, int or one per spatial dimension, >= 1.
    groups: number of feature groups; ``C_in`` and ``C_out`` must be divisible by it
      (``groups == C_in`` gives a depthwise convolution).
    precision: passed to ``lax.conv_general_dilated`` (e.g. ``lax.Precision.HIGHEST``
      to avoid reduced-precision passes on GPU/TPU).
    fast_grad: differentiate (reverse mode) through forward convolutions and matmuls
      instead of XLA's gradient convolutions, which are 8-20x slower on CPU inside
      ``lax.scan``; the values are the same up to float reassociation. Forward-mode
      and higher-order differentiation (``jax.jvp``, ``jax.jacfwd``, gradients of
      gradients) need ``fast_grad=False``. Grouped convolutions always use XLA's
      gradients.

  Returns:
    Array of shape ``(N, *out_spatial, C_out)`` (no batch axis if ``x`` had none),
    in the promoted dtype of ``x`` and ``kernel``.

  Raises:
    ValueError: for a wrong rank, mismatched channels, bad groups/stride/dilation/
      padding, or a kernel larger than the padded input; checked at trace time.
  """
  return _conv_nd('conv', x, kernel, stride, padding, dilation, groups, precision, fast_grad)


def conv1d(x, kernel, *, stride=1, padding: Padding = 'VALID', dilation=1, groups: int = 1,
           precision=None, fast_grad: bool = True):
  """1-D cross-correlation over the width axis.

  Args:
    x: ``(N, W, C_in)`` or unbatched ``(W, C_in)``.
    kernel: ``(K, C_in // groups, C_out)``.
    stride, padding, dilation, groups, precision, fast_grad: see :func:`conv`; ``'CAUSAL'``
      padding puts ``(K - 1) * dilation`` zeros on the left only.

  Returns:
    ``(N, W_out, C_out)`` (or ``(W_out, C_out)``) with
    ``W_out = floor((W + lo + hi - (K - 1) * dilation - 1) / stride) + 1``.
  """
  return _conv_nd('conv1d', x, kernel, stride, padding, dilation, groups, precision,
                  fast_grad, spatial_dims=1)


def conv2d(x, kernel, *, stride=1, padding: Padding = 'VALID', dilation=1, groups: int = 1,
           precision=None, fast_grad: bool = True):
  """2-D cross-correlation over height and width (grayscale C_in=1, RGB C_in=3, ...).

  Each output channel sums over the kernel's full height x width x C_in block, so a
  kernel on an RGB image spans all three colour channels.

  Args:
    x: ``(N, H, W, C_in)`` or unbatched ``(H, W, C_in)``.
    kernel: ``(KH, KW, C_in // groups, C_out)``.
    stride, dilation: int or ``(sh, sw)`` pair.
    padding, groups, precision, fast_grad: see :func:`conv`.

  Returns:
    ``(N, H_out, W_out, C_out)`` (or without the batch axis).
  """
  return _conv_nd('conv2d', x, kernel, stride, padding, dilation, groups, precision,
                  fast_grad, spatial_dims=2)


def convolve1d(a, v, mode: str = 'full'):
  """True 1-D convolution of two signals, kernel flipped, like ``numpy.convolve``.

  ``(a * v)[n] = sum_m a[m] v[n - m]``. For example ``convolve1d([1, 2, 3], [1, 2, 3])``
  is ``[1, 4, 10, 12, 9]``: every partial overlap of the flipped kernel, not the single
  number 36 that summing all pairwise products would give.

  Args:
    a: 1-D signal.
    v: 1-D kernel.
    mode: ``'full'`` (length ``N + M - 1``), ``'same'`` (length ``max(N, M)``, centred
      as numpy does) or ``'valid'`` (length ``max(N, M) - min(N, M) + 1``).

  Returns:
    1-D array in the promoted dtype of ``a`` and ``v``.

  Raises:
    ValueError: for non-1-D or empty inputs or an unknown mode.
  """
  a, v = jnp.asarray(a), jnp.asarray(v)
  for name, arr in (('a', a), ('v', v)):
    if arr.ndim != 1 or arr.shape[0] == 0:
      raise ValueError(f'convolve1d: {name} must be a non-empty 1-D array, got shape '
                       f'{tuple(arr.shape)}')
  if mode not in ('full', 'same', 'valid'):
    raise ValueError(f"convolve1d: mode must be 'full', 'same' or 'valid', got {mode!r}")
  if v.shape[0] > a.shape[0]:
    a, v = v, a  # convolution commutes; numpy also slides the shorter over the longer
  n, m = a.shape[0], v.shape[0]
  full = conv1d(a[:, None], v[::-1, None, None], padding='FULL')[:, 0]
  if mode == 'full':
    return full
  if mode == 'same':
    start = (m - 1) // 2
    return full[start:start + n]
  return full[m - 1:n]


def convolve2d(a, v, mode: str = 'full'):
  """True 2-D convolution of two arrays, kernel flipped on both axes, like
  ``scipy.signal.convolve2d`` (with its default zero fill).

  ``(a * v)[i, j] = sum_{m, n} a[m, n] v[i - m, j - n]``: every output is one weighted
  sum over a window, so the result is an array of windows' sums, not one number per row.

  Args:
    a: 2-D input ``(H, W)``.
    v: 2-D kernel ``(KH, KW)``.
    mode: ``'full'`` (shape ``(H + KH - 1, W + KW - 1)``), ``'same'`` (the shape of
      ``a``, centred as scipy does) or ``'valid'`` (the windows that need no padding,
      ``(|H - KH| + 1, |W - KW| + 1)``; one array must be at least as large as the
      other on both axes, and the larger one is taken as the input, as scipy does).

  Returns:
    2-D array in the promoted dtype of ``a`` and ``v``.

  Raises:
    ValueError: for non-2-D or empty inputs, an unknown mode, or a ``'valid'``
      convolution of arrays neither of which is at least as large as the other.
  """
  a, v = jnp.asarray(a), jnp.asarray(v)
  for name, arr in (('a', a), ('v', v)):
    if arr.ndim != 2 or 0 in arr.shape:
      raise ValueError(f'convolve2d: {name} must be a non-empty 2-D array, got shape '
                       f'{tuple(arr.shape)}')
  if mode not in ('full', 'same', 'valid'):
    raise ValueError(f"convolve2d: mode must be 'full', 'same' or 'valid', got {mode!r}")
  if mode == 'valid':
    a_fits = all(n >= m for n, m in zip(a.shape, v.shape))
    if not a_fits and not all(m >= n for n, m in zip(a.shape, v.shape)):
      raise ValueError(f"convolve2d: mode 'valid' needs one array at least as large as "
                       f'the other on both axes, got a.shape={tuple(a.shape)} and '
                       f'v.shape={tuple(v.shape)}')
    if not a_fits:
      a, v = v, a  # convolution commutes; scipy also slides the smaller over the larger
  (n1, n2), (m1, m2) = a.shape, v.shape
  full = conv2d(a[:, :, None], v[::-1, ::-1, None, None], padding='FULL')[..., 0]
  if mode == 'full':
    return full
  if mode == 'same':
    top, left = (m1 - 1) // 2, (m2 - 1) // 2
    return full[top:top + n1, left:left + n2]
  return full[m1 - 1:n1, m2 - 1:n2]
