"""Permuted pixels: a dense network does not use locality, a convolutional one does.

  python -m experiments.study --study permuted_pixels

Fashion-MNIST with one fixed permutation of the 784 pixel positions, drawn from
:data:`PERMUTE_SEED` and applied to the training and the test images alike
(``config.dataset.permute_seed``; :func:`cnn_jax.data.permute_positions`). The MLP
flattens its input, so the permuted problem is the original one with the rows of its
first weight matrix reordered: the same problem up to initialisation, and its accuracy
should not move beyond seed noise. The CNN's 3x3 kernels and 2x2 pools read
neighbourhoods that no longer exist, so its accuracy should fall.

Four runs, each trained with the same seeds (one vmapped program per run): the MLP
(``mlp_fashion_mnist.py``) and the lesson's CNN (``fashion_mnist_lesson.py``), on the
original and on the permuted pixels. Each model's change is a Welch test of permuted
against original (:func:`cnn_jax.stats.welch`) with the 95% interval of the
difference, so "unchanged within noise" and "drops" are stated tests, not readings of
a table; the CNN's lead over the MLP is tested on both inputs too.

The shifted-inputs study (:mod:`cnn_jax.studies.shifted_inputs`) trains the same two
unpermuted runs under the same names: pointed at one ``--workdir``, the second study
reads them back instead of training them again. Cost of the committed run (3 seeds) on
the 2-core CPU: 5 min 2 s, the MLP runs 30 s each and the CNN runs about 2 min each.
"""

from __future__ import annotations

import math
import os

import numpy as np

from cnn_jax import config_utils, provenance, stats
from cnn_jax.train import replicas
from cnn_jax.viz.common import DPI, Plot, new_figure

TITLE = ('Permuted pixels (the claim: an MLP is unchanged within noise, a CNN loses '
         'accuracy)')
DEFAULT_SEEDS = 3
PERMUTE_SEED = 0  # the one permutation of the pixel positions, for train and test
FIGURE = 'accuracy.png'

# Label -> config file in the config folder: the two models both locality studies train.
MODELS = {'mlp': 'mlp_fashion_mnist.py', 'cnn': 'fashion_mnist_lesson.py'}
NAMES = {'mlp': 'MLP', 'cnn': 'CNN (dense head)', 'cnn_gap': 'CNN (global pooling)'}

# The tiny setting: a few hundred images, one epoch, narrow models (seconds per run).
TINY = {'dataset.train_split': 'train[:384]', 'dataset.test_split': 'test[:128]',
        'batch_size': 32, 'eval_batch_size': 64, 'num_epochs': 1, 'tensorboard': False}
TINY_MODELS = {'mlp': {'model.hidden': (32,)},
               'simple_cnn': {'model.features': (4, 8), 'model.hidden': (16,)}}


def load(config_dir: str, file: str, tiny: bool = False):
  """A study's model config from ``config_dir``, shrunk to seconds with ``tiny``.

  Shared with :mod:`cnn_jax.studies.shifted_inputs`.

  Args:
    config_dir: the folder of the experiment configs.
    file: the config file's name in it.
    tiny: apply :data:`TINY` and the model's :data:`TINY_MODELS` entry.

  Returns:
    The ConfigDict.
  """
  config = config_utils.load_config(os.path.join(config_dir, file))
  if not tiny:
    return config
  return config_utils.apply_overrides(config, {**TINY, **TINY_MODELS[config.model.name]})


def runs(config_dir: str, tiny: bool = False) -> dict:
  """``mlp``, ``mlp_permuted``, ``cnn``, ``cnn_permuted``: run name -> config."""
  configs = {}
  for label, file in MODELS.items():
    config = load(config_dir, file, tiny)
    configs[label] = config
    configs[f'{label}_permuted'] = config_utils.apply_overrides(
        config, {'dataset.permute_seed': PERMUTE_SEED})
  return configs


def train(configs: dict, seeds: int, workdir: str, log=print) -> dict:
  """Trains (or reads back) every run with seeds ``0 .. seeds - 1``.

  Shared with :mod:`cnn_jax.studies.shifted_inputs`.

  Args:
    configs: run name -> config; each trains in ``workdir/<run name>``.
    seeds: replicas per run.
    workdir: the parent folder.
    log: progress lines.

  Returns:
    Run name -> ``{'test_accuracies', 'mean', 'std', 'epochs', 'num_params', 'wall_s',
    'resumed'}``; ``wall_s`` is the time of the program that trained all seeds.
  """
  records = {}
  for name, config in configs.items():
    log(f'{name}: {config.model.name}, {config.num_epochs} epochs, {seeds} seeds')
    summaries, resumed = replicas.train_seeds(config, os.path.join(workdir, name),
                                              range(seeds), log=log)
    records[name] = {'model': config.model.name, **provenance.seed_results(summaries),
                     'epochs': config.num_epochs,
                     'num_params': summaries[0]['num_params'], 'resumed': resumed}
  return records


def compare(a, b) -> dict:
  """:func:`cnn_jax.stats.welch` of ``a`` against ``b``, with its words as ``verdict``.

  Shared with :mod:`cnn_jax.studies.shifted_inputs`.
  """
  test = stats.welch(a, b)
  return {**test, 'verdict': stats.verdict(test)}


def points(value: float | None, sign: bool = True) -> str:
  """An accuracy (fraction) or difference as points: ``0.0123`` -> ``'+1.23'``."""
  if value is None or not math.isfinite(value):
    return 'n/a'
  return f'{100 * value:{"+" if sign else ""}.2f}'


def interval(test: dict) -> str:
  """``'[-0.31, +0.12] points'``, the 95% interval of a :func:`compare` result."""
  if test['low'] is None:
    return 'no interval (too few seeds or no spread)'
  return f'[{points(test["low"])}, {points(test["high"])}] points'


def mean_std(record: dict) -> str:
  """``'91.32 ± 0.12%'`` from a run record."""
  std = '' if record['std'] is None else f' ± {points(record["std"], False)}'
  return f'{points(record["mean"], False)}{std}%'


def run(config_dir: str, *, seeds: int, workdir: str, out: str | None, tiny: bool = False,
        command: str = '', log=print) -> dict:
  """Trains the four runs, tests the changes and writes the results to ``out``.

  Returns:
    ``{'environment', 'configs', 'permute_seed', 'seeds', 'tiny', 'runs', 'changes',
    'gaps'}``: ``runs`` from :func:`train`; ``changes[label]`` the :func:`compare` of
    permuted against original accuracy; ``gaps[input]`` the CNN against the MLP on
    ``'original'`` and ``'permuted'`` inputs.
  """
  records = train(runs(config_dir, tiny), seeds, workdir, log)
  acc = {name: r['test_accuracies'] for name, r in records.items()}
  results = {
      'environment': provenance.environment(command), 'configs': dict(MODELS),
      'permute_seed': PERMUTE_SEED, 'seeds': list(range(seeds)), 'tiny': tiny,
      'runs': records,
      'changes': {label: compare(acc[f'{label}_permuted'], acc[label]) for label in MODELS},
      'gaps': {'original': compare(acc['cnn'], acc['mlp']),
               'permuted': compare(acc['cnn_permuted'], acc['mlp_permuted'])},
  }
  if out:
    provenance.write_results(out, results, format_results(results))
    accuracy_bars(results).figure.savefig(os.path.join(out, FIGURE), dpi=DPI)
  return results


def accuracy_bars(results: dict) -> Plot:
  """Left: test accuracy per model, original against permuted pixels (mean, ± std bars,
  one dot per seed). Right: permuted minus original with its 95% interval.

  Returns:
    Plot with ``data = {'labels', 'original': (mean, std), 'permuted': (mean, std),
    'change': (diff, low, high)}``, arrays in accuracy points, one entry per model.
  """
  labels = list(MODELS)
  runs_ = results['runs']
  data = {'labels': labels}
  fig, axes = new_figure(1, 2, 3.8)
  ax = axes[0, 0]
  x = np.arange(len(labels))
  for offset, (kind, suffix, color) in zip((-0.2, 0.2), (('original', '', 'tab:blue'),
                                                         ('permuted', '_permuted',
                                                          'tab:red'))):
    records = [runs_[label + suffix] for label in labels]
    mean = np.array([100 * r['mean'] for r in records])
    std = np.array([100 * (r['std'] or 0.0) for r in records])
    data[kind] = (mean, std)
    ax.bar(x + offset, mean, 0.4, yerr=std, capsize=4, color=color, alpha=0.7,
           label=f'{kind} pixels')
    for i, r in enumerate(records):
      ax.plot([x[i] + offset] * len(r['test_accuracies']),
              100 * np.array(r['test_accuracies']), 'k.', ms=4)
  low = min(data['original'][0].min(), data['permuted'][0].min())
  high = max((m + s).max() for m, s in (data['original'], data['permuted']))
  ax.set_ylim(max(0.0, low - 8), high + 6)  # room above the bars for the legend
  ax.set_xticks(x, [NAMES[label] for label in labels])
  ax.set_ylabel('test accuracy (%)')
  ax.set_title(f'Mean ± std over {len(results["seeds"])} seeds (dots: seeds)', fontsize=9)
  ax.legend(fontsize=8, loc='upper center', ncol=2)
  ax.grid(True, axis='y', alpha=0.3)
  ax = axes[0, 1]
  changes = [results['changes'][label] for label in labels]
  diff = np.array([100 * c['diff'] for c in changes])
  lo = np.array([100 * (c['diff'] if c['low'] is None else c['low']) for c in changes])
  hi = np.array([100 * (c['diff'] if c['high'] is None else c['high']) for c in changes])
  data['change'] = (diff, lo, hi)
  ax.errorbar(x, diff, yerr=[diff - lo, hi - diff], fmt='o', capsize=6, color='tab:red')
  ax.axhline(0, color='k', lw=0.8)
  ax.set_xticks(x, [NAMES[label] for label in labels])
  ax.set_xlim(-0.6, len(labels) - 0.4)
  ax.set_ylabel('permuted - original (points)')
  ax.set_title('Change with its 95% interval (Welch)', fontsize=9)
  ax.grid(True, axis='y', alpha=0.3)
  return Plot(fig, data)


def _change_words(label: str, test: dict) -> str:
  name = NAMES[label]
  if not test['significant']:
    return (f'the {name} shows no evidence of a change ({test["verdict"]}; 95% interval '
            f'of the difference {interval(test)})')
  way = 'drops' if test['diff'] < 0 else 'rises'
  return f'the {name} {way} ({test["verdict"]}; 95% interval {interval(test)})'


def interpretation(results: dict) -> str:
  """The paragraph that reads the tests, its words chosen by their numbers."""
  mlp, cnn = results['changes']['mlp'], results['changes']['cnn']
  holds = (not mlp['significant']) and cnn['significant'] and cnn['diff'] < 0
  gap_o, gap_p = results['gaps']['original'], results['gaps']['permuted']
  n = len(results['seeds'])
  text = (f'With the pixels permuted, {_change_words("mlp", mlp)}, and '
          f'{_change_words("cnn", cnn)}. ')
  text += ('The claim holds at the 5% level: the MLP is unchanged within the noise of '
           f'{n} seeds and the CNN drops. ' if holds else
           f'The claim (MLP unchanged, CNN drops) does not hold as stated at the 5% '
           f'level with {n} seeds. ')
  if not mlp['significant']:
    text += ('"Unchanged" means no detectable difference: the interval above is the '
             'range of MLP changes these seeds cannot rule out. ')
  text += (f'The CNN\'s lead over the MLP is {points(gap_o["diff"])} points on the '
           f'original pixels ({gap_o["verdict"]}) and {points(gap_p["diff"])} on the '
           f'permuted ones ({gap_p["verdict"]}).')
  return text


def format_results(results: dict) -> str:
  """The results page: provenance, the table, the tests and their reading."""
  env, runs_ = results['environment'], results['runs']
  n = len(results['seeds'])
  header = provenance.page_header(TITLE, env)
  if results['tiny']:
    header[-1] += ' **Tiny setting** (a test of the code, not a result).'
  lines = [
      *header, '',
      f'Fashion-MNIST, and Fashion-MNIST with one fixed permutation of the 784 pixel '
      f'positions (`dataset.permute_seed={results["permute_seed"]}`, the same for the '
      f'training and the test images). Final test accuracy, mean ± sample std over seeds '
      f'0..{n - 1} (each seed: initialisation, batch order and dropout); wall time of '
      f'the program that trained all seeds of a run. ![accuracy]({FIGURE})', '',
      '| model | config | parameters | epochs | original pixels | permuted pixels '
      '| permuted - original | 95% interval | Welch p | wall time (orig. / perm.) |',
      '|---|---|---|---|---|---|---|---|---|---|',
  ]
  for label, file in results['configs'].items():
    r, p, test = runs_[label], runs_[f'{label}_permuted'], results['changes'][label]
    pval = 'n/a' if test['p'] is None else f'{test["p"]:.2g}'
    lines.append(
        f'| {NAMES[label]} | `{file}` | {r["num_params"]:,} | {r["epochs"]} | '
        f'{mean_std(r)} | {mean_std(p)} | {points(test["diff"])} | {interval(test)} | '
        f'{pval} | {provenance.duration(r["wall_s"])} / '
        f'{provenance.duration(p["wall_s"])} |')
  lines += ['', 'Per seed:', '']
  for name, r in runs_.items():
    lines.append(f'- `{name}`: ' + ', '.join(f'{points(a, False)}%'
                                             for a in r['test_accuracies']))
  lines += ['', '## Reading', '', interpretation(results), '']
  return '\n'.join(lines)
