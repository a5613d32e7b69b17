"""The :class:`Plot` result and the drawing helpers shared by the picture modules."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure

# Every figure is this wide (inches); the height is chosen per picture.
WIDTH = 9.0
# Resolution of the saved PNGs.
DPI = 150


class Plot(NamedTuple):
  """What every picture function returns.

  Attributes:
    figure: the matplotlib figure (not attached to pyplot; save it with
      ``figure.savefig``).
    data: the numbers drawn, as numpy arrays (or dicts/lists of them), keyed as each
      function's docstring says.
  """
  figure: Figure
  data: dict


def new_figure(nrows: int, ncols: int, height: float, **subplot_kw):
  """A ``WIDTH x height`` figure with an ``(nrows, ncols)`` array of axes."""
  fig = Figure(figsize=(WIDTH, height), layout='constrained')
  axes = fig.subplots(nrows, ncols, squeeze=False, subplot_kw=subplot_kw)
  return fig, axes


def show_image(ax, image, title: str = '', *, signed: bool = False, extent_of=None,
               cmap: str = 'gray', limits: tuple[float, float] | None = None,
               colorbar: str | None = None):
  """Draws an ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` array without ticks.

  Args:
    ax: the axes.
    image: the array.
    title: axes title.
    signed: centre a diverging colour map on zero (red positive, blue negative), for
      quantities whose sign matters (filter responses, conv outputs before the ReLU).
    extent_of: an ``(H, W)`` to draw the array stretched over (so maps of different
      sizes compare at the same scale of the input); None draws it pixel for pixel.
    cmap: colour map for single-channel arrays that are not ``signed``.
    limits: ``(vmin, vmax)`` shared with other panels; None scales to this array (with
      ``signed``, symmetric about zero).
    colorbar: label of a colour bar beside the axes; None draws none.

  Returns:
    The ``AxesImage``.
  """
  image = np.asarray(image, np.float32)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  kwargs = {}
  if image.ndim == 2:
    if signed:
      lim = max(abs(limits[0]), abs(limits[1])) if limits else float(np.abs(image).max())
      kwargs = dict(cmap='RdBu_r', vmin=-(lim or 1.0), vmax=lim or 1.0)
    else:
      kwargs = dict(cmap=cmap)
      if limits:
        kwargs.update(vmin=limits[0], vmax=limits[1])
  else:
    image = np.clip(image, 0.0, 1.0)
  if extent_of is not None:
    kwargs['extent'] = (0, extent_of[1], extent_of[0], 0)
  im = ax.imshow(image, interpolation='nearest', **kwargs)
  ax.set_title(title, fontsize=9)
  ax.set_xticks([])
  ax.set_yticks([])
  if colorbar is not None:
    add_colorbar(im, [ax], colorbar)
  return im


def add_colorbar(image, axes, label: str):
  """A colour bar for ``image`` beside ``axes`` (one axes, or a list sharing the scale)."""
  bar = image.axes.figure.colorbar(image, ax=axes, shrink=0.85, pad=0.02)
  bar.set_label(label, fontsize=8)
  bar.ax.tick_params(labelsize=7)
  return bar


def write_numbers(ax, values, fmt: str = '{:g}', highlight=None):
  """Writes each value of a 2-D array into its cell of an ``imshow``.

  Args:
    ax: axes holding the ``imshow`` of ``values``.
    values: 2-D array.
    fmt: format of each number.
    highlight: optional boolean array like ``values``; True cells are written in bold red.
  """
  values = np.asarray(values)
  for (i, j), v in np.ndenumerate(values):
    bold = highlight is not None and bool(highlight[i, j])
    ax.text(j, i, fmt.format(v), ha='center', va='center', fontsize=8,
            color='red' if bold else 'black', fontweight='bold' if bold else 'normal',
            bbox=dict(boxstyle='round,pad=0.1', fc='white', ec='none', alpha=0.6))


def bars(ax, values, title: str = '', x=None, color: str = 'tab:blue', labels: bool = True):
  """Bar chart of a 1-D signal, each bar labelled with its value."""
  values = np.asarray(values, np.float32)
  x = np.arange(len(values)) if x is None else np.asarray(x)
  ax.bar(x, values, color=color, width=0.8)
  if labels:
    for xi, v in zip(x, values):
      ax.annotate(f'{v:g}', (xi, v), ha='center', va='bottom' if v >= 0 else 'top',
                  fontsize=7, xytext=(0, 1 if v >= 0 else -1), textcoords='offset points')
  ax.axhline(0, color='black', lw=0.5)
  ax.margins(y=0.25)  # room for the value labels above and below the bars
  ax.set_title(title, fontsize=9)
  ax.tick_params(labelsize=7)
