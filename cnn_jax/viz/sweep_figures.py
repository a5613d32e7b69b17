"""Pictures of a sweep's results (:mod:`cnn_jax.sweep`): accuracy and the overfitting gap
against the swept rate, and learning curves.

The functions take the sweep's rows (one per setting, means and stds over seeds) and
its axes. The x axis is the first swept key ending in ``dropout_rate``; a sweep without
one uses its first axis whose values are all numbers, else its first axis, its values
then drawn evenly spaced and named (a sweep of seeds alone draws one point). Every
combination of the other axes' values is one line.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cnn_jax.viz.common import Plot, new_figure


# Axis labels and legend entries in words for the keys the ablations sweep; other keys
# are shown as they are written in the config.
_AXIS_WORDS = {
    'model.dropout_rate': 'dropout rate (after each conv block)',
    'model.dense_dropout_rate': 'dropout rate (after the dense layers)',
    'model.strides': 'conv stride',
    'model.pool': 'pooling: max / stride-2 conv',
    'optimizer.learning_rate': 'learning rate',
    'seed': 'seed',
}
_VALUE_WORDS = {
    'model.dropout_rate': lambda v: f'dropout {v}',
    'model.dense_dropout_rate': lambda v: f'dense dropout {v}',
    'model.strides': lambda v: f'conv stride {v}',
    'model.pool': lambda v: {'max': 'max pooling', 'avg': 'average pooling',
                             'conv': 'stride-2 conv instead of pooling',
                             'none': 'no pooling'}.get(v, f'pool={v}'),
}


def axis_label(key: str | None) -> str:
  """The words for a swept key on an axis: ``'model.pool'`` -> ``'pooling: max / stride-2
  conv'``."""
  return _AXIS_WORDS.get(key, key) if key else 'setting'


def legend_label(setting: dict, keys: Sequence[str]) -> str:
  """A line's legend entry in words: ``'conv stride 2, max pooling'``."""
  words = [_VALUE_WORDS[k](setting[k]) if k in _VALUE_WORDS else
           f'{k.rpartition(".")[2]}={setting[k]}' for k in keys]
  return ', '.join(words) or 'all settings'


def _numeric(values: Sequence) -> bool:
  return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def x_key(axes: dict[str, list]) -> str | None:
  """The axis drawn along x (see the module docstring); None for a sweep without axes."""
  for key in axes:
    if key.endswith('dropout_rate'):
      return key
  for key, values in axes.items():
    if _numeric(values):
      return key
  return next(iter(axes), None)


def label(setting: dict, keys: Sequence[str]) -> str:
  """``'strides=2, pool=max'``: the last part of each key (whole keys if ambiguous)."""
  short = [k.rpartition('.')[2] for k in keys]
  names = short if len(set(short)) == len(short) else list(keys)
  return ', '.join(f'{n}={setting[k]}' for n, k in zip(names, keys)) or 'all'


def _positions(axes: dict, key: str | None):
  """The x of each value of ``key`` (by repr) and the ticks to name (None: numbers)."""
  if key is None:
    return {repr(None): 0.0}, ([0.0], ['all'])
  values = axes[key]
  if _numeric(values):
    return {repr(v): float(v) for v in values}, None
  return ({repr(v): float(i) for i, v in enumerate(values)},
          (list(range(len(values))), [str(v) for v in values]))


def _lines(rows: Sequence[dict], axes: dict, key: str | None):
  """Rows grouped into lines by the other axes' values, each line sorted along x.

  Returns:
    ``({label: [row, ...]}, x_of)``, ``x_of(row)`` the row's position along x.
  """
  position = _positions(axes, key)[0]
  x_of = lambda row: position[repr(row.get(key))]
  others = [k for k in axes if k != key]
  lines = {}
  for row in rows:
    lines.setdefault(label(row, others), []).append(row)
  return {name: sorted(line, key=x_of) for name, line in lines.items()}, x_of


def _array(rows, name):
  return np.asarray([np.nan if r[name] is None else r[name] for r in rows], np.float64)


def _decorate_x(ax, axes: dict, key: str | None):
  ticks = _positions(axes, key)[1]
  if ticks is not None:
    ax.set_xticks(*ticks)
  ax.set_xlabel(axis_label(key))
  ax.grid(alpha=0.3)


def test_accuracy(rows: Sequence[dict], axes: dict[str, list], x: str | None = None) -> Plot:
  """Test accuracy (mean over seeds, error bars: std over seeds) against the x axis.

  Args:
    rows: the sweep's rows (:func:`cnn_jax.sweep.aggregate`).
    axes: the sweep's axes.
    x: the axis along x (default :func:`x_key`).

  Returns:
    A :class:`Plot`; ``data``: ``'x_key'`` and ``'lines'``, ``{label: {'x', 'mean',
    'std'}}`` (std NaN for one seed), accuracies as fractions.
  """
  x = x if x is not None else x_key(axes)
  fig, axs = new_figure(1, 1, 4.0)
  ax = axs[0, 0]
  lines, x_of = _lines(rows, axes, x)
  others = [k for k in axes if k != x]
  data = {'x_key': x, 'lines': {}}
  for name, line in lines.items():
    xs = np.asarray([x_of(r) for r in line])
    mean, std = _array(line, 'test_accuracy_mean'), _array(line, 'test_accuracy_std')
    ax.errorbar(xs, 100 * mean, yerr=100 * np.nan_to_num(std), marker='o', capsize=3,
                label=legend_label(line[0], others))
    data['lines'][name] = {'x': xs, 'mean': mean, 'std': std}
  _decorate_x(ax, axes, x)
  ax.set_ylabel('test accuracy (%)')
  ax.set_title(f'Test accuracy against {axis_label(x)} (mean ± std over '
               f'{rows[0]["n"] if rows else 0} seeds)', fontsize=10)
  ax.legend(fontsize=8)
  return Plot(fig, data)


def overfitting_gap(rows: Sequence[dict], axes: dict[str, list], x: str | None = None) -> Plot:
  """Train and test accuracy (left) and their gap (right) against the x axis.

  The train accuracy is the clean (eval-mode) pass over the training split, so the gap
  measures overfitting, not the noise dropout adds while training.

  Args:
    rows: the sweep's rows (:func:`cnn_jax.sweep.aggregate`).
    axes: the sweep's axes.
    x: the axis along x (default :func:`x_key`).

  Returns:
    A :class:`Plot`; ``data``: ``'x_key'`` and ``'lines'``, ``{label: {'x', 'train',
    'test', 'gap', 'gap_std'}}`` (means over seeds, fractions; std NaN for one seed).
  """
  x = x if x is not None else x_key(axes)
  fig, axs = new_figure(1, 2, 4.0)
  lines, x_of = _lines(rows, axes, x)
  others = [k for k in axes if k != x]
  data = {'x_key': x, 'lines': {}}
  for i, (name, line) in enumerate(lines.items()):
    color = f'C{i % 10}'
    words = legend_label(line[0], others)
    xs = np.asarray([x_of(r) for r in line])
    train, test = _array(line, 'train_accuracy_mean'), _array(line, 'test_accuracy_mean')
    gap, gap_std = _array(line, 'gap_mean'), _array(line, 'gap_std')
    axs[0, 0].plot(xs, 100 * train, '--o', color=color, label=f'{words}: train')
    axs[0, 0].plot(xs, 100 * test, '-o', color=color, label=f'{words}: test')
    axs[0, 1].errorbar(xs, 100 * gap, yerr=100 * np.nan_to_num(gap_std), marker='o',
                       capsize=3, color=color, label=words)
    data['lines'][name] = {'x': xs, 'train': train, 'test': test, 'gap': gap,
                           'gap_std': gap_std}
  for ax in axs[0]:
    _decorate_x(ax, axes, x)
  axs[0, 0].set_ylabel('accuracy (%)')
  axs[0, 0].set_title('Train (clean pass, dashed) and test accuracy', fontsize=10)
  axs[0, 1].set_ylabel('train - test accuracy (pp)')
  axs[0, 1].set_title('Overfitting gap (mean ± std over seeds)', fontsize=10)
  axs[0, 1].axhline(0, color='black', lw=0.5)
  for ax in axs[0]:
    ax.legend(fontsize=7)
  return Plot(fig, data)


def learning_curves(rows: Sequence[dict], axes: dict[str, list],
                    curves: Sequence[dict]) -> Plot:
  """Eval accuracy (left) and train loss (right) per epoch, one line per setting.

  Args:
    rows: the sweep's rows (:func:`cnn_jax.sweep.aggregate`).
    axes: the sweep's axes (every swept key names the line).
    curves: per row, the mean over seeds (:func:`cnn_jax.sweep.read_curves`):
      ``'epoch_eval'``, ``'eval_accuracy'``, ``'epoch_train'``, ``'train_loss'``.

  Returns:
    A :class:`Plot`; ``data``: ``{label: curve}`` with the arrays drawn (accuracies as
    fractions).
  """
  fig, axs = new_figure(1, 2, 4.0)
  data = {}
  for i, (row, curve) in enumerate(zip(rows, curves)):
    name = label(row, list(axes))
    style = dict(color=f'C{i % 10}', ls=('-', '--', ':', '-.')[i // 10 % 4], marker='o',
                 ms=3, label=legend_label(row, list(axes)))
    axs[0, 0].plot(curve['epoch_eval'], 100 * curve['eval_accuracy'], **style)
    axs[0, 1].plot(curve['epoch_train'], curve['train_loss'], **style)
    data[name] = curve
  if not any(len(c['eval_accuracy']) for c in curves):
    axs[0, 0].text(0.5, 0.5, 'no eval split', ha='center', transform=axs[0, 0].transAxes)
  axs[0, 0].set_ylabel('eval accuracy (%)')
  axs[0, 1].set_ylabel('train loss (epoch mean)')
  axs[0, 0].set_title('Eval accuracy (mean over seeds)', fontsize=10)
  axs[0, 1].set_title('Train loss (mean over seeds)', fontsize=10)
  for ax in axs[0]:
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  return Plot(fig, data)
