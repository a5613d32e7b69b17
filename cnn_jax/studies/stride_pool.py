"""Stride vs pooling at equal cost: does a stride-2 convolution downsample as well as pooling?

  python -m experiments.study --study stride_pool

The committed ablation sweep (``experiments/results/sweeps/ablation_simple_cnn``) set
the simple CNN's conv stride to 2 *on top of* its 2x2 max pooling: the last map shrank
from 7x7 to 2x2 and the parameters from 206,922 to 22,602, mostly in the dense layer.
Stride and capacity changed together. Here every variant downsamples to the same map
sizes, so the dense head stays the same, and the cost of each is counted
(:func:`cnn_jax.summary.summarize`):

* ``max_pool``: stride-1 convolutions, each followed by 2x2 max pooling (the base run);
* ``avg_pool``: the same with 2x2 average pooling;
* ``stride2``: the convolutions stride 2 and nothing pools: the same parameters, about
  a quarter of the convolutions' FLOPs (each computes a quarter of the outputs);
* ``stride2_wide``: ``stride2`` with its strided convolutions widened by one common
  factor (rounded widths) until its FLOPs are closest to ``max_pool``'s
  (:func:`widen_to_flops`). At equal map sizes ``stride2`` already has ``max_pool``'s
  parameters, so it is the parameter-matched variant; this one matches the compute.
* ``stride2_and_pool`` (simple CNN only): the sweep's confounded setting, kept so the
  table shows the confound beside its resolution.

For the simple CNN (``study_stride_pool_simple_cnn.py``, the lesson model) the strided
convolutions are both 3x3 SAME convs (28 -> 14 -> 7 either way). For LeNet-5
(``study_stride_pool_lenet5.py``) they are C1 and C3 (``stem_stride``, ``c3_stride``):
5x5 VALID on the 32x32 padded field gives 14 and then 5 pixels, as S2 and S4 do; C5
(120 channels on a 1x1 output) is not strided and not widened.

Each run's seeds train as one vmapped program; each variant is compared with
``max_pool`` of its model by Welch's test (:mod:`cnn_jax.stats`).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from matplotlib.ticker import EngFormatter

from cnn_jax import config_utils, provenance, stats
from cnn_jax.data import catalog
from cnn_jax.summary import Summary, dims, summarize
from cnn_jax.train import replicas
from cnn_jax.train.trainer import build_model
from cnn_jax.viz.common import DPI, Plot, new_figure

TITLE = ('Stride vs pooling at equal cost: a stride-2 convolution against max and average '
         'pooling at equal parameters and at equal FLOPs')
DEFAULT_SEEDS = 5  # 3 left LeNet-5's 1.4-point gaps unresolved (std 0.6-0.9 points)
FIGURE = 'accuracy_vs_cost.png'
REFERENCE = 'max_pool'  # every variant is tested against this one of its model


class Model(NamedTuple):
  """One architecture of the study.

  Attributes:
    title: its name in the results.
    config: its base config file (max pooling, stride 1), in the config folder.
    stride2: the overrides that make its downsampling convolutions stride 2 and remove
      the pooling.
    strided: how many leading entries of ``model.features`` those convolutions are.
  """
  title: str
  config: str
  stride2: dict
  strided: int


MODELS = {
    'simple_cnn': Model('simple CNN', 'study_stride_pool_simple_cnn.py',
                        {'model.strides': 2, 'model.pool': 'none'}, 2),
    'lenet5': Model('LeNet-5', 'study_stride_pool_lenet5.py',
                    {'model.stem_stride': 2, 'model.c3_stride': 2, 'model.pool': 'none'}, 2),
}
LABELS = {
    'max_pool': 'max pool',
    'avg_pool': 'avg pool',
    'stride2': 'stride 2',
    'stride2_wide': 'stride 2, widened',
    'stride2_and_pool': 'stride 2 + max pool',
}
_STYLES = {'max_pool': ('tab:blue', 'o'), 'avg_pool': ('tab:green', 's'),
           'stride2': ('tab:orange', '^'), 'stride2_wide': ('tab:red', 'D'),
           'stride2_and_pool': ('tab:gray', 'v')}


def cost(config) -> Summary:
  """The summary (parameters, FLOPs per example, layers) of ``config``'s model."""
  return summarize(build_model(config), catalog.model_input_shape(config.dataset))


def widen_to_flops(config, count: int, target: int) -> tuple[int, ...]:
  """Widths for the first ``count`` conv layers that bring the model's FLOPs to ``target``.

  The widths are scaled by one common factor, ``w / features[0]`` for ``w =
  features[0], features[0] + 1, ...``, and rounded; the scan stops at the first
  model at or above ``target``, and of it and the one before, the closer wins.

  Args:
    config: the config to widen (its ``model.features`` are the starting widths).
    count: how many leading entries of ``model.features`` to scale.
    target: FLOPs per example to match.

  Returns:
    The new ``model.features``.

  Raises:
    ValueError: if the starting model already has more FLOPs than ``target``.
  """
  base = tuple(config.model.features)
  best, first = None, base[0]
  while True:
    features = tuple(round(f * first / base[0]) if i < count else f
                     for i, f in enumerate(base))
    flops = cost(config_utils.apply_overrides(config, {'model.features': features})).flops
    if best is None and flops > target:
      raise ValueError(f'features={base} already have {flops:,} FLOPs, above the target '
                       f'{target:,}; widening cannot match it')
    if best is None or abs(flops - target) < abs(best[1] - target):
      best = (features, flops)
    if flops >= target:
      return best[0]
    first += 1


def variants(model: str, config) -> dict[str, dict]:
  """The downsampling variants of one model: variant name -> config overrides.

  Args:
    model: a key of :data:`MODELS`.
    config: its base config (max pooling, stride 1).

  Returns:
    Overrides per variant, in table order; ``stride2_wide``'s widths come from
    :func:`widen_to_flops` against the base config's FLOPs.
  """
  stride2 = MODELS[model].stride2
  widened = widen_to_flops(config_utils.apply_overrides(config, stride2),
                           MODELS[model].strided, cost(config).flops)
  out = {'max_pool': {}, 'avg_pool': {'model.pool': 'avg'}, 'stride2': dict(stride2),
         'stride2_wide': {**stride2, 'model.features': widened}}
  if model == 'simple_cnn':
    out['stride2_and_pool'] = {'model.strides': 2}
  return out


def _shrink(config, model: str):
  """The tiny setting: a few hundred images, one epoch, narrow layers."""
  small = {'simple_cnn': {'model.features': (4, 8), 'model.hidden': (16,)},
           'lenet5': {'model.features': (2, 4, 16), 'model.hidden': (8,)}}[model]
  return config_utils.apply_overrides(config, {
      **small, 'dataset.train_split': 'train[:256]', 'dataset.test_split': 'test[:128]',
      'batch_size': 32, 'eval_batch_size': 128, 'num_epochs': 1})


def _plan(config_dir: str, tiny: bool) -> list[tuple[str, str, object]]:
  """``(model, variant, config)`` of every run, in table order."""
  plan = []
  for model, spec in MODELS.items():
    base = config_utils.load_config(os.path.join(config_dir, spec.config))
    base = _shrink(base, model) if tiny else base
    for variant, overrides in variants(model, base).items():
      plan.append((model, variant, config_utils.apply_overrides(base, overrides)))
  return plan


def runs(config_dir: str, tiny: bool = False) -> dict:
  """Every training run: ``'<model>_<variant>'`` -> config.

  Args:
    config_dir: the folder of ``study_stride_pool_*.py``.
    tiny: the seconds-long setting of the tests.

  Returns:
    The configs, models in :data:`MODELS` order, variants in :func:`variants` order.
  """
  return {f'{model}_{variant}': config for model, variant, config in _plan(config_dir, tiny)}


def _last_map(summary: Summary):
  """The last spatial layer's row: the map the head reads, and its receptive field."""
  return [r for r in summary.rows if isinstance(r.rf_size, tuple)][-1]


def run(config_dir: str, *, seeds: int, workdir: str, out: str | None, tiny: bool = False,
        command: str = '', log=print, runner: replicas.Runner | None = None) -> dict:
  """Trains every run's seeds, measures the models and compares them; writes ``out``.

  Args:
    config_dir: the folder of ``study_stride_pool_*.py``.
    seeds: seeds ``0 .. seeds - 1`` per run.
    workdir: parent of the run directories (finished runs are read back).
    out: folder for ``results.json``, ``results.md`` and the figure; None: nothing.
    tiny: the seconds-long setting.
    command: the command line, recorded in the results.
    log: progress lines.
    runner: see :func:`cnn_jax.train.replicas.train_seeds`.

  Returns:
    ``{'environment', 'seeds', 'tiny', 'configs', 'records'}``; one record per run
    (:func:`measure`), plus ``vs_max_pool`` (:func:`cnn_jax.stats.welch` of its
    accuracies minus its model's max pooling's; None for max pooling itself) and
    ``vs_max_pool_interval`` (the same test's 95% interval of the difference, ``(low,
    high)``, or None).
  """
  records = []
  for model, variant, config in _plan(config_dir, tiny):
    name = f'{model}_{variant}'
    log(f'stride_pool: {name}')
    summaries, resumed = replicas.train_seeds(config, os.path.join(workdir, name),
                                              range(seeds), runner, log)
    records.append(measure(model, variant, config, summaries, resumed))
  for r in records:
    ref = next(x for x in records if x['model'] == r['model'] and x['variant'] == REFERENCE)
    a, b = r['test_accuracies'], ref['test_accuracies']
    test = r['vs_max_pool'] = None if r is ref else stats.welch(a, b)
    r['vs_max_pool_interval'] = (None if test is None or test['low'] is None
                                 else (test['low'], test['high']))
  results = {'environment': provenance.environment(command), 'seeds': seeds, 'tiny': tiny,
             'configs': {m: os.path.join(config_dir, spec.config)
                         for m, spec in MODELS.items()},
             'records': records}
  if out:
    provenance.write_results(out, results, format_results(results))
    accuracy_vs_cost(records).figure.savefig(os.path.join(out, FIGURE), dpi=DPI)
  return results


def measure(model: str, variant: str, config, summaries: list[dict], resumed: bool) -> dict:
  """One run's record: the model's cost and its seeds' accuracies and speed.

  Returns:
    ``model``, ``variant``, ``features``, ``params``, ``flops`` (forward, per example),
    ``map`` (the last spatial map's shape) and ``receptive_field`` (its size per
    axis), ``test_accuracies`` (per seed), ``mean``, ``std``, ``train_images_per_sec``
    (all seeds' images per second of the vmapped program), ``wall_s``, ``epochs``,
    ``resumed``.
  """
  summary = cost(config)
  last = _last_map(summary)
  return {'model': model, 'variant': variant, 'features': list(config.model.features),
          'params': summary.params, 'flops': summary.flops,
          'map': list(last.output_shape), 'receptive_field': list(last.rf_size),
          **provenance.seed_results(summaries),
          'train_images_per_sec': summaries[0]['train_images_per_sec'],
          'epochs': config.num_epochs, 'resumed': resumed}


def accuracy_vs_cost(records: list[dict]) -> Plot:
  """Test accuracy (mean ± std over seeds) against FLOPs and parameters, a row per model.

  Returns:
    Plot with ``data = {model: {'variants', 'flops', 'params', 'mean', 'std'}}``.
  """
  model_keys = [m for m in MODELS if any(r['model'] == m for r in records)]
  fig, axes = new_figure(len(model_keys), 2, 3.6 * len(model_keys))
  data = {}
  for row, model in enumerate(model_keys):
    rs = [r for r in records if r['model'] == model]
    data[model] = {'variants': [r['variant'] for r in rs],
                   'flops': np.array([r['flops'] for r in rs]),
                   'params': np.array([r['params'] for r in rs]),
                   'mean': np.array([r['mean'] for r in rs]),
                   'std': np.array([r['std'] or 0.0 for r in rs])}
    for col, (key, what) in enumerate((('flops', 'forward FLOPs per example'),
                                       ('params', 'parameters'))):
      ax = axes[row, col]
      x = data[model][key]
      # Variants of equal cost would hide each other: spread them by 1% of the axis.
      spread = 0.01 * (x.max() - x.min()) * (np.arange(len(rs)) - (len(rs) - 1) / 2)
      for i, r in enumerate(rs):
        color, marker = _STYLES[r['variant']]
        ax.errorbar(x[i] + spread[i], 100 * data[model]['mean'][i],
                    yerr=100 * data[model]['std'][i], fmt=marker, color=color, capsize=4,
                    label=f'{LABELS[r["variant"]]} ({_widths(r)})')
      ax.xaxis.set_major_formatter(EngFormatter(sep=' '))
      ax.set_xlabel(f'{what} (equal values drawn 1% apart)')
      ax.set_ylabel('test accuracy (%)')
      ax.margins(x=0.1, y=0.3)
      ax.grid(True, alpha=0.3)
      ax.set_title(MODELS[model].title, fontsize=9)
    axes[row, 0].legend(fontsize=7)
  n = len(records[0]['test_accuracies'])
  fig.suptitle(f'Fashion-MNIST, {records[0]["epochs"]} epoch(s): mean ± std over {n} '
               f'seed(s)', fontsize=10)
  return Plot(fig, data)


def _widths(record: dict) -> str:
  return '/'.join(map(str, record['features']))


def _interval(interval: list | None) -> str:
  if interval is None:
    return 'no interval'
  low, high = interval
  return f'95% interval {100 * low:+.2f} to {100 * high:+.2f}'


def _compared(test: dict, what: str) -> str:
  """``what`` against max pooling, in words decided by the test."""
  if not test['significant']:
    return f'{what} is not distinguishable from max pooling'
  return f'{what} {"beats" if test["diff"] > 0 else "falls short of"} max pooling'


def _paragraph(records: list[dict]) -> list[str]:
  """The interpretation, every number-dependent word computed from the records."""
  lines = []
  for model, spec in MODELS.items():
    rs = {r['variant']: r for r in records if r['model'] == model}
    if not rs:
      continue
    ref, s2, wide = rs['max_pool'], rs['stride2'], rs['stride2_wide']
    text = [f'**{spec.title}.**']
    if 'stride2_and_pool' in rs:
      both = rs['stride2_and_pool']
      text.append(
          f'The confound: stride 2 on top of max pooling (the committed sweep\'s "stride '
          f'2") leaves a {dims(both["map"][:-1])} map for the dense head instead of '
          f'{dims(ref["map"][:-1])}, so it has {ref["params"] / both["params"]:.1f}x fewer '
          f'parameters ({both["params"]:,} vs {ref["params"]:,}) and '
          f'{ref["flops"] / both["flops"]:.1f}x fewer FLOPs; its difference from max '
          f'pooling ({stats.verdict(both["vs_max_pool"])}) mixes stride with capacity.')
    text.append(
        f'At equal map sizes stride 2 keeps max pooling\'s {ref["params"]:,} parameters '
        f'at {s2["flops"] / ref["flops"]:.2f}x its FLOPs: '
        f'{stats.verdict(s2["vs_max_pool"])} ({_interval(s2["vs_max_pool_interval"])}).')
    text.append(
        f'Widened to {_widths(wide)} channels it has {wide["flops"] / ref["flops"]:.1%} of '
        f'max pooling\'s FLOPs and {wide["params"] / ref["params"]:.2f}x its parameters: '
        f'{stats.verdict(wide["vs_max_pool"])} ({_interval(wide["vs_max_pool_interval"])}).')
    text.append(f'Average pooling: {stats.verdict(rs["avg_pool"]["vs_max_pool"])}.')
    text.append(f'So at equal parameters {_compared(s2["vs_max_pool"], "stride 2")}, and at '
                f'equal FLOPs {_compared(wide["vs_max_pool"], "stride 2")}, at '
                f'p < {stats.SIGNIFICANCE} over {len(ref["test_accuracies"])} seeds.')
    lines += [' '.join(text), '']
  return lines


def format_results(results: dict) -> str:
  """The results as markdown: provenance, the table, the interpretation."""
  env, records = results['environment'], results['records']
  n = results['seeds']
  header = provenance.page_header('Stride vs pooling at equal cost', env)
  header[-1] += (' Base configs: '
                 + ', '.join(f'`{spec}`' for spec in results['configs'].values()) + '.')
  lines = [
      *header, '',
      'Every variant downsamples to the same map sizes as max pooling, so the dense head '
      'is the same, except "stride 2 + max pool", the committed ablation sweep\'s stride-2 '
      'setting, kept to show the confound. "Widened": the strided convolutions\' channels '
      'scaled by one factor to the FLOPs closest to max pooling\'s (`cnn_jax.studies.'
      'stride_pool.widen_to_flops`).', '',
      f'Test accuracy: mean ± sample std over seeds 0..{n - 1} (n = {n}), after '
      f'{records[0]["epochs"]} epoch(s) on the full training split; FLOPs: forward, per '
      'example, multiply-add = 2 (`cnn_jax.summary`); map and RF: the last spatial map '
      'the head reads and its receptive field in input pixels. Train img/s: images of '
      f'all {n} seeds per second, the seeds trained as one vmapped program on this '
      'shared CPU (other jobs may have run), so a rough guide to speed only. Welch: '
      'the variant minus max pooling of the same model, in accuracy points, two-sided. '
      f'Training took {provenance.duration(sum(r["wall_s"] for r in records))} in all '
      '(the runs\' wall times, compilation included'
      + ('; some runs were read back from an earlier invocation' if any(
          r['resumed'] for r in records) else '') + ').',
      '',
      '| model | variant | channels | params | FLOPs / example | map | RF '
      '| test accuracy (n) | train img/s | vs max pool (Welch) |',
      '|---|---|---|--:|--:|---|--:|---|--:|---|',
  ]
  for r in records:
    std = '' if r['std'] is None else f' ± {100 * r["std"]:.2f}'
    test = r['vs_max_pool']
    speed = r['train_images_per_sec']
    lines.append(
        f'| {MODELS[r["model"]].title} | {LABELS[r["variant"]]} | {_widths(r)} | '
        f'{r["params"]:,} | {r["flops"]:,} | {dims(r["map"])} | '
        f'{dims(r["receptive_field"])} | {100 * r["mean"]:.2f}%{std} ({n}) | '
        f'{"" if speed is None else f"{speed:,.0f}"} | '
        f'{"reference" if test is None else stats.verdict(test)} |')
  lines += ['', '## What it says', ''] + _paragraph(records)
  lines += [f'![accuracy against FLOPs and parameters]({FIGURE})', '']
  return '\n'.join(lines)
