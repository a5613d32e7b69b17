"""DNN vs CNN: the scalability argument for convolution, measured on this project's models.

  python -m experiments.dnn_vs_cnn [--seeds 3] [--notrain]

Two parts:

* :func:`growth_table`: how the first layer's parameters grow with the input. A dense
  first layer of ``H`` units on an ``h x w x c`` input has ``H * (h * w * c) + H``
  parameters; a convolution of ``F`` filters of ``k x k`` has ``k * k * c * F + F``,
  whatever the input's size. The counts are not computed from these formulas: the
  study's MLP and CNN are built from their configs and summarised
  (:func:`cnn_jax.summary.summarize`) at each input shape, and their first
  parameterised layer is read off (the tests compare them with the formulas). The
  whole models' counts are listed too: the CNN's dense layer on flattened features
  grows with the input as well, which a global pooling head avoids (ResNet-20, whose
  head is a global average pool, has the same parameters at every input size).
* :func:`compare`: both models trained on the same data (Fashion-MNIST) with ``n``
  seeds each (:func:`cnn_jax.train.replicas.train_seeds`), reported with parameters,
  forward FLOPs per example, test accuracy mean ± std and wall time.

:func:`run` writes ``results.json``, ``results.md`` and two figures
(``params_vs_input_size.png``; ``accuracy_vs_params.png``, accuracy against parameters and
against FLOPs).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnn_jax import config_utils, models, provenance
from cnn_jax.data import catalog
from cnn_jax.summary import Row, Summary, summarize
from cnn_jax.train import replicas
from cnn_jax.train.trainer import build_model
from cnn_jax.viz.common import DPI, Plot, new_figure

INPUT_SIZES = (28, 32, 64, 128, 224, 256)
CHANNELS = (1, 3)
DEFAULT_WORKDIR = 'runs/dnn_vs_cnn'
GROWTH_FIGURE = 'params_vs_input_size.png'
ACCURACY_FIGURE = 'accuracy_vs_params.png'
GAP_MODEL = 'resnet20'  # a CNN with a global average pooling head
_COLORS = {'dense': 'tab:blue', 'conv': 'tab:orange', 'mlp': 'tab:blue', 'cnn': 'tab:orange',
           'gap_cnn': 'tab:green'}


def first_layer(summary: Summary) -> Row:
  """The row of the first layer with parameters in a model's summary.

  Raises:
    ValueError: if no layer has parameters.
  """
  for row in summary.rows:
    if row.params:
      return row
  raise ValueError(f'{summary.model} has no layer with parameters')


def growth_table(mlp_config: str, cnn_config: str,
                 sizes: Sequence[int] = INPUT_SIZES, channels: Sequence[int] = CHANNELS,
                 gap_model: str = GAP_MODEL) -> list[dict]:
  """First-layer and total parameters of the MLP and the CNN per square input size.

  Args:
    mlp_config: config file of the dense model.
    cnn_config: config file of the convolutional model.
    sizes: input sides ``s`` (inputs ``s x s x c``).
    channels: input channels ``c`` (1: grayscale, 3: RGB).
    gap_model: a registered model with a global pooling head, for comparison.

  Returns:
    One dict per (size, channels): ``size``, ``channels``, ``inputs`` (``s * s * c``),
    ``dense_first_layer`` and ``conv_first_layer`` (parameters of each model's first
    layer), ``mlp_params``, ``cnn_params`` and ``gap_cnn_params`` (whole models).
  """
  mlp = build_model(config_utils.load_config(mlp_config))
  cnn = build_model(config_utils.load_config(cnn_config))
  gap = models.create(gap_model)
  table = []
  for c in channels:
    for s in sizes:
      dense, conv = summarize(mlp, (s, s, c)), summarize(cnn, (s, s, c))
      table.append({'size': s, 'channels': c, 'inputs': s * s * c,
                    'dense_first_layer': first_layer(dense).params,
                    'conv_first_layer': first_layer(conv).params,
                    'mlp_params': dense.params, 'cnn_params': conv.params,
                    'gap_cnn_params': summarize(gap, (s, s, c)).params})
  return table


def compare(configs: dict[str, str], seeds: int = 3,
            workdir: str = DEFAULT_WORKDIR, runner: replicas.Runner | None = None,
            log=print, fan_out: replicas.FanOut | None = None) -> list[dict]:
  """Trains each config with ``seeds`` seeds on its data and measures it.

  Args:
    configs: label -> config file; every config should read the same dataset splits.
    seeds: seeds ``0 .. seeds - 1``.
    workdir: parent of the per-label run directories (finished ones are read back).
    runner: see :func:`cnn_jax.train.replicas.train_seeds`.
    log: progress lines.
    fan_out: trains both elsewhere, at once (``--cluster``; see
      :func:`cnn_jax.train.replicas.train_seeds_each`).

  Returns:
    One record per label: ``label``, ``config``, ``model``, ``params``, ``flops``
    (forward, per example, multiply-add = 2), ``test_accuracies``, ``mean``, ``std``,
    ``epochs``, ``wall_s``, ``resumed``.

  Raises:
    RuntimeError: naming the runs that failed under ``fan_out`` (after the others
      finished).
  """
  loaded = {label: config_utils.load_config(spec) for label, spec in configs.items()}
  trained = replicas.train_seeds_each(
      [(label, config, os.path.join(workdir, label)) for label, config in loaded.items()],
      range(seeds), runner, fan_out, log)
  failed = [f'{label} on {outcome.host}: {outcome.error}'
            for label, (_, _, outcome) in trained.items() if outcome and outcome.error]
  if failed:
    raise RuntimeError(f'training failed: {"; ".join(failed)}')
  records = []
  for label, spec in configs.items():
    config = loaded[label]
    summary = summarize(build_model(config), catalog.model_input_shape(config.dataset))
    summaries, resumed, _ = trained[label]
    records.append({'label': label, 'config': spec, 'model': config.model.name,
                    'dataset': config.dataset.name, 'params': summary.params,
                    'flops': summary.flops, **provenance.seed_results(summaries),
                    'epochs': config.num_epochs, 'resumed': resumed})
  return records


def params_vs_input_size(table: list[dict]) -> Plot:
  """Parameters against the input side, log scale: the first layers (left) and the
  whole models (right: the MLP, the CNN with its dense head on flattened features, and
  a CNN with a global average pooling head).

  Returns:
    Plot with ``data = {'sizes', 'dense': {c: counts}, 'conv': {c: counts}, 'mlp':
    {c: counts}, 'cnn': {c: counts}, 'gap_cnn': {c: counts}}``.
  """
  sizes = sorted({r['size'] for r in table})
  data = {'sizes': np.array(sizes), 'dense': {}, 'conv': {}, 'mlp': {}, 'cnn': {},
          'gap_cnn': {}}
  fig, axes = new_figure(1, 2, 4.5)
  panels = ((axes[0, 0], (('dense', 'o', 'dense first layer', 'dense_first_layer'),
                          ('conv', 's', 'conv first layer', 'conv_first_layer'))),
            (axes[0, 1], (('mlp', 'o', 'MLP', 'mlp_params'),
                          ('cnn', 's', 'CNN, dense head', 'cnn_params'),
                          ('gap_cnn', '^', f'{GAP_MODEL}, global pooling',
                           'gap_cnn_params'))))
  for c, line in zip(sorted({r['channels'] for r in table}), ('-', '--', ':', '-.')):
    rows = sorted((r for r in table if r['channels'] == c), key=lambda r: r['size'])
    name = {1: 'grayscale', 3: 'RGB'}.get(c, f'{c} channels')
    for ax, series in panels:
      for kind, marker, label, key in series:
        counts = np.array([r[key] for r in rows])
        data[kind][c] = counts
        ax.plot(sizes, counts, marker + line, color=_COLORS[kind], label=f'{label}, {name}')
  for ax, what in ((axes[0, 0], 'parameters of the first layer'),
                   (axes[0, 1], 'parameters of the whole model')):
    ax.set_xscale('log', base=2)
    ax.set_yscale('log')
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel('input side s (inputs s x s x channels)')
    ax.set_ylabel(what)
    ax.grid(True, which='major', alpha=0.3)
    ax.legend(fontsize=7)
  axes[0, 0].set_title('A dense first layer grows with the input;\na conv layer does not',
                       fontsize=9)
  axes[0, 1].set_title('Whole models: a dense head on flattened maps grows too;\na global '
                       'pooling head does not', fontsize=9)
  return Plot(fig, data)


def accuracy_vs_params(records: list[dict]) -> Plot:
  """Test accuracy (mean, with ± std bars) against parameters and against FLOPs.

  Returns:
    Plot with ``data = {'labels', 'params', 'flops', 'mean', 'std'}``.
  """
  data = {'labels': [r['label'] for r in records],
          'params': np.array([r['params'] for r in records]),
          'flops': np.array([r['flops'] for r in records]),
          'mean': np.array([r['mean'] for r in records]),
          'std': np.array([r['std'] or 0.0 for r in records])}
  fig, axes = new_figure(1, 2, 4.0)
  for ax, key, label in ((axes[0, 0], 'params', 'parameters'),
                         (axes[0, 1], 'flops', 'forward FLOPs per example')):
    for i, r in enumerate(records):
      ax.errorbar(data[key][i], 100 * data['mean'][i], yerr=100 * data['std'][i], fmt='o',
                  capsize=4, label=f'{r["label"]} ({r["model"]})')
    ax.set_xscale('log')
    # A decade either side, so models of near-equal size still sit on a readable axis.
    ax.set_xlim(data[key].min() / 10, data[key].max() * 10)
    ax.set_xlabel(label)
    ax.set_ylabel('test accuracy (%)')
    ax.margins(y=0.5)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
  n = len(records[0]['test_accuracies'])
  fig.suptitle(f'{records[0]["dataset"]}: mean ± std over {n} seed(s)', fontsize=10)
  return Plot(fig, data)


def run(configs: dict[str, str], seeds: int = 3, train: bool = True,
        workdir: str = DEFAULT_WORKDIR, out: str | None = None, command: str = '',
        runner: replicas.Runner | None = None, log=print,
        fan_out: replicas.FanOut | None = None) -> dict:
  """The growth table and (``train``) the trained comparison; writes them to ``out``.

  Args:
    configs: ``{'mlp': file, 'cnn': file}``, the models of both parts.
    seeds: seeds per model.
    train: also train the models (minutes); False gives the table alone (seconds).
    workdir: parent of the run directories.
    out: folder for the results and figures (created); None writes nothing.
    command: the command line, recorded in the results.
    runner: see :func:`cnn_jax.train.replicas.train_seeds`.
    log: progress lines.
    fan_out: see :func:`compare`.

  Returns:
    ``{'environment', 'configs', 'first_layers', 'growth', 'trained'}``;
    ``first_layers`` describes each model's first layer on its dataset, ``trained`` is
    :func:`compare`'s records (empty without ``train``).
  """
  growth = growth_table(configs['mlp'], configs['cnn'])
  first = {}
  for label, spec in configs.items():
    config = config_utils.load_config(spec)
    first[label] = first_layer(summarize(build_model(config),
                                         catalog.model_input_shape(config.dataset)))
  results = {'environment': provenance.environment(command), 'configs': dict(configs),
             'first_layers': {k: {'name': r.name, 'kind': r.kind, 'params': r.params,
                                  'output_shape': list(r.output_shape)}
                              for k, r in first.items()},
             'growth': growth,
             'trained': (compare(configs, seeds, workdir, runner, log, fan_out) if train
                         else [])}
  if out:
    provenance.write_results(out, results, format_results(results))
    params_vs_input_size(growth).figure.savefig(os.path.join(out, GROWTH_FIGURE), dpi=DPI)
    if results['trained']:
      accuracy_vs_params(results['trained']).figure.savefig(
          os.path.join(out, ACCURACY_FIGURE), dpi=DPI)
  return results


def format_results(results: dict) -> str:
  """The results as markdown: environment, the growth table, the trained comparison."""
  env, first = results['environment'], results['first_layers']
  dense, conv = first['mlp'], first['cnn']
  header = provenance.page_header('DNN vs CNN: parameters, FLOPs and accuracy', env)
  header[-1] += (f' Models: `{results["configs"]["mlp"]}` (MLP) and '
                 f'`{results["configs"]["cnn"]}` (CNN).')
  lines = [
      *header, '',
      '## First-layer parameters against input size', '',
      f'A dense first layer of H units has H·(h·w·c) + H parameters, a convolution of F '
      f'k×k filters k·k·c·F + F. Counted by `cnn_jax.summary` on the built models: the '
      f'MLP\'s `{dense["name"]}` (H = {dense["output_shape"][-1]}) and the CNN\'s '
      f'`{conv["name"]}` (F = {conv["output_shape"][-1]}). The whole CNN grows too, '
      f'through its dense layer on the flattened features.', '',
      '| input | inputs | dense first layer | conv first layer | dense / conv '
      '| whole MLP | whole CNN |',
      '|---|---|---|---|---|---|---|',
  ]
  for r in results['growth']:
    lines.append(f'| {r["size"]}x{r["size"]}x{r["channels"]} | {r["inputs"]:,} | '
                 f'{r["dense_first_layer"]:,} | {r["conv_first_layer"]:,} | '
                 f'{r["dense_first_layer"] / r["conv_first_layer"]:,.0f}x | '
                 f'{r["mlp_params"]:,} | {r["cnn_params"]:,} |')
  trained = results['trained']
  if trained:
    n = len(trained[0]['test_accuracies'])
    lines += ['', f'## Trained on {trained[0]["dataset"]}', '',
              f'Final test accuracy, mean ± sample standard deviation over seeds '
              f'0..{n - 1}; FLOPs per example of the forward pass (multiply-add = 2); '
              f'wall time of the run that trained all seeds.', '',
              '| model | config | parameters | FLOPs / example | test accuracy (n) '
              '| epochs | wall time |',
              '|---|---|---|---|---|---|---|']
    for r in trained:
      std = '' if r['std'] is None else f' ± {100 * r["std"]:.2f}'
      lines.append(f'| {r["label"]} ({r["model"]}) | `{r["config"]}` | {r["params"]:,} | '
                   f'{r["flops"]:,} | {100 * r["mean"]:.2f}%{std} ({n}) | {r["epochs"]} | '
                   f'{provenance.duration(r["wall_s"])} |')
  return '\n'.join(lines) + '\n'
