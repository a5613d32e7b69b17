"""Worked examples of the ops as pictures: 1-D and 2-D convolution, padding, stride,
pooling and dropout.

Each function returns a :class:`~cnn_jax.viz.common.Plot`; every number in its
``data`` (and on the figure) comes from :mod:`cnn_jax.ops`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.patches import Patch

from cnn_jax import ops
from cnn_jax.viz.common import Plot, add_colorbar, bars, new_figure, show_image, write_numbers


def _np(x) -> np.ndarray:
  return np.asarray(jax.device_get(x))


def _conv1d(signal, kernel, **kwargs) -> np.ndarray:
  """One-channel :func:`ops.conv1d` of 1-D arrays."""
  x = jnp.asarray(signal, jnp.float32)[:, None]
  w = jnp.asarray(kernel, jnp.float32)[:, None, None]
  return _np(ops.conv1d(x, w, **kwargs)[:, 0])


def _conv2d(image, kernel, **kwargs) -> np.ndarray:
  """One-output-channel :func:`ops.conv2d` of an ``(H, W, C)`` image and ``(KH, KW, C)``."""
  x = jnp.asarray(image, jnp.float32)
  w = jnp.asarray(kernel, jnp.float32)
  return _np(ops.conv2d(x, w[..., None], **kwargs)[..., 0])


def _gray(image) -> np.ndarray:
  """``(H, W)`` or ``(H, W, 1)`` -> ``(H, W, 1)`` float32."""
  image = np.asarray(image, np.float32)
  return image[..., None] if image.ndim == 2 else image


def conv1d_weighted_sum(signal, kernel, position: int = 0) -> Plot:
  """A 1-D convolution as a sliding weighted sum, one output worked out in full.

  Args:
    signal: 1-D input.
    kernel: 1-D weights.
    position: the output index whose sum is written out.

  Returns:
    Plot with ``data = {'signal', 'kernel', 'output'}`` (``output`` from
    :func:`ops.conv1d`, VALID) and ``'position'``.
  """
  signal, kernel = np.asarray(signal, np.float32), np.asarray(kernel, np.float32)
  out = _conv1d(signal, kernel)
  k = len(kernel)
  fig, axes = new_figure(3, 1, 4.5)
  colors = ['tab:orange' if position <= i < position + k else 'tab:blue'
            for i in range(len(signal))]
  bars(axes[0, 0], signal, 'input x')
  for patch, c in zip(axes[0, 0].patches, colors):
    patch.set_color(c)
  axes[0, 0].legend(handles=[Patch(color='tab:orange', label=f'window of y[{position}]'),
                             Patch(color='tab:blue', label='other inputs')], fontsize=7,
                    loc='upper right')
  bars(axes[1, 0], kernel, f'kernel w = {kernel.tolist()}', color='tab:green')
  def num(v):
    return f'({v:g})' if v < 0 else f'{v:g}'

  terms = ' + '.join(f'{num(w)}·{num(x)}'
                     for w, x in zip(kernel, signal[position:position + k]))
  bars(axes[2, 0], out, f'output y[{position}] = {terms} = {out[position]:g}')
  axes[2, 0].patches[position].set_color('tab:orange')
  axes[2, 0].set_xlim(axes[0, 0].get_xlim())
  axes[2, 0].set_xlabel('position', fontsize=8)
  return Plot(fig, {'signal': signal, 'kernel': kernel, 'output': out, 'position': position})


def edge_filter_1d(signal, kernel=(1.0, -1.0)) -> Plot:
  """The difference kernel over a signal with steps: it answers only at the edges.

  Args:
    signal: 1-D input, e.g. a step.
    kernel: the edge filter; ``(1, -1)`` gives ``y[i] = x[i] - x[i + 1]``.

  Returns:
    Plot with ``data = {'signal', 'kernel', 'output', 'edge_index'}``: the
    :func:`ops.conv1d` output and the index of its maximum.
  """
  signal, kernel = np.asarray(signal, np.float32), np.asarray(kernel, np.float32)
  out = _conv1d(signal, kernel)
  edge = int(np.argmax(out))
  fig, axes = new_figure(2, 1, 3.5)
  bars(axes[0, 0], signal, 'input: a signal with steps')
  # Output i looks at inputs i and i + 1; drawing it at i + 0.5 puts it between them.
  bars(axes[1, 0], out, f'kernel {tuple(float(k) for k in kernel)}: maximum {out[edge]:g} at '
       f'output {edge}, between inputs {edge} and {edge + 1}', x=np.arange(len(out)) + 0.5,
       color='tab:red')
  axes[1, 0].set_xlim(axes[0, 0].get_xlim())
  axes[1, 0].set_xlabel('position (outputs drawn between the two inputs they compare)',
                        fontsize=8)
  return Plot(fig, {'signal': signal, 'kernel': kernel, 'output': out, 'edge_index': edge})


def stride_and_padding_1d(signal, kernel,
                          settings: Sequence[tuple[int, int]] = ((0, 1), (0, 2), (1, 1),
                                                                 (1, 2))) -> Plot:
  """Zero padding and stride, with the output length formula for each setting.

  Args:
    signal: 1-D input of length ``n``.
    kernel: 1-D kernel of length ``k``.
    settings: ``(padding, stride)`` pairs; padding adds that many zeros on each side.

  Returns:
    Plot with ``data = {'outputs': {(p, s): conv1d output}, 'lengths': {(p, s):
    ops.output_size(n, k, s, p)}}``.
  """
  signal, kernel = np.asarray(signal, np.float32), np.asarray(kernel, np.float32)
  n, k = len(signal), len(kernel)
  outputs, lengths = {}, {}
  fig, axes = new_figure(len(settings), 1, 1.6 * len(settings) + 0.4, sharex=True)
  for ax, (p, s) in zip(axes[:, 0], settings):
    out = outputs[(p, s)] = _conv1d(signal, kernel, stride=s, padding=p)
    length = lengths[(p, s)] = ops.output_size(n, k, s, p)
    padded = np.pad(signal, p)
    x = np.arange(-p, n + p)
    ax.bar(x, padded, color='tab:blue', width=0.8, label='input')
    if p:
      pads = np.concatenate([np.arange(-p, 0), np.arange(n, n + p)])
      ax.plot(pads, np.zeros(len(pads)), 's', color='gray', label='zero padding')
    # Output j is centred on its window, which starts at input j * s - p.
    centres = np.arange(len(out)) * s - p + (k - 1) / 2
    # Outputs are separate numbers: markers, no line between them.
    ax.plot(centres, out, 'o', color='tab:red', label='output (at its window centre)')
    ax.set_title(f'kernel {kernel.tolist()}, padding {p}, stride {s}: length '
                 f'floor(({n} + 2·{p} - {k}) / {s}) + 1 = {length}', fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc='upper right')
  axes[-1, 0].set_xlabel('input position (negative and beyond the end: zero padding)',
                         fontsize=8)
  return Plot(fig, {'outputs': outputs, 'lengths': lengths})


def correlation_vs_convolution(a, v) -> Plot:
  """Cross-correlation (what conv layers compute) against true convolution.

  Args:
    a: 1-D signal.
    v: 1-D kernel.

  Returns:
    Plot with ``data = {'correlation': ops.conv1d(a, v, padding='FULL'),
    'convolution': ops.convolve1d(a, v)}``.
  """
  a, v = np.asarray(a, np.float32), np.asarray(v, np.float32)
  corr = _conv1d(a, v, padding='FULL')
  conv = _np(ops.convolve1d(jnp.asarray(a), jnp.asarray(v)))
  fig, axes = new_figure(1, 3, 2.6)
  bars(axes[0, 0], a, f'signal {a.tolist()}')
  bars(axes[0, 1], corr, f'correlation (conv1d, FULL):\nkernel {v.tolist()} as is',
       color='tab:green')
  bars(axes[0, 2], conv, f'convolution (convolve1d):\nkernel flipped to {v[::-1].tolist()}',
       color='tab:purple')
  axes[0, 2].sharey(axes[0, 1])
  for ax in axes[0]:
    ax.set_xlabel('position', fontsize=8)
  return Plot(fig, {'correlation': corr, 'convolution': conv})


def edge_filters_2d(image, kernels: Mapping[str, np.ndarray]) -> Plot:
  """2-D edge kernels on a grayscale image (SAME padding, stride 1).

  Args:
    image: ``(H, W)`` or ``(H, W, 1)``.
    kernels: name -> ``(KH, KW)`` kernel.

  Returns:
    Plot with ``data = {'outputs': {name: (H, W) ops.conv2d output}}``.
  """
  image = _gray(image)
  fig, axes = new_figure(2, len(kernels) + 1, 4.6)
  show_image(axes[0, 0], image, f'input {image.shape[0]}x{image.shape[1]}x1')
  axes[1, 0].axis('off')
  outputs = {name: _conv2d(image, np.asarray(k, np.float32)[..., None], padding='SAME')
             for name, k in kernels.items()}
  lim = max(float(np.abs(o).max()) for o in outputs.values())
  for col, (name, kernel) in enumerate(kernels.items(), start=1):
    kernel = np.asarray(kernel, np.float32)
    show_image(axes[0, col], kernel, f'kernel: {name}', signed=True)
    write_numbers(axes[0, col], kernel)
    im = show_image(axes[1, col], outputs[name], f'response to {name}', signed=True,
                    limits=(-lim, lim))
  add_colorbar(im, list(axes[1, 1:]), 'response (red +, blue -)')
  return Plot(fig, {'outputs': outputs})


def rgb_convolution(image, kernel) -> Plot:
  """One kernel on an RGB image: a ``KH x KW x 3`` block, one slice per colour channel.

  The output is the sum of the three per-channel correlations, each also computed by
  :func:`ops.conv2d` on its own.

  Args:
    image: ``(H, W, 3)`` in [0, 1].
    kernel: ``(KH, KW, 3)``.

  Returns:
    Plot with ``data = {'contributions': (3, H, W), 'output': (H, W)}`` (SAME padding).
  """
  image, kernel = np.asarray(image, np.float32), np.asarray(kernel, np.float32)
  parts = np.stack([_conv2d(image[..., c:c + 1], kernel[..., c:c + 1], padding='SAME')
                    for c in range(3)])
  out = _conv2d(image, kernel, padding='SAME')
  fig, axes = new_figure(4, 3, 9.5)
  lim = max(float(np.abs(parts).max()), float(np.abs(out).max()))
  for c, name in enumerate(('red', 'green', 'blue')):
    show_image(axes[c, 0], image[..., c], f'{name} channel', limits=(0, 1),
               colorbar='intensity')
    show_image(axes[c, 1], kernel[..., c], f'kernel[:, :, {c}] ({name} slice)', signed=True)
    write_numbers(axes[c, 1], kernel[..., c])
    show_image(axes[c, 2], parts[c], f'{name} contribution', signed=True, limits=(-lim, lim),
               colorbar='value (red +, blue -)')
  show_image(axes[3, 0], image, f'RGB input {image.shape[0]}x{image.shape[1]}x3')
  axes[3, 1].axis('off')
  axes[3, 1].text(0.5, 0.5, 'output = sum of the\nthree contributions\n'
                  f'(one {kernel.shape[0]}x{kernel.shape[1]}x3 kernel)', ha='center',
                  va='center', fontsize=10)
  show_image(axes[3, 2], out, 'output (one channel)', signed=True, limits=(-lim, lim),
             colorbar='value (red +, blue -)')
  return Plot(fig, {'contributions': parts, 'output': out})


def padding_stride_2d(image, kernel,
                      settings: Sequence[tuple[str, int]] = (('VALID', 1), ('SAME', 1),
                                                             ('VALID', 2), ('SAME', 2)),
                      kernel_name: str = '') -> Plot:
  """One kernel under VALID/SAME padding and strides 1/2, drawn at the input's scale.

  Args:
    image: ``(H, W)`` or ``(H, W, 1)``.
    kernel: ``(KH, KW)``.
    settings: ``(padding, stride)`` pairs.
    kernel_name: named in the figure's title (e.g. ``'vertical Sobel'``).

  Returns:
    Plot with ``data = {'outputs': {(padding, stride): ops.conv2d output}}``.
  """
  image, kernel = _gray(image), np.asarray(kernel, np.float32)
  h, w = image.shape[:2]
  fig, axes = new_figure(1, len(settings) + 1, 2.8)
  show_image(axes[0, 0], image, f'input {h}x{w}', extent_of=(h, w))
  outputs = {setting: _conv2d(image, kernel[..., None], padding=setting[0], stride=setting[1])
             for setting in settings}
  lim = max(float(np.abs(o).max()) for o in outputs.values())
  for ax, ((padding, stride), out) in zip(axes[0, 1:], outputs.items()):
    # VALID maps cover only the input positions their windows were centred on.
    off = 0 if padding == 'SAME' else (kernel.shape[0] - 1) / 2
    im = show_image(ax, out, f'{padding}, stride {stride}: {out.shape[0]}x{out.shape[1]}',
                    signed=True, limits=(-lim, lim))
    im.set_extent((off, w - off, h - off, off))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
  add_colorbar(im, list(axes[0, 1:]), 'output, before any ReLU')
  fig.suptitle(f'{kernel_name or "kernel"} {kernel.shape[0]}x{kernel.shape[1]}, each output '
               'drawn over the input pixels it is centred on', fontsize=9)
  return Plot(fig, {'outputs': outputs})


def pooling_grid(grid) -> Plot:
  """2x2 / stride-2 max and average pooling on a small numbered grid.

  Args:
    grid: ``(H, W)`` numbers, H and W even.

  Returns:
    Plot with ``data = {'max', 'avg'}`` (:func:`ops.max_pool`, :func:`ops.avg_pool`),
    ``'kept'`` (the grid cells that survive max pooling) and ``'kept_fraction'``.
  """
  grid = np.asarray(grid, np.float32)
  x = jnp.asarray(grid)[..., None]
  mx = _np(ops.max_pool(x, (2, 2)))[..., 0]
  av = _np(ops.avg_pool(x, (2, 2)))[..., 0]
  kept = grid == np.kron(mx, np.ones((2, 2), np.float32))
  fraction = mx.size / grid.size
  fig, axes = new_figure(1, 3, 3.2)
  scale = (float(grid.min()), float(grid.max()))  # one colour scale for the three panels
  show_image(axes[0, 0], grid, 'input (red: the maxima kept)', cmap='Blues', limits=scale)
  write_numbers(axes[0, 0], grid, highlight=kept)
  for i in range(0, grid.shape[0] + 1, 2):
    axes[0, 0].axhline(i - 0.5, color='black', lw=1.5)
  for j in range(0, grid.shape[1] + 1, 2):
    axes[0, 0].axvline(j - 0.5, color='black', lw=1.5)
  show_image(axes[0, 1], mx, f'max pool 2x2/2: keeps {mx.size} of {grid.size} '
             f'({fraction:.0%})', cmap='Blues', limits=scale)
  write_numbers(axes[0, 1], mx)
  im = show_image(axes[0, 2], av, 'average pool 2x2/2', cmap='Blues', limits=scale)
  write_numbers(axes[0, 2], av)
  add_colorbar(im, list(axes[0]), 'value')
  return Plot(fig, {'max': mx, 'avg': av, 'kept': kept, 'kept_fraction': fraction})


def pooling_image(image) -> Plot:
  """2x2 / stride-2 max and average pooling of an image, drawn at the input's scale.

  Args:
    image: ``(H, W)`` or ``(H, W, 1)``.

  Returns:
    Plot with ``data = {'max', 'avg'}``, each ``(H / 2, W / 2)``.
  """
  image = _gray(image)
  h, w = image.shape[:2]
  mx = _np(ops.max_pool(jnp.asarray(image), (2, 2)))[..., 0]
  av = _np(ops.avg_pool(jnp.asarray(image), (2, 2)))[..., 0]
  fig, axes = new_figure(1, 3, 3.2)
  scale = (float(image.min()), float(image.max()))
  show_image(axes[0, 0], image, f'input {h}x{w}: {h * w} values', extent_of=(h, w),
             limits=scale)
  show_image(axes[0, 1], mx, f'max pool 2x2/2: {mx.shape[0]}x{mx.shape[1]} ({mx.size} kept, '
             f'{1 - mx.size / (h * w):.0%} dropped)', extent_of=(h, w), limits=scale)
  im = show_image(axes[0, 2], av, f'average pool 2x2/2: {av.shape[0]}x{av.shape[1]}',
                  extent_of=(h, w), limits=scale)
  add_colorbar(im, list(axes[0]), 'pixel value')
  return Plot(fig, {'max': mx, 'avg': av})


def dropout_masks(shape: tuple[int, int], rates: Sequence[float], key) -> Plot:
  """Dropout of an all-ones array at several rates: which units survive, and their scale.

  Args:
    shape: ``(H, W)`` of the array.
    rates: drop probabilities in [0, 1).
    key: ``jax.random`` key; rate ``i`` uses ``fold_in(key, i)``.

  Returns:
    Plot with ``data = {'outputs': {rate: ops.dropout output}, 'kept_fraction':
    {rate: fraction of non-zero outputs}}``.
  """
  ones = jnp.ones(shape, jnp.float32)
  outputs, kept = {}, {}
  fig, axes = new_figure(1, len(rates), 2.8)
  for i, (ax, rate) in enumerate(zip(axes[0], rates)):
    out = outputs[rate] = _np(ops.dropout(ones, rate, jax.random.fold_in(key, i)))
    kept[rate] = float(np.mean(out != 0))
    im = show_image(ax, out, f'rate {rate:g}: {kept[rate]:.0%} kept,\nscaled to '
                    f'{1 / (1 - rate):.3g}', cmap='viridis', limits=(0, 1 / (1 - max(rates))))
  add_colorbar(im, list(axes[0]), 'output value (input: all ones; 0 = dropped)')
  return Plot(fig, {'outputs': outputs, 'kept_fraction': kept})


def spatial_dropout(features, rate: float, key) -> Plot:
  """Element-wise dropout against spatial dropout (whole channels) on feature maps.

  Args:
    features: ``(H, W, C)`` feature maps.
    rate: drop probability.
    key: ``jax.random`` key (the same for both rows).

  Returns:
    Plot with ``data = {'elementwise', 'spatial'}`` (:func:`ops.dropout` without and
    with ``broadcast_dims=(0, 1)``) and ``'kept_channels'`` (bool per channel).
  """
  features = jnp.asarray(features, jnp.float32)
  elementwise = _np(ops.dropout(features, rate, key))
  spatial = _np(ops.dropout(features, rate, key, broadcast_dims=(0, 1)))
  kept = np.any(spatial != 0, axis=(0, 1))
  c = features.shape[-1]
  fig, axes = new_figure(3, c, 4.8)
  lim = float(np.abs(spatial).max())
  rows = (('input', _np(features)), (f'dropout {rate:g}', elementwise),
          (f'spatial dropout {rate:g}', spatial))
  for r, (name, maps) in enumerate(rows):
    for ch in range(c):
      im = show_image(axes[r, ch], maps[..., ch],
                      f'{name}, ch {ch}' if ch == 0 else f'ch {ch}', cmap='magma',
                      limits=(0, lim))
  add_colorbar(im, list(axes.flat), 'activation (dropped: 0; kept: scaled by 1 / (1 - rate))')
  return Plot(fig, {'elementwise': elementwise, 'spatial': spatial, 'kept_channels': kept})
