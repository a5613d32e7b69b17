"""Shape arithmetic shared by convolution and pooling: argument normalisation,
padding resolution, output sizes and receptive fields.

Everything here is plain Python on static shapes, so it runs at trace time (inside
``jit``) and is usable without JAX (model summaries, configs, teaching plots).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence, Union

# A padding argument as accepted by every op: a mode string, one int for every side,
# or explicit per-dimension entries (an int for both sides, or a (lo, hi) pair).
Padding = Union[str, int, Sequence[Union[int, Sequence[int]]]]

PADDING_MODES = ('VALID', 'SAME', 'FULL', 'CAUSAL')


def normalize_tuple(value, ndim: int, name: str) -> tuple[int, ...]:
  """Turns an int or a length-``ndim`` sequence into a tuple of positive ints.

  Args:
    value: an int (used for every spatial dimension) or a sequence of ``ndim`` ints.
    ndim: number of spatial dimensions.
    name: argument name, used in error messages.

  Returns:
    A tuple of ``ndim`` ints, each >= 1.

  Raises:
    ValueError: if the length is wrong or an entry is not an int >= 1.
  """
  if isinstance(value, int) and not isinstance(value, bool):
    values = (value,) * ndim
  else:
    try:
      values = tuple(value)
    except TypeError:
      raise ValueError(f'{name} must be an int or a sequence of {ndim} ints, '
                       f'got {value!r}') from None
    if len(values) != ndim:
      raise ValueError(f'{name}={value!r} has {len(values)} entries but the op has '
                       f'{ndim} spatial dimension(s); pass one int or {ndim} ints')
  for v in values:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f'{name} must contain ints >= 1, got {name}={value!r}')
  return values


def _explicit_padding(padding, ndim: int) -> tuple[tuple[int, int], ...]:
  """Parses an int / per-dimension padding specification into (lo, hi) pairs."""
  if isinstance(padding, int) and not isinstance(padding, bool):
    entries = [padding] * ndim
  else:
    entries = list(padding)
    # A flat (lo, hi) pair is the natural way to write 1-D padding.
    if (ndim == 1 and len(entries) == 2
        and all(isinstance(e, int) and not isinstance(e, bool) for e in entries)):
      entries = [tuple(entries)]
    if len(entries) != ndim:
      raise ValueError(
          f'padding={padding!r} has {len(entries)} entries but the op has {ndim} '
          f'spatial dimension(s); give one entry per dimension, each an int or a '
          f'(lo, hi) pair')
  pairs = []
  for entry in entries:
    if isinstance(entry, int) and not isinstance(entry, bool):
      pair = (entry, entry)
    else:
      try:
        pair = tuple(entry)
      except TypeError:
        pair = ()
      if len(pair) != 2 or not all(
          isinstance(p, int) and not isinstance(p, bool) for p in pair):
        raise ValueError(f'padding entry {entry!r} in padding={padding!r} must be an '
                         f'int or a (lo, hi) pair of ints')
    if min(pair) < 0:
      raise ValueError(f'padding={padding!r} contains a negative amount; padding must '
                       f'be >= 0 (crop the input instead)')
    pairs.append(pair)
  return tuple(pairs)


def resolve_padding(padding: Padding, in_sizes: Sequence[int], kernel_sizes: Sequence[int],
                    strides: Sequence[int], dilations: Sequence[int] | None = None,
                    ) -> tuple[tuple[int, int], ...]:
  """Resolves a padding argument into explicit (lo, hi) pairs per spatial dimension.

  Modes (case-insensitive):
    * ``'VALID'``: no padding.
    * ``'SAME'``: the XLA/TensorFlow convention, ``out = ceil(in / stride)``; the total
      padding ``max((out - 1) * stride + k_eff - in, 0)`` is split with the extra
      element at the end (``hi``).
    * ``'FULL'``: ``k_eff - 1`` on both sides, every partial overlap is computed (the
      ``mode='full'`` of ``numpy.convolve``).
    * ``'CAUSAL'``: 1-D only, ``k_eff - 1`` on the left: output ``t`` sees inputs ``<= t``.
  where ``k_eff = (k - 1) * dilation + 1`` is the dilated kernel extent.

  Args:
    padding: a mode string, an int for every side, or per-dimension entries.
    in_sizes: spatial input sizes.
    kernel_sizes: kernel (or pooling window) sizes.
    strides: strides.
    dilations: kernel dilations (default 1).

  Returns:
    A tuple of ``(lo, hi)`` pairs, one per spatial dimension.

  Raises:
    ValueError: for an unknown mode, CAUSAL on more than one dimension, or a
      malformed / negative explicit padding.
  """
  ndim = len(in_sizes)
  dilations = dilations or (1,) * ndim
  k_eff = [(k - 1) * d + 1 for k, d in zip(kernel_sizes, dilations)]
  if isinstance(padding, str):
    mode = padding.upper()
    if mode == 'VALID':
      return ((0, 0),) * ndim
    if mode == 'SAME':
      pairs = []
      for n, k, s in zip(in_sizes, k_eff, strides):
        out = ceil_div(n, s)
        total = max((out - 1) * s + k - n, 0)
        pairs.append((total // 2, total - total // 2))
      return tuple(pairs)
    if mode == 'FULL':
      return tuple((k - 1, k - 1) for k in k_eff)
    if mode == 'CAUSAL':
      if ndim != 1:
        raise ValueError(f"padding='CAUSAL' is defined for 1-D inputs only, got {ndim} "
                         f"spatial dimensions; use 'SAME', 'VALID', 'FULL' or explicit "
                         f"(lo, hi) pairs")
      return ((k_eff[0] - 1, 0),)
    raise ValueError(f'unknown padding={padding!r}; use one of {PADDING_MODES}, an int, '
                     f'or explicit (lo, hi) pairs per spatial dimension')
  return _explicit_padding(padding, ndim)


def output_size(size: int, kernel: int, stride: int = 1, padding: Padding = 'VALID',
                dilation: int = 1) -> int:
  """Output length of a convolution or pooling along one dimension.

  ``out = floor((size + lo + hi - k_eff) / stride) + 1`` with ``k_eff = (kernel - 1) *
  dilation + 1``; ``'SAME'`` gives ``ceil(size / stride)``.

  Args:
    size: input length.
    kernel: kernel or window length.
    stride: step between windows.
    padding: any padding accepted by :func:`resolve_padding` for one dimension.
    dilation: spacing between kernel taps.

  Returns:
    The output length; it may be < 1 when the kernel does not fit, which callers
    that build arrays must reject (see :func:`check_fits`).

  Raises:
    ValueError: if kernel, stride or dilation is not an int >= 1, or size < 0.
  """
  normalize_tuple(kernel, 1, 'kernel')
  normalize_tuple(stride, 1, 'stride')
  normalize_tuple(dilation, 1, 'dilation')
  if isinstance(size, bool) or not isinstance(size, int) or size < 0:
    raise ValueError(f'size must be an int >= 0, got size={size!r}')
  (lo, hi), = resolve_padding(padding, (size,), (kernel,), (stride,), (dilation,))
  k_eff = (kernel - 1) * dilation + 1
  return (size + lo + hi - k_eff) // stride + 1


def check_fits(op: str, in_shape: Sequence[int], in_sizes: Sequence[int],
               kernel_sizes: Sequence[int], pads: Sequence[tuple[int, int]],
               dilations: Sequence[int] | None = None, what: str = 'kernel') -> None:
  """Raises if a (dilated) kernel is larger than the padded input in any dimension.

  Args:
    op: name of the calling op, for the message.
    in_shape: full input shape, for the message.
    in_sizes: spatial input sizes.
    kernel_sizes: kernel or window sizes.
    pads: resolved (lo, hi) padding pairs.
    dilations: kernel dilations (default 1).
    what: 'kernel' or 'window', for the message.

  Raises:
    ValueError: naming the dimension, the sizes and how to fix it.
  """
  dilations = dilations or (1,) * len(in_sizes)
  for axis, (n, k, (lo, hi), d) in enumerate(zip(in_sizes, kernel_sizes, pads, dilations)):
    k_eff = (k - 1) * d + 1
    if n + lo + hi < k_eff:
      dil = f' (dilation {d} makes it span {k_eff})' if d > 1 else ''
      raise ValueError(
          f'{op}: {what} size {k}{dil} is larger than the padded input along spatial '
          f'dimension {axis}: input size {n} + padding ({lo}, {hi}) = {n + lo + hi}; '
          f'input shape {tuple(in_shape)}. Use a smaller {what}, more padding, or a '
          f'larger input.')


class LayerGeometry(NamedTuple):
  """Geometry of one conv/pool layer along one spatial axis, for receptive fields.

  Attributes:
    kernel: kernel or window size.
    stride: stride.
    padding: any padding accepted by :func:`resolve_padding` (for one dimension).
    dilation: kernel dilation.
    name: optional label carried into the result.
  """
  kernel: int
  stride: int = 1
  padding: Padding = 'VALID'
  dilation: int = 1
  name: str = ''


class ReceptiveField(NamedTuple):
  """Receptive field of one layer's output units, in input coordinates.

  Attributes:
    name: the layer's label.
    size: number of input positions one output unit sees.
    jump: distance in input positions between adjacent output units.
    start: input coordinate of the centre of the first output unit's field (it can
      be negative or fractional when padding is involved).
    output_size: the layer's output length, or None if no input size was given.
  """
  name: str
  size: int
  jump: int
  start: float
  output_size: int | None


def receptive_field(layers: Sequence[LayerGeometry | tuple],
                    input_size: int | None = None) -> list[ReceptiveField]:
  """Receptive field (size, jump, start) after each layer of a stack, one axis.

  Uses the recurrences (Araujo et al., Distill 2019; Dumoulin & Visin 2016) with
  ``k_eff = (k - 1) * d + 1`` and left padding ``p``::

      jump_out  = jump_in * stride
      size_out  = size_in + (k_eff - 1) * jump_in
      start_out = start_in + ((k_eff - 1) / 2 - p) * jump_in

  starting from ``size = jump = 1, start = 0.5``: position ``i`` covers ``[i, i+1)``,
  so a pixel's centre is at ``i + 0.5``.

  Args:
    layers: a sequence of :class:`LayerGeometry` (or tuples of its fields).
    input_size: input length along this axis. Needed for ``'SAME'`` padding (whose
      left padding depends on the size) and to report output sizes.

  Returns:
    One :class:`ReceptiveField` per layer.

  Raises:
    ValueError: if ``'SAME'`` padding is used without ``input_size``, or the input
      shrinks below one position at some layer.
  """
  size, jump, start, n = 1, 1, 0.5, input_size
  out = []
  for i, layer in enumerate(layers):
    layer = LayerGeometry(*layer) if not isinstance(layer, LayerGeometry) else layer
    name = layer.name or f'layer{i}'
    normalize_tuple(layer.kernel, 1, f'{name}: kernel')
    normalize_tuple(layer.stride, 1, f'{name}: stride')
    normalize_tuple(layer.dilation, 1, f'{name}: dilation')
    if n is None:
      if isinstance(layer.padding, str) and layer.padding.upper() == 'SAME':
        raise ValueError(f"{name}: padding='SAME' depends on the input size; pass "
                         f"input_size to receptive_field")
      n_for_pad = layer.kernel  # any size works for size-independent padding modes
    else:
      n_for_pad = n
    (lo, hi), = resolve_padding(layer.padding, (n_for_pad,), (layer.kernel,),
                                (layer.stride,), (layer.dilation,))
    k_eff = (layer.kernel - 1) * layer.dilation + 1
    start = start + ((k_eff - 1) / 2 - lo) * jump
    size = size + (k_eff - 1) * jump
    jump = jump * layer.stride
    if n is not None:
      n = (n + lo + hi - k_eff) // layer.stride + 1
      if n < 1:
        raise ValueError(f'{name}: the input is too small, its output size would be '
                         f'{n} (kernel {layer.kernel}, stride {layer.stride}, padding '
                         f'{(lo, hi)}, input size {input_size} at the first layer)')
    out.append(ReceptiveField(name, size, jump, start, n))
  return out


def ceil_div(a: int, b: int) -> int:
  """``ceil(a / b)`` for ints without floating point."""
  return -(-a // b)


__all__ = ['Padding', 'PADDING_MODES', 'normalize_tuple', 'resolve_padding', 'output_size',
           'check_fits', 'LayerGeometry', 'ReceptiveField', 'receptive_field', 'ceil_div']
