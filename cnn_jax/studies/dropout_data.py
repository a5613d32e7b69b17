"""Dropout where it helps: dropout rate x training-set size.

  python -m experiments.study --study dropout_data [--seeds 3] [--tiny]

The lesson says dropout regularises. A regulariser can only help a model that overfits,
so the study trains the lesson's CNN on training sets of different sizes, long enough
that the no-dropout model fits the small sets perfectly, and asks at each size whether
a dropout rate changes test accuracy. The grid (rates, and per size the epochs and how
often the held-out split is evaluated) is the ``get_study()`` of
``experiments/configs/study_dropout_data.py``.

Each size is one run (``workdir/train_N``) training every rate x seed as one vmapped
program (:func:`cnn_jax.train.replicas.train_replicas`). Per size and rate the results
hold test accuracy over the seeds, the clean training accuracy (an eval-mode pass over
the training set at the end) and the held-out learning curve; each rate is compared
with no dropout at the same size by Welch's t-test over seeds
(:func:`cnn_jax.stats.welch`). The page's conclusions are computed from those tests.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from cnn_jax import config_utils, provenance, stats
from cnn_jax.sweep import read_curves
from cnn_jax.train import replicas
from cnn_jax.train import workdir as workdir_lib
from cnn_jax.train.replicas import replica_dir
from cnn_jax.viz.common import DPI, Plot, new_figure

TITLE = 'Dropout regularises where the model overfits: dropout rate x training-set size'
DEFAULT_SEEDS = 3
CONFIG = 'study_dropout_data.py'
# The model fields one rate sets: dropout after every conv block and the dense layer.
RATE_FIELDS = ('model.dropout_rate', 'model.dense_dropout_rate')

# The seconds-long grid of the tests: tiny slices, a tiny network, two rates.
_TINY = {'rates': (0.0, 0.5), 'sizes': ((256, 2, 1), (512, 1, 1))}


def _grid(config_dir: str, tiny: bool) -> tuple[ml_collections.ConfigDict, dict]:
  path = os.path.join(config_dir, CONFIG)
  config = config_utils.load_config(path)
  grid = config_utils.load_study(path)
  if tiny:
    grid = _TINY
    config.dataset.eval_split = 'train[55000:55256]'
    config.dataset.test_split = 'test[:512]'
    config.model.features = (4, 8)
    config.model.hidden = (16,)
    config.batch_size = 64
    config.eval_batch_size = 256
  return config, grid


def _size_config(config: ml_collections.ConfigDict, size: int, epochs: int,
                 eval_every: int) -> ml_collections.ConfigDict:
  config = config.copy_and_resolve_references()
  config.dataset.train_split = f'train[:{size}]'
  config.num_epochs = epochs
  config.eval_every_epochs = eval_every
  # Checkpoint only where the held-out split is evaluated (each evaluation saves anyway).
  config.checkpoint_every_steps = size // config.batch_size * eval_every
  return config


def runs(config_dir: str, tiny: bool = False) -> dict[str, ml_collections.ConfigDict]:
  """One run per training-set size, ``{'train_N': config}`` (see the module docstring)."""
  config, grid = _grid(config_dir, tiny)
  return {f'train_{size}': _size_config(config, size, epochs, every)
          for size, epochs, every in grid['sizes']}


def _variants(rates, seeds: int) -> list[dict]:
  return [{'seed': seed, **{field: rate for field in RATE_FIELDS}}
          for rate in rates for seed in range(seeds)]


def _overfitting(epochs: np.ndarray, accuracy: np.ndarray) -> dict:
  """Where the held-out curve peaked and how far it ended below its peak."""
  if not len(accuracy):
    return {'peak_epoch': None, 'peak': None, 'final': None, 'drop': None}
  peak = int(np.argmax(accuracy))
  return {'peak_epoch': float(epochs[peak]), 'peak': float(accuracy[peak]),
          'final': float(accuracy[-1]), 'drop': float(accuracy[peak] - accuracy[-1])}


def _size_record(name: str, config, size: int, rates, summaries: list[dict],
                 workdir: str) -> dict:
  """Aggregates one size's replicas: per rate, the accuracies, tests and curve."""
  rows = []
  for rate in rates:
    indices = [i for i, s in enumerate(summaries)
               if s['variant'][RATE_FIELDS[0]] == rate]
    test = [summaries[i]['test_accuracy'] for i in indices]
    train = [summaries[i]['train_accuracy'] for i in indices]
    mean, std = provenance.mean_std(test)
    curve = read_curves(workdir, [{'replicas': [os.path.join(name, replica_dir(i))
                                                for i in indices]}])[0]
    rows.append({'rate': rate, 'test_accuracies': test, 'train_accuracies': train,
                 'mean': mean, 'std': std, 'train_mean': float(np.mean(train)),
                 'gap': float(np.mean(train) - mean),
                 'curve': {'epoch': curve['epoch_eval'].tolist(),
                           'eval_accuracy': curve['eval_accuracy'].tolist()},
                 **_overfitting(curve['epoch_eval'], curve['eval_accuracy'])})
  baseline = rows[0]['test_accuracies']
  for row in rows:
    row['vs_no_dropout'] = stats.welch(row['test_accuracies'], baseline)
  return {'name': name, 'size': size, 'epochs': config.num_epochs,
          'steps': size // config.batch_size * config.num_epochs,
          'replicas': len(summaries), 'num_params': summaries[0]['num_params'],
          # One program trains every replica: its wall time is the whole size's.
          'wall_s': max(s['wall_s'] for s in summaries),
          'images_per_sec': summaries[0]['train_images_per_sec'], 'rows': rows}


def run(config_dir: str, *, seeds: int, workdir: str, out: str | None, tiny: bool = False,
        command: str = '', log=print) -> dict:
  """Trains every size's rates x seeds and writes the results (see the module docstring).

  Args:
    config_dir: the folder holding ``study_dropout_data.py``.
    seeds: seeds ``0 .. seeds - 1`` per rate (at least 2 for the tests to say anything).
    workdir: parent of the per-size runs; finished ones are read back.
    out: folder for ``results.json``, ``results.md`` and the figures; None writes none.
    tiny: the seconds-long grid of the tests.
    command: the command line, recorded in the results.
    log: progress lines.

  Returns:
    ``{'environment', 'seeds', 'rates', 'sizes': [record, ...]}``; a size's record holds
    ``size``, ``epochs``, ``steps``, ``wall_s``, ``images_per_sec`` (all replicas),
    ``trained_at`` (the git commit its run's ``config.json`` recorded) and
    one row per rate: ``test_accuracies``, ``train_accuracies``, ``mean``, ``std``,
    ``train_mean``, ``gap``, the held-out ``curve`` (mean over seeds) with its
    ``peak_epoch``, ``peak``, ``final`` and ``drop``, and ``vs_no_dropout`` (Welch's test
    of its test accuracies against rate 0's).
  """
  env = provenance.environment(command)
  base, grid = _grid(config_dir, tiny)
  records = []
  for size, epochs, every in grid['sizes']:
    name, config = f'train_{size}', _size_config(base, size, epochs, every)
    log(f'{name}: {len(grid["rates"])} rates x {seeds} seeds as one program, '
        f'{config.num_epochs} epochs, in {os.path.join(workdir, name)}')
    summaries = replicas.train_replicas(config, os.path.join(workdir, name),
                                        _variants(grid['rates'], seeds), log=log)
    record = _size_record(name, config, size, grid['rates'], summaries, workdir)
    # The commit that trained the runs (a rerun reads finished runs back, so a page
    # written later may name a newer commit than the one behind its numbers).
    record['trained_at'] = workdir_lib.read_record(
        os.path.join(workdir, name))['environment']['git_commit']
    records.append(record)
  results = {'environment': env, 'seeds': seeds, 'rates': list(grid['rates']),
             'tiny': tiny, 'sizes': records}
  if out:
    provenance.write_results(out, provenance.jsonable(results), format_results(results))
    for filename, plot in (('test_accuracy.png', accuracy_figure(results)),
                           ('learning_curves.png', curves_figure(results))):
      plot.figure.savefig(os.path.join(out, filename), dpi=DPI)
  return results


def _sizes_where(results: dict, sign: int) -> list[dict]:
  """The sizes where some rate moves test accuracy significantly in direction ``sign``."""
  return [r for r in results['sizes'] if any(
      row['vs_no_dropout']['significant'] and sign * row['vs_no_dropout']['diff'] > 0
      for row in r['rows'][1:])]


def summary(results: dict) -> str:
  """One sentence over all sizes: where dropout helped, and how much the baseline overfit."""
  describe = lambda records: ' and '.join(
      f'{r["size"]:,} images (train {100 * r["rows"][0]["train_mean"]:.1f}%, gap '
      f'{100 * r["rows"][0]["gap"]:.1f} points)' for r in records)
  helped, hurt = _sizes_where(results, 1), _sizes_where(results, -1)
  only_hurt = [r for r in hurt if r not in helped]
  neither = [r for r in results['sizes'] if r not in helped and r not in hurt]
  parts = []
  if helped:
    parts.append(f'some dropout rate raised test accuracy at {describe(helped)}')
  if only_hurt:
    parts.append(f'every rate that changed it lowered it at {describe(only_hurt)}')
  if neither:
    parts.append(f'no rate changed it detectably at {describe(neither)}')
  text = '; '.join(parts)
  tests = sum(len(r['rows']) - 1 for r in results['sizes'])
  return (f'Without dropout (train accuracy and train - test gap in brackets), {text}. '
          f'Significance: Welch\'s t-test over {results["seeds"]} seeds, p < '
          f'{stats.SIGNIFICANCE:g}, {tests} tests without a correction for multiple '
          f'comparisons, so about {tests * stats.SIGNIFICANCE:.1f} false positives are '
          f'expected by chance: a p-value near the threshold is weak evidence.')


def conclusions(results: dict) -> list[str]:
  """One sentence per size, computed from the tests: does dropout help there?"""
  lines = []
  for record in results['sizes']:
    base, others = record['rows'][0], record['rows'][1:]
    overfit = (f'without dropout the network reaches {100 * base["train_mean"]:.1f}% on '
               f'its training images and {100 * base["mean"]:.2f}% on the test set (a '
               f'gap of {100 * base["gap"]:.1f} points)')
    if base['peak'] is not None:
      overfit += (f'; its held-out accuracy peaks at epoch {base["peak_epoch"]:g} and ends '
                  f'{100 * base["drop"]:.2f} points below that peak')
    significant = [r for r in others if r['vs_no_dropout']['significant']]
    up = [f'{r["rate"]:g}' for r in significant if r['vs_no_dropout']['diff'] > 0]
    down = [f'{r["rate"]:g}' for r in significant if r['vs_no_dropout']['diff'] < 0]
    parts = []
    if up:
      parts.append(f'Dropout raises test accuracy at rate {" and ".join(up)}')
    if down:
      parts.append(f'{"it lowers it" if up else "Dropout lowers test accuracy"} at rate '
                   f'{" and ".join(down)}')
    effect = '; '.join(parts) or 'No rate changes test accuracy detectably'
    each = '; '.join(f'rate {r["rate"]:g}: {stats.verdict(r["vs_no_dropout"])}'
                     for r in others)
    epochs = f'{record["epochs"]} epoch{"s" * (record["epochs"] != 1)}'
    lines.append(f'**{record["size"]:,} training images, {epochs}:** '
                 f'{overfit}. {effect} ({each}).')
  return lines


def format_results(results: dict) -> str:
  """The markdown page: provenance, the table, the conclusions, the figures."""
  env = results['environment']
  seeds = results['seeds']
  header = provenance.page_header(TITLE, env)
  header[-1] += (' Runs trained at git '
                 f'{", ".join(sorted({r["trained_at"] for r in results["sizes"]}))}.')
  lines = [
      *header, '',
      f'Test accuracy: mean ± sample std over seeds 0..{seeds - 1} (n = {seeds}). Train: '
      f'accuracy on the training images in evaluation mode (no dropout), at the end. '
      f'Held-out: the last 5,000 training images, never trained on. The last column '
      f'tests each rate against no dropout at the same size: Welch\'s t-test over seeds, '
      f'two-sided, significant at p < {stats.SIGNIFICANCE:g}.', '',
      '| training images | epochs | dropout | test accuracy | train accuracy | gap '
      '(points) | held-out peak (epoch) -> end | vs no dropout |',
      '|---|---|---|---|---|---|---|---|',
  ]
  for record in results['sizes']:
    for row in record['rows']:
      std = '' if row['std'] is None else f' ± {100 * row["std"]:.2f}'
      curve = ('-' if row['peak'] is None else
               f'{100 * row["peak"]:.2f}% ({row["peak_epoch"]:g}) -> '
               f'{100 * row["final"]:.2f}%')
      versus = '-' if row['rate'] == results['rates'][0] else stats.verdict(
          row['vs_no_dropout'])
      lines.append(f'| {record["size"]:,} | {record["epochs"]} | {row["rate"]:g} | '
                   f'{100 * row["mean"]:.2f}%{std} | {100 * row["train_mean"]:.2f}% | '
                   f'{100 * row["gap"]:.1f} | {curve} | {versus} |')
  lines += ['', '## What it shows', '', summary(results), '']
  lines += [f'- {line}' for line in conclusions(results)]
  total = sum(r['wall_s'] for r in results['sizes'])
  timing = '; '.join(f'{r["size"]:,} images: {r["replicas"]} replicas in '
                     f'{provenance.duration(r["wall_s"])} ({r["images_per_sec"]:,.0f} '
                     f'training images/s over all replicas)' for r in results['sizes'])
  lines += ['', f'Cost: every size trained its {len(results["rates"])} rates x {seeds} '
            f'seeds as one vmapped program. {timing}; {provenance.duration(total)} in all.',
            '', '![test accuracy](test_accuracy.png)', '',
            '![learning curves](learning_curves.png)', '']
  return '\n'.join(lines)


def accuracy_figure(results: dict) -> Plot:
  """Test (solid, ± std) and train (dashed) accuracy against the rate, a panel per size.

  Returns:
    A :class:`Plot`; ``data``: ``{size: {'rate', 'test', 'std', 'train'}}`` (fractions).
  """
  sizes = results['sizes']
  fig, axs = new_figure(1, len(sizes), 3.4)
  data = {}
  for ax, record in zip(axs[0], sizes):
    rows = record['rows']
    rate = np.asarray([r['rate'] for r in rows])
    test = np.asarray([r['mean'] for r in rows])
    std = np.asarray([r['std'] or 0.0 for r in rows])
    train = np.asarray([r['train_mean'] for r in rows])
    ax.errorbar(rate, 100 * test, yerr=100 * std, marker='o', capsize=3, color='C0',
                label='test')
    ax.plot(rate, 100 * train, ls='--', marker='s', color='C1', label='train (eval mode)')
    for r, row in zip(rate[1:], rows[1:]):
      if row['vs_no_dropout']['significant']:
        ax.annotate('*', (r, 100 * row['mean']), textcoords='offset points',
                    xytext=(0, 8), ha='center', fontsize=12)
    ax.set_title(f'{record["size"]:,} images, {record["epochs"]} epoch'
                 f'{"s" * (record["epochs"] != 1)}', fontsize=10)
    ax.set_xlabel('dropout rate')
    ax.set_xticks(rate)
    ax.grid(alpha=0.3)
    data[record['size']] = {'rate': rate, 'test': test, 'std': std, 'train': train}
  axs[0, 0].set_ylabel('accuracy (%)')
  axs[0, 0].legend(fontsize=8)
  fig.suptitle('Dropout x training-set size (* : differs from no dropout, Welch p < '
               f'{stats.SIGNIFICANCE:g})', fontsize=10)
  return Plot(fig, data)


def curves_figure(results: dict) -> Plot:
  """Held-out accuracy per epoch, a panel per size, a line per rate (mean over seeds).

  Returns:
    A :class:`Plot`; ``data``: ``{size: {rate: (epochs, accuracies)}}``.
  """
  sizes = results['sizes']
  fig, axs = new_figure(1, len(sizes), 3.4)
  data = {}
  for ax, record in zip(axs[0], sizes):
    data[record['size']] = {}
    for i, row in enumerate(record['rows']):
      epochs = np.asarray(row['curve']['epoch'])
      accuracy = np.asarray(row['curve']['eval_accuracy'])
      ax.plot(epochs, 100 * accuracy, marker='o', ms=3, color=f'C{i}',
              label=f'dropout {row["rate"]:g}')
      data[record['size']][row['rate']] = (epochs, accuracy)
    ax.set_title(f'{record["size"]:,} images', fontsize=10)
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
  axs[0, 0].set_ylabel('held-out accuracy (%)')
  axs[0, 0].legend(fontsize=8)
  fig.suptitle('Held-out accuracy during training (last 5,000 training images)',
               fontsize=10)
  return Plot(fig, data)
