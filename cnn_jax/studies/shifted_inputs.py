"""Shifted inputs: the lesson's weight-sharing claim, measured on moved test images.

  python -m experiments.study --study shifted_inputs

Three models trained on the unshifted Fashion-MNIST training images, with the same
seeds: the MLP (``mlp_fashion_mnist.py``), the lesson's CNN whose dense layer reads
the flattened feature maps (``fashion_mnist_lesson.py``), and the same CNN with a
global average pooling head (``study_gap_cnn.py``: each channel's mean over the
positions goes to the dense layer). Each trained run's final parameters are then
evaluated on the test images shifted by ``k = 0 .. 6`` pixels.

The shift (:func:`shift_images`): every image moves ``k`` pixels right, left, down or up;
the pixels that leave the frame are dropped and the vacated ones are zero (the black
background of Fashion-MNIST). A model's accuracy at ``k`` is the mean of its four
directions' accuracies. The convolutions share their weights over positions, so a
moved object gives moved feature maps (up to the 2x2 pools' grid and the border); the
MLP has one weight per pixel and sees a different input. Whether the CNN's output
follows depends on its head: a dense layer on the flattened maps has one weight per
position too, a global average does not care where a feature lies.

The MLP and the CNN runs are the permuted-pixels study's unpermuted runs, under the same
names: with one ``--workdir`` for both studies they are trained once. Cost of the
committed run on the 2-core CPU, the two shared runs read back: 4 min 14 s, of which
1 min 47 s trains the global-pooling CNN's three seeds and the rest evaluates the three
runs' 25 shifted copies of the 10,000 test images.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

from cnn_jax import data as data_lib
from cnn_jax import provenance
from cnn_jax.studies import permuted_pixels as common
from cnn_jax.train import steps
from cnn_jax.train import workdir as workdir_lib
from cnn_jax.train.trainer import eval_indices
from cnn_jax.viz.common import DPI, Plot, new_figure

TITLE = ('Shifted inputs: test accuracy of an MLP, a CNN with a dense head and a CNN '
         'with global average pooling as the test images move by 0-6 pixels')
DEFAULT_SEEDS = 3
SHIFTS = tuple(range(7))  # pixels
DIRECTIONS = ('right', 'left', 'down', 'up')
FIGURE = 'accuracy_vs_shift.png'
MODELS = {**common.MODELS, 'cnn_gap': 'study_gap_cnn.py'}
_COLORS = {'mlp': 'tab:blue', 'cnn': 'tab:orange', 'cnn_gap': 'tab:green'}
# (a, b): the comparisons tested at every shift, a - b.
PAIRS = (('cnn', 'mlp'), ('cnn_gap', 'cnn'))


def shift_images(images: np.ndarray, shift: int, direction: str) -> np.ndarray:
  """Moves every image ``shift`` pixels towards ``direction``, zero-filling behind it.

  Args:
    images: ``(N, H, W, C)`` batch (any dtype).
    shift: pixels, ``>= 0``; a shift of the image's size or more leaves zeros.
    direction: ``'right'`` (towards larger column indices), ``'left'``, ``'down'``
      (towards larger row indices) or ``'up'``.

  Returns:
    A new array of ``images``' shape and dtype: ``out[:, i, j + shift] = images[:, i, j]``
    for ``'right'`` where ``j + shift < W``, likewise for the others; zero elsewhere.

  Raises:
    ValueError: for a negative shift, an unknown direction or a batch that is not
      ``(N, H, W, C)``.
  """
  if images.ndim != 4:
    raise ValueError(f'shift_images expects a batch (N, H, W, C), got shape {images.shape}')
  if direction not in DIRECTIONS:
    raise ValueError(f'direction={direction!r}; use one of {", ".join(DIRECTIONS)}')
  if shift < 0:
    raise ValueError(f'shift={shift} must be >= 0 (the direction gives the sign)')
  axis = 2 if direction in ('right', 'left') else 1
  out = np.zeros_like(images)
  size = images.shape[axis]
  if shift >= size:
    return out
  kept = [slice(None)] * 4
  moved = [slice(None)] * 4
  if direction in ('right', 'down'):
    kept[axis], moved[axis] = slice(0, size - shift), slice(shift, size)
  else:
    kept[axis], moved[axis] = slice(shift, size), slice(0, size - shift)
  out[tuple(moved)] = images[tuple(kept)]
  return out


def shifted_accuracies(workdir: str, shifts=SHIFTS, directions=DIRECTIONS) -> np.ndarray:
  """Test accuracy of a trained run's final state on shifted test images.

  The state is the newest checkpoint (:func:`cnn_jax.train.workdir.restore`), the
  evaluation the training loop's own (:func:`cnn_jax.train.steps.eval_step` on the
  run's evaluation inputs, in the run's evaluation batches), so shift 0 gives the
  run's reported test accuracy.

  Args:
    workdir: a finished run, of vmapped replicas or a single run.
    shifts: pixels, each ``>= 0``.
    directions: of :data:`DIRECTIONS`.

  Returns:
    ``(replicas, len(shifts), len(directions))`` accuracies (one replica for a single
    run).

  Raises:
    ValueError: for a run on permuted inputs (their neighbours are not pixels apart).
  """
  trainer, _, state = workdir_lib.restore(workdir)
  config = trainer.config
  if config.dataset.permute_seed >= 0:
    raise ValueError(f'{workdir} was trained on permuted inputs; shifting them moves no '
                     f'object')
  images, labels = data_lib.load(config.dataset, may_prepare=False)['test']

  def correct(state, images, labels, mask):
    inputs = data_lib.augment(images, None, trainer.augment, train=False)
    return steps.eval_step(state, {'image': inputs, 'label': labels, 'mask': mask},
                           use_ema=bool(config.ema_decay), flip=config.eval_flip)['correct']

  single = trainer.num_replicas is None
  evaluate = jax.jit(correct if single else jax.vmap(correct, in_axes=(0, None, None, None)))
  idx, mask = eval_indices(len(labels), config.eval_batch_size)
  result = np.zeros((1 if single else trainer.num_replicas, len(shifts), len(directions)))
  for i, shift in enumerate(shifts):
    for j, direction in enumerate(directions):
      if shift == 0 and j:  # no move in any direction
        result[:, i, j] = result[:, i, 0]
        continue
      moved = shift_images(images, shift, direction)
      total = sum(np.asarray(evaluate(state, moved[b], labels[b], m))
                  for b, m in zip(idx, mask))
      result[:, i, j] = total / len(labels)
  return result


def runs(config_dir: str, tiny: bool = False) -> dict:
  """``mlp``, ``cnn``, ``cnn_gap``: run name -> config."""
  return {label: common.load(config_dir, file, tiny) for label, file in MODELS.items()}


def run(config_dir: str, *, seeds: int, workdir: str, out: str | None, tiny: bool = False,
        command: str = '', log=print) -> dict:
  """Trains the three runs, evaluates them on shifted test images, writes the results.

  Returns:
    ``{'environment', 'configs', 'shifts', 'directions', 'seeds', 'tiny', 'runs',
    'tests'}``: ``runs[name]`` is :func:`cnn_jax.studies.permuted_pixels.train`'s
    record plus ``shifted`` (``[seed][shift][direction]`` accuracies), ``by_shift``
    (``[seed][shift]``, the mean over directions), ``mean`` and ``std`` per shift
    (``shift_mean``, ``shift_std``) and ``drop`` (``[seed]``, shift 0 minus the largest
    shift); ``tests['<a>-<b>']`` is a list over shifts of
    :func:`~cnn_jax.studies.permuted_pixels.compare` of ``a`` against ``b``, and
    ``tests['drop:<a>-<b>']`` compares their drops.
  """
  records = common.train(runs(config_dir, tiny), seeds, workdir, log)
  for name, record in records.items():
    log(f'{name}: evaluating on test images shifted by {SHIFTS[0]}..{SHIFTS[-1]} pixels')
    shifted = shifted_accuracies(os.path.join(workdir, name))
    by_shift = shifted.mean(axis=2)
    record.update(shifted=shifted.tolist(), by_shift=by_shift.tolist(),
                  shift_mean=by_shift.mean(axis=0).tolist(),
                  shift_std=(by_shift.std(axis=0, ddof=1).tolist() if seeds > 1 else None),
                  drop=(by_shift[:, 0] - by_shift[:, -1]).tolist())
  tests = {}
  for a, b in PAIRS:
    tests[f'{a}-{b}'] = [common.compare(np.array(records[a]['by_shift'])[:, i],
                                        np.array(records[b]['by_shift'])[:, i])
                         for i in range(len(SHIFTS))]
  for a, b in (('mlp', 'cnn'), ('cnn', 'cnn_gap')):
    tests[f'drop:{a}-{b}'] = common.compare(records[a]['drop'], records[b]['drop'])
  results = {'environment': provenance.environment(command), 'configs': dict(MODELS),
             'shifts': list(SHIFTS), 'directions': list(DIRECTIONS),
             'seeds': list(range(seeds)), 'tiny': tiny, 'runs': records, 'tests': tests}
  if out:
    provenance.write_results(out, results, format_results(results))
    accuracy_vs_shift(results).figure.savefig(os.path.join(out, FIGURE), dpi=DPI)
  return results


def accuracy_vs_shift(results: dict) -> Plot:
  """Test accuracy against the shift, mean over seeds with a ± std band; left the mean
  over the four directions, right each direction's mean over seeds.

  Returns:
    Plot with ``data = {'shifts', 'mean': {name: (S,)}, 'std': {name: (S,)},
    'directions': {name: (S, D)}}`` in accuracy points.
  """
  shifts = np.array(results['shifts'])
  data = {'shifts': shifts, 'mean': {}, 'std': {}, 'directions': {}}
  fig, axes = new_figure(1, 2, 4.0)
  styles = ('-', '--', ':', '-.')
  for name, r in results['runs'].items():
    by_shift = 100 * np.array(r['by_shift'])
    mean = by_shift.mean(axis=0)
    std = by_shift.std(axis=0, ddof=1) if by_shift.shape[0] > 1 else np.zeros_like(mean)
    data['mean'][name], data['std'][name] = mean, std
    color = _COLORS[name]
    axes[0, 0].plot(shifts, mean, 'o-', color=color, label=common.NAMES[name])
    axes[0, 0].fill_between(shifts, mean - std, mean + std, color=color, alpha=0.25)
    directions = 100 * np.array(r['shifted']).mean(axis=0)
    data['directions'][name] = directions
    for j, (direction, style) in enumerate(zip(results['directions'], styles)):
      axes[0, 1].plot(shifts, directions[:, j], style, color=color,
                      label=f'{common.NAMES[name]}, {direction}')
  n = len(results['seeds'])
  axes[0, 0].set_title(f'Mean over the four directions; band: ± std over {n} seeds',
                       fontsize=9)
  axes[0, 1].set_title('Each direction (mean over seeds)', fontsize=9)
  for ax in axes[0]:
    ax.set_xlabel('shift of the test images (pixels, zero fill)')
    ax.set_ylabel('test accuracy (%)')
    ax.set_xticks(shifts)
    ax.grid(True, alpha=0.3)
  axes[0, 0].legend(fontsize=8)
  axes[0, 1].legend(fontsize=6, ncol=2)
  return Plot(fig, data)


def _at(results: dict, name: str, i: int) -> str:
  return f'{common.points(results["runs"][name]["shift_mean"][i], False)}%'


def _shifts_where(results: dict, series: list, sign: int) -> str:
  """``'k = 2, 3'``: the shifts where a per-shift test is significant with this sign."""
  found = [str(shift) for shift, t in zip(results['shifts'], series)
           if t['significant'] and t['diff'] * sign > 0]
  return f'k = {", ".join(found)}' if found else 'no shift'


def interpretation(results: dict) -> str:
  """The paragraph that reads the curves and tests, its words chosen by the numbers."""
  runs_, tests = results['runs'], results['tests']
  last, k = len(results['shifts']) - 1, results['shifts'][-1]
  n = len(results['seeds'])
  text = 'Unshifted, ' + ', '.join(
      f'the {common.NAMES[name]} scores {_at(results, name, 0)}' for name in runs_)
  text += f'. At {k} pixels: ' + ', '.join(
      f'{common.NAMES[name]} {_at(results, name, last)} (a drop of '
      f'{common.points(np.mean(r["drop"]), False)} points)' for name, r in runs_.items())
  text += '. '
  drop = tests['drop:mlp-cnn']
  if drop['significant']:
    more = 'more' if drop['diff'] > 0 else 'less'
    text += (f'The MLP loses {common.points(abs(drop["diff"]), False)} points {more} than '
             f'the CNN with a dense head ({drop["verdict"]}, 95% interval '
             f'{common.interval(drop)}): ')
    text += ('weight sharing makes the CNN the more shift-tolerant model. '
             if drop['diff'] > 0 else 'here weight sharing did not buy shift tolerance. ')
  else:
    text += (f'The drops of the MLP and the dense-head CNN do not differ detectably with '
             f'{n} seeds ({drop["verdict"]}). ')
  for a, b in PAIRS:
    series = tests[f'{a}-{b}']
    text += (f'The {common.NAMES[a]} is significantly above the {common.NAMES[b]} at '
             f'{_shifts_where(results, series, 1)} and below it at '
             f'{_shifts_where(results, series, -1)} (at {k}: {series[last]["verdict"]}). ')
  gap = tests['drop:cnn-cnn_gap']
  if gap['significant'] and gap['diff'] > 0:
    text += (f'Global pooling keeps {common.points(gap["diff"], False)} points more of '
             f'the accuracy than the dense head by {k} pixels ({gap["verdict"]}): the '
             f'dense head on flattened maps, with one weight per position, undoes part '
             f'of what the shared convolution weights give.')
  elif gap['significant']:
    text += (f'Global pooling loses {common.points(-gap["diff"], False)} points more than '
             f'the dense head by {k} pixels ({gap["verdict"]}).')
  else:
    text += (f'Global pooling and the dense head lose accuracy alike by {k} pixels '
             f'({gap["verdict"]}).')
  return text


def format_results(results: dict) -> str:
  """The results page: provenance, the accuracy-against-shift table, the tests."""
  env, runs_ = results['environment'], results['runs']
  n = len(results['seeds'])
  names = list(runs_)
  header = provenance.page_header(TITLE, env)
  if results['tiny']:
    header[-1] += ' **Tiny setting** (a test of the code, not a result).'
  lines = [
      *header, '',
      'Trained on the unshifted Fashion-MNIST training images; evaluated at the end of '
      'training on the test images shifted by k pixels (zero fill), the accuracy at k '
      f'being the mean over the four directions ({", ".join(results["directions"])}). '
      f'Mean ± sample std over seeds 0..{n - 1}. ![accuracy against shift]({FIGURE})', '',
      '| model | config | parameters | epochs | training wall time |', '|---|---|---|---|---|',
  ]
  for name in names:
    r = runs_[name]
    lines.append(f'| {common.NAMES[name]} | `{results["configs"][name]}` | '
                 f'{r["num_params"]:,} | {r["epochs"]} | {provenance.duration(r["wall_s"])} |')
  header = ' | '.join(common.NAMES[name] for name in names)
  pairs = ' | '.join(f'{common.NAMES[a]} - {common.NAMES[b]}' for a, b in PAIRS)
  lines += ['', f'| shift (pixels) | {header} | {pairs} |',
            '|---|' + '---|' * (len(names) + len(PAIRS))]
  for i, shift in enumerate(results['shifts']):
    cells = []
    for name in names:
      r = runs_[name]
      std = '' if r['shift_std'] is None else f' ± {common.points(r["shift_std"][i], False)}'
      cells.append(f'{common.points(r["shift_mean"][i], False)}{std}%')
    cells += [results['tests'][f'{a}-{b}'][i]['verdict'] for a, b in PAIRS]
    lines.append(f'| {shift} | ' + ' | '.join(cells) + ' |')
  k = results['shifts'][-1]
  lines += ['', f'Accuracy lost from 0 to {k} pixels, per seed:', '']
  for name in names:
    lines.append(f'- {common.NAMES[name]}: ' + ', '.join(
        f'{common.points(d, False)}' for d in runs_[name]['drop']) + ' points')
  lines += ['', '## Reading', '', interpretation(results), '']
  return '\n'.join(lines)
