"""Sweeps: a grid of config settings x seeds, trained in as few programs as possible.

  python -m experiments.sweep --config experiments/configs/ablation_simple_cnn_dropout_stride.py \
      --seeds 3 [--sweep model.dropout_rate=0,0.1 --sweep model.strides=1,2]

Axes come from the config file's optional ``get_sweep()`` (``{'model.dropout_rate': [0,
0.1], 'model.strides': [1, 2]}``) and from ``key=v1,v2,...`` flags. A flag replaces the
file's axis of the same key and adds any other, so ``--sweep model.strides=1`` pins an
axis of the file to one value. Flag values are parsed like ``--config.key=value``
overrides, by the field's type (ints, floats, bools, tuples such as ``(8,16)``; commas
inside brackets do not split values). The grid is the product of the axes, in their
order; every setting is trained with the seeds ``config.seed + i`` for ``i < seeds``.
``seed`` itself is not an axis: the seeds are the replicates each row averages over.

What trains together: settings that differ only in values one compiled program can take
as inputs (seeds and dropout rates; :func:`cnn_jax.train.replicas.is_vmappable`) form a
*group*, trained by :func:`cnn_jax.train.replicas.train_replicas` as one vmapped
program. Every distinct combination of the other swept keys (strides, kernel sizes,
widths, depth: they change array shapes) is a group of its own, in ``workdir/<name>/``
with ``<name>`` its settings, e.g. ``model.strides=2``.

The workdir:

* ``sweep.json``: base config, axes, seeds, groups, command and environment, written
  once. A workdir holding a different sweep (config, axes or seeds) is refused and left
  untouched; the same sweep resumes: finished groups are read back, an interrupted one
  continues from its checkpoints.
* ``<group>/``: the workdir of ``train_replicas`` (``summary.json``,
  ``replica_NN/metrics.jsonl``, ...).
* ``results.csv``, ``results.md``: one row per setting, mean and sample std (ddof=1)
  over seeds; see :func:`aggregate`. The sweep sets ``config.evaluate_train`` so each
  replica also reports its clean (eval-mode) training accuracy, for the train - test
  gap.
* ``test_accuracy.png``, ``overfitting_gap.png``, ``learning_curves.png``
  (:mod:`cnn_jax.viz.sweep_figures`).
"""

from __future__ import annotations

import csv
import functools
import itertools
import os
import re
from typing import Callable, NamedTuple, Sequence

import jax
import ml_collections
import numpy as np
from absl import flags
from ml_collections.config_flags import tuple_parser

from cnn_jax import config_utils, provenance, stats
from cnn_jax import summary as summary_lib
from cnn_jax.data import catalog
from cnn_jax.train import replicas
from cnn_jax.train.trainer import build_model
from cnn_jax.train import workdir as workdir_lib
from cnn_jax.train.metrics import METRICS_FILE
from cnn_jax.viz import sweep_figures
from cnn_jax.viz.common import DPI

MANIFEST_FILE = 'sweep.json'
RESULTS_CSV = 'results.csv'
RESULTS_MD = provenance.RESULTS_MD
# The parts of the manifest that define a sweep; the command and environment may differ
# between an interrupted run and its resumption.
_IDENTITY = ('config', 'axes', 'seeds')

# Parsers by field type, as ml_collections' config_flags parses --config.key=value.
_PARSERS = {float: flags.FloatParser(), int: flags.IntegerParser(),
            bool: flags.BooleanParser(), str: flags.ArgumentParser(),
            tuple: tuple_parser.TupleParser()}

# Row metrics: name in the row -> the replica summary key it averages (None: computed).
METRICS = {
    'test_accuracy': 'test_accuracy',
    'best_eval_accuracy': 'best_eval_accuracy',
    'train_accuracy': 'train_accuracy',
    'gap': None,  # train_accuracy - test_accuracy, per seed
    'wall_s': 'wall_s',
    'images_per_sec': 'train_images_per_sec',
}


# Row keys of a run fanned out over a cluster (see aggregate's outcomes).
CLUSTER_COLUMNS = ('status', 'host', 'group_s', 'error')


class Group(NamedTuple):
  """Settings trained together as one vmapped program.

  Attributes:
    name: the group's folder in the sweep workdir (its non-vmappable settings).
    settings: ``{key: value}`` of the swept keys that are not vmappable.
    variants: one dict per replica: the vmappable swept keys' values and ``'seed'``.
  """
  name: str
  settings: dict
  variants: list[dict]


def _node(config: ml_collections.ConfigDict, key: str):
  """The ConfigDict holding the dotted ``key`` and the key's last part."""
  parent, _, leaf = key.rpartition('.')
  node = functools.reduce(getattr, parent.split('.'), config) if parent else config
  return node, leaf


def _apply(config: ml_collections.ConfigDict, settings: dict) -> ml_collections.ConfigDict:
  """A copy of ``config`` with ``settings`` applied, a type mismatch as a ValueError."""
  try:
    return config_utils.apply_overrides(config, settings)
  except TypeError as e:
    raise ValueError(f'sweep value {settings}: {e}') from None


def _split_values(text: str) -> list[str]:
  """Splits ``'0,0.1'`` or ``'(8,16),(16,32)'`` at the commas outside brackets/quotes."""
  parts, depth, quote, start = [], 0, None, 0
  for i, char in enumerate(text):
    if quote:
      quote = None if char == quote else quote
    elif char in '\'"':
      quote = char
    elif char in '([{':
      depth += 1
    elif char in ')]}':
      depth -= 1
    elif char == ',' and depth == 0:
      parts.append(text[start:i])
      start = i + 1
  return [p.strip() for p in parts + [text[start:]]]


def parse_axis(text: str, config: ml_collections.ConfigDict) -> tuple[str, list]:
  """Parses one ``--sweep`` flag, ``'key=v1,v2,...'``, by the field's type.

  Args:
    text: the flag's value, e.g. ``'model.dropout_rate=0,0.1'``.
    config: the config whose field ``key`` names.

  Returns:
    ``(key, values)``.

  Raises:
    ValueError: for a missing ``=``, an unknown key (naming the closest fields), an
      empty value or a value the field's type cannot take.
  """
  key, eq, values = text.partition('=')
  key = key.strip()
  if not eq or not key:
    raise ValueError(f'--sweep {text!r}: expected key=value1,value2,... (e.g. '
                     f'model.dropout_rate=0,0.1,0.3)')
  _check_key(config, key)
  node, leaf = _node(config, key)
  field_type = node.get_type(leaf)
  parser = _PARSERS.get(field_type)
  parsed = []
  for value in _split_values(values):
    if not value:
      raise ValueError(f'--sweep {text!r}: empty value')
    try:
      # A field holding None or a list: a Python literal, as config_flags parses it.
      parsed.append(parser.parse(value) if parser else config_utils.parse_literal(value))
    except ValueError as e:
      raise ValueError(f'--sweep {key}: cannot parse {value!r} as {field_type.__name__} '
                       f'({e})') from None
  return key, parsed


def _check_key(config, key: str) -> None:
  if key == 'seed':
    raise ValueError('seed is not a sweep axis: use --seeds N (seeds config.seed + i), '
                     'the replicates every row averages over')
  error = config_utils.unknown_override_error(config, key)
  if error:
    raise ValueError(f'sweep axis: {error}')
  node, leaf = _node(config, key)
  if isinstance(node[leaf], ml_collections.ConfigDict):
    raise ValueError(f'sweep axis {key!r} is a group of fields; sweep one of its fields')


def resolve_axes(config: ml_collections.ConfigDict, file_axes: dict | None = None,
                 flag_axes: Sequence[str] = ()) -> dict[str, list]:
  """The sweep's axes: the config file's ``get_sweep()`` with the flags applied.

  Args:
    config: the base config.
    file_axes: ``{key: [values]}`` from the config file's ``get_sweep()``.
    flag_axes: ``'key=v1,v2'`` strings; each replaces the file's axis of the same key,
      new keys come after the file's.

  Returns:
    ``{key: [values]}``, each value converted to the field's type (``0`` -> ``0.0`` for
    a float field, a list -> a tuple).

  Raises:
    ValueError: for an unknown key (naming the closest fields), ``seed``, an empty
      axis, a repeated value or one the field cannot take.
  """
  axes = {}
  for key, values in (file_axes or {}).items():
    _check_key(config, key)
    axes[key] = list(values) if isinstance(values, (list, tuple)) else [values]
  for text in flag_axes:
    key, values = parse_axis(text, config)
    axes[key] = values
  for key, values in axes.items():
    if not values:
      raise ValueError(f'sweep axis {key} has no values')
    converted = []
    for value in values:
      node, leaf = _node(_apply(config, {key: value}), key)
      converted.append(node[leaf])
    if len(set(map(repr, converted))) < len(converted):
      raise ValueError(f'sweep axis {key} repeats a value: {converted}')
    axes[key] = converted
  return axes


def expand(axes: dict[str, list]) -> list[dict]:
  """Every setting of the grid, the last axis varying fastest."""
  return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def _name_part(value) -> str:
  if isinstance(value, (tuple, list)):
    return '-'.join(_name_part(v) for v in value)
  return str(value)


def group_name(settings: dict) -> str:
  """A readable, filesystem-safe folder name: ``'model.pool=max,model.strides=2'``."""
  if not settings:
    return 'all'
  name = ','.join(f'{key}={_name_part(value)}' for key, value in settings.items())
  return re.sub(r'[^A-Za-z0-9._=,+-]', '_', name)


def make_groups(axes: dict[str, list], seeds: Sequence[int]) -> list[Group]:
  """Splits the grid into groups that each train as one vmapped program.

  Args:
    axes: ``{key: [values]}`` from :func:`resolve_axes`.
    seeds: the seeds every setting is trained with.

  Returns:
    One :class:`Group` per combination of the non-vmappable axes' values (one group if
    every axis is vmappable); its variants are the vmappable axes' grid times the
    seeds, seeds varying fastest.
  """
  fixed = {k: v for k, v in axes.items() if not replicas.is_vmappable(k)}
  mapped = {k: v for k, v in axes.items() if replicas.is_vmappable(k)}
  groups = []
  for settings in expand(fixed):
    variants = [{**values, 'seed': seed} for values in expand(mapped) for seed in seeds]
    groups.append(Group(group_name(settings), settings, variants))
  names = [g.name for g in groups]
  if len(set(names)) < len(names):
    raise ValueError(f'two groups share a folder name after making it file-safe: {names}')
  return groups


def group_config(config: ml_collections.ConfigDict, group: Group) -> ml_collections.ConfigDict:
  """The config a group trains: ``config`` with the group's settings applied."""
  return _apply(config, group.settings)


def model_cost(config: ml_collections.ConfigDict) -> tuple[int | None, int | None]:
  """Parameters and forward FLOPs per example of ``config``'s model (None if unknown).

  Raises:
    ValueError: if the model does not fit the dataset's input (naming the layer).
  """
  shape = catalog.model_input_shape(config.dataset)
  if shape is None:  # variable-size images the config does not resize
    return None, None
  result = summary_lib.summarize(build_model(config), shape)
  return result.params, result.flops


def aggregate(axes: dict[str, list], groups: Sequence[Group], summaries: dict[str, list],
              costs: dict[str, tuple], outcomes: dict | None = None) -> list[dict]:
  """One row per setting of the grid: mean and std over its seeds.

  Args:
    axes: the sweep's axes.
    groups: from :func:`make_groups`.
    summaries: group name -> the replica summaries, in the order of its variants.
    costs: group name -> ``(params, flops)`` from :func:`model_cost`.
    outcomes: for a run fanned out (``--cluster``): group name ->
      :class:`cnn_jax.train.replicas.Outcome` of the groups trained now; a failed
      group's ``summaries`` entry is None.

  Returns:
    Rows in grid order, each with the swept keys' values, ``'group'``, ``'seeds'``
    (list), ``'n'``, ``'replicas'`` (replica folders relative to the sweep workdir),
    ``'test_accuracies'`` (per seed, for the tests of :func:`comparisons`),
    ``'params'``, ``'flops'``, and ``'<metric>_mean'``/``'<metric>_std'`` for each of
    :data:`METRICS`: ``test_accuracy``, ``best_eval_accuracy``, ``train_accuracy``
    (clean pass over the training split), ``gap`` (train - test accuracy, per seed),
    ``wall_s`` and ``images_per_sec`` (training throughput) as the summaries report
    them (for a vmapped group: of the whole program). Means are None when a summary
    lacks the value; stds are sample stds (ddof=1), None for one seed. With
    ``outcomes``, rows also hold ``status`` (``'done'``, ``'read back'`` or
    ``'failed'``), ``error``, ``host`` and ``group_s`` (the group's seconds on its
    worker); a failed row's metrics are None.
  """
  cells = {}
  for group in groups:
    results = summaries[group.name] or [{} for _ in group.variants]  # None: failed
    for i, (variant, result) in enumerate(zip(group.variants, results)):
      setting = {**group.settings, **{k: v for k, v in variant.items() if k != 'seed'}}
      cell = cells.setdefault(tuple(repr(setting[k]) for k in axes),
                              {'group': group, 'results': [], 'seeds': [], 'replicas': []})
      cell['results'].append(result)
      cell['seeds'].append(variant['seed'])
      cell['replicas'].append(os.path.join(group.name, replicas.replica_dir(i)))
  rows = []
  for setting in expand(axes):
    cell = cells[tuple(repr(setting[k]) for k in axes)]
    group = cell['group']
    row = {**setting, 'group': group.name, 'seeds': cell['seeds'], 'n': len(cell['seeds']),
           'replicas': cell['replicas'],
           'test_accuracies': [r.get('test_accuracy') for r in cell['results']]}
    for metric, source in METRICS.items():
      if source is None:
        values = [None if r.get('train_accuracy') is None else
                  r['train_accuracy'] - r['test_accuracy'] for r in cell['results']]
      else:
        values = [r.get(source) for r in cell['results']]
      row[f'{metric}_mean'], row[f'{metric}_std'] = provenance.mean_std(values)
    row['params'], row['flops'] = costs[group.name]
    if outcomes is not None:
      outcome = outcomes.get(group.name)
      row.update(status='read back', error=None, host=None, group_s=None)
      if outcome is not None:
        row.update(status='failed' if outcome.error else 'done', error=outcome.error,
                   host=outcome.host, group_s=outcome.duration_s)
    rows.append(row)
  return rows


def write_csv(path: str, rows: Sequence[dict], axes: dict) -> None:
  """Writes the rows: swept keys, group, n, each metric's mean and std, params, FLOPs
  (and, fanned out over a cluster, :data:`CLUSTER_COLUMNS`).

  Accuracies are fractions; an empty cell is a missing value (std of one seed).
  """
  columns = [*axes, 'group', 'n', *(f'{m}_{s}' for m in METRICS for s in ('mean', 'std')),
             'params', 'flops']
  if rows and 'status' in rows[0]:  # fanned out: where and how each group ran
    columns += list(CLUSTER_COLUMNS)
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(columns)
    for row in rows:
      writer.writerow(['' if row[c] is None else row[c] for c in columns])


def _pm(mean, std, scale: float = 100.0, digits: int = 2) -> str:
  if mean is None:
    return '–'
  spread = '–' if std is None else f'{std * scale:.{digits}f}'
  return f'{mean * scale:.{digits}f} ± {spread}'


def format_table(rows: Sequence[dict], axes: dict) -> str:
  """The rows as a markdown table; accuracies in %, the gap in percentage points."""
  header = [*axes, 'seeds', 'test acc %', 'best eval acc %', 'train acc %',
            'gap (pp)', 'params', 'FLOPs', 'wall s', 'img/s']
  fanned_out = bool(rows) and 'status' in rows[0]
  if fanned_out:
    header += ['status', 'host', 'group s']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for row in rows:
    cells = [str(row[k]) for k in axes] + [str(row['n'])]
    cells += [_pm(row[f'{m}_mean'], row[f'{m}_std'])
              for m in ('test_accuracy', 'best_eval_accuracy', 'train_accuracy', 'gap')]
    cells += ['–' if row[k] is None else f'{row[k]:,}' for k in ('params', 'flops')]
    cells += [_pm(row['wall_s_mean'], row['wall_s_std'], 1.0, 1),
              _pm(row['images_per_sec_mean'], row['images_per_sec_std'], 1.0, 0)]
    if fanned_out:
      status = f'failed: {row["error"]}' if row['error'] else row['status']
      cells += [status.replace('|', '/'), row['host'] or '–',
                '–' if row['group_s'] is None else f'{row["group_s"]:.1f}']
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


# A baseline fitting its training images below this (clean train accuracy) is still
# under-fitting: a regulariser is not expected to raise its test accuracy.
UNDERFIT_TRAIN_ACCURACY = 0.95


def comparisons(rows: Sequence[dict], axes: dict) -> list[dict]:
  """Each setting against its baseline: the first axis at its first value, the others equal.

  Args:
    rows: from :func:`aggregate`.
    axes: the sweep's axes; the first one is compared (``model.dropout_rate``: each rate
      against 0 at the same stride).

  Returns:
    One dict per row off the baseline with numbers on both sides: ``'row'``,
    ``'baseline'`` and ``'test'`` (:func:`cnn_jax.stats.welch` of the row's test
    accuracies against the baseline's).
  """
  if not axes:
    return []
  key = next(iter(axes))
  others = [k for k in axes if k != key]
  found = lambda row: row['test_accuracies'] and None not in row['test_accuracies']
  out = []
  for row in rows:
    if row[key] == axes[key][0] or not found(row):
      continue
    (base,) = [r for r in rows if r[key] == axes[key][0]
               and all(r[k] == row[k] for k in others)]
    if found(base):
      out.append({'row': row, 'baseline': base,
                  'test': stats.welch(row['test_accuracies'], base['test_accuracies'])})
  return out


def interpret(rows: Sequence[dict], axes: dict) -> list[str]:
  """What the table supports, as sentences computed from :func:`comparisons`."""
  found = comparisons(rows, axes)
  if not found:
    return []
  key = next(iter(axes))
  base_value = axes[key][0]
  n = sorted({c['row']['n'] for c in found} | {c['baseline']['n'] for c in found})
  lines = [f'Each setting against {key}={base_value!r} with its other settings equal '
           f'(Welch\'s t-test over seeds, two-sided, p < {stats.SIGNIFICANCE:g}):', '']
  name = lambda row: sweep_figures.label(row, list(axes))
  lines += [f'- {name(c["row"])}: {stats.verdict(c["test"])}' for c in found]
  real = [c for c in found if c['test']['significant']]
  lines.append('')
  if real:
    higher = sum(c['test']['diff'] > 0 for c in real)
    lines.append(f'{len(real)} of {len(found)} settings differ detectably from their '
                 f'baseline ({higher} higher, {len(real) - higher} lower); '
                 f'{len(found) - len(real)} are within the seed noise.')
  else:
    lines.append(f'No setting differs detectably from its baseline: with '
                 f'{"/".join(map(str, n))} seeds per setting the differences in this '
                 f'table are within the seed noise, and it supports no conclusion '
                 f'about {key}.')
  if 'dropout' in key:
    under = [r for r in rows if r[key] == base_value and r['train_accuracy_mean'] is not None
             and r['train_accuracy_mean'] < UNDERFIT_TRAIN_ACCURACY]
    for r in under:
      lines.append('')
      lines.append(f'The baseline {name(r)} fits only '
                   f'{100 * r["train_accuracy_mean"]:.1f}% of its training images (clean): '
                   f'it is still under-fitting, a regime where dropout, a regulariser, is '
                   f'not expected to raise test accuracy.')
  return lines


def _check_manifest(workdir: str, manifest: dict) -> bool:
  """True if ``workdir`` holds this sweep already, False if it is new or empty.

  Raises:
    ValueError: if it holds a different sweep, or files that are not a sweep's.
  """
  path = os.path.join(workdir, MANIFEST_FILE)
  if not os.path.exists(path):
    if os.path.isdir(workdir) and os.listdir(workdir):
      raise ValueError(f'{workdir} is not empty and holds no {MANIFEST_FILE}: it is not a '
                       f'sweep workdir. Use a new --workdir; nothing was changed.')
    return False
  saved = workdir_lib.read_json(path)
  provenance.refuse_different_run(workdir, 'sweep', {k: saved.get(k) for k in _IDENTITY},
                                  {k: manifest[k] for k in _IDENTITY})
  return True


def _finished(group_dir: str, group: Group) -> list[dict] | None:
  """The replica summaries of a group that finished, else None."""
  results = workdir_lib.read_summary(group_dir, len(group.variants))
  return results if results is not None and len(results) == len(group.variants) else None


def read_curves(workdir: str, rows: Sequence[dict]) -> list[dict]:
  """Learning curves per row, the mean over its seeds, from each replica's metrics.jsonl.

  Args:
    workdir: the sweep workdir.
    rows: from :func:`aggregate`.

  Returns:
    One dict per row: ``'epoch_train'`` and ``'train_loss'`` (the epochs' mean train
    loss, from the end-of-epoch records' ``epoch_loss``), ``'epoch_eval'`` and
    ``'eval_accuracy'`` (empty without an eval split), each averaged over the seeds at
    the epochs every seed logged.
  """
  curves = []
  for row in rows:
    train, evals = [], []
    for replica in row['replicas']:
      records = workdir_lib.read_metrics(os.path.join(workdir, replica, METRICS_FILE))
      train.append({r['epoch']: r['epoch_loss'] for r in records
                    if r['split'] == 'train' and 'epoch_loss' in r})
      evals.append({r['epoch']: r['accuracy'] for r in records if r['split'] == 'eval'})
    curve = {}
    for x, y, series in (('epoch_train', 'train_loss', train),
                         ('epoch_eval', 'eval_accuracy', evals)):
      epochs = sorted(set.intersection(*(set(s) for s in series)))
      curve[x] = np.asarray(epochs, np.float64)
      curve[y] = np.asarray([np.mean([s[e] for s in series]) for e in epochs], np.float64)
    curves.append(curve)
  return curves


def _environment_line(workdir: str) -> str:
  """Where the sweep ran, from the environment its ``sweep.json`` recorded ('' if none)."""
  path = os.path.join(workdir, MANIFEST_FILE)
  if not os.path.exists(path):
    return ''
  env = workdir_lib.read_json(path).get('environment') or {}
  if not env:
    return ''
  return (f'Environment (recorded in {MANIFEST_FILE}): {env["date"][:10]}; '
          f'{provenance.hardware(env)}; jax {env["jax"]}, flax {env["flax"]}, optax '
          f'{env["optax"]}, python {env["python"]}; git {env["git_commit"][:7]}.')


def write_results(workdir: str, rows: Sequence[dict], axes: dict, command: str = '',
                  dpi: int = DPI) -> dict[str, str]:
  """Writes ``results.csv``, ``results.md`` and the three plots into ``workdir``.

  Returns:
    File kind -> path.
  """
  paths = {'csv': os.path.join(workdir, RESULTS_CSV), 'md': os.path.join(workdir, RESULTS_MD)}
  write_csv(paths['csv'], rows, axes)
  trained = [row for row in rows if row.get('status') != 'failed']  # failed: no numbers
  plots = {'test_accuracy': sweep_figures.test_accuracy(trained, axes),
           'overfitting_gap': sweep_figures.overfitting_gap(trained, axes),
           'learning_curves': sweep_figures.learning_curves(trained, axes,
                                                            read_curves(workdir, trained))}
  for name, plot in plots.items():
    paths[name] = os.path.join(workdir, f'{name}.png')
    plot.figure.savefig(paths[name], dpi=dpi)
  seeds = rows[0]['seeds'] if rows else []
  text = [f'# Sweep results: {os.path.basename(os.path.normpath(workdir))}', '',
          f'Command: `{command}`' if command else '', _environment_line(workdir),
          f'Seeds: {seeds} per setting; mean ± sample std (ddof=1) over seeds, – for one '
          f'seed. Accuracies in %, the gap (train - test accuracy, train measured clean in '
          f'eval mode) in percentage points; FLOPs are forward FLOPs per example '
          f'(multiply-add = 2); wall s and img/s are those of the program that trained '
          f'the setting (a vmapped group trains all its replicas at once, and its img/s '
          f'counts the images of every replica).', '',
          format_table(rows, axes), '']
  interpretation = interpret(rows, axes)
  if interpretation:
    text += ['## What it supports', '', *interpretation, '']
  text += [f'![{name}]({name}.png)' for name in plots]
  with open(paths['md'], 'w') as f:
    f.write('\n'.join(text) + '\n')
  return paths


def run_sweep(config: ml_collections.ConfigDict, workdir: str, axes: dict[str, list],
              seeds: int, log: Callable[[str], None] = print,
              runner: Callable | None = None, command: str = '',
              fan_out: replicas.FanOut | None = None) -> list[dict]:
  """Trains every setting of the grid with ``seeds`` seeds, resuming ``workdir``.

  Args:
    config: the base config (``config.seed`` is the first seed).
    workdir: the sweep folder; created if missing, resumed if it holds this sweep.
    axes: ``{key: [values]}`` (see :func:`resolve_axes`, which checks and converts
      them; this function calls it again).
    seeds: seeds per setting: ``config.seed + i`` for ``i < seeds``.
    log: called with progress lines.
    runner: trains one group, ``runner(config, workdir, variants, log=log) ->
      [replica summary, ...]``; default :func:`cnn_jax.train.replicas.train_replicas`.
    command: the command line, recorded in ``sweep.json`` and ``results.md``.
    fan_out: trains the unfinished groups elsewhere, all at once (``--cluster``:
      :meth:`cnn_jax.cluster.ClusterRunner.run`) instead of one after another with
      ``runner``; a group that fails there becomes a failed row while the others
      finish.

  Returns:
    The rows of :func:`aggregate`, also written to ``results.csv``/``results.md``
    with the plots; with ``fan_out``, with each group's status, host and seconds.

  Raises:
    ValueError: for bad axes, a setting whose model does not fit the input, or a
      workdir holding a different sweep (nothing is changed then).
  """
  runner = runner or replicas.train_replicas
  if seeds < 1:
    raise ValueError(f'seeds={seeds}: need at least one seed')
  base = config.copy_and_resolve_references()
  with base.unlocked():
    base.evaluate_train = True  # the train accuracy of the overfitting gap
  axes = resolve_axes(base, axes)
  groups = make_groups(axes, [base.seed + i for i in range(seeds)])
  costs = {}
  for group in groups:  # fails in seconds on a setting whose model cannot run
    try:
      costs[group.name] = model_cost(group_config(base, group))
    except ValueError as e:
      raise ValueError(f'sweep setting {group.name}: {e}') from None
  manifest = {'config': base.to_dict(), 'axes': axes,
              'seeds': [base.seed + i for i in range(seeds)],
              'groups': [g._asdict() for g in groups], 'command': command,
              'environment': provenance.environment(command)}
  main = jax.process_index() == 0
  if not _check_manifest(workdir, manifest) and main:
    os.makedirs(workdir, exist_ok=True)
    workdir_lib.write_json(os.path.join(workdir, MANIFEST_FILE), manifest)
  summaries, jobs = {}, []
  for i, group in enumerate(groups):
    group_dir = os.path.join(workdir, group.name)
    done = _finished(group_dir, group)
    head = f'[{i + 1}/{len(groups)}] {group.name} ({len(group.variants)} replicas)'
    if done is not None:
      log(f'{head}: finished earlier, read back')
      summaries[group.name] = done
    elif fan_out is not None:
      log(f'{head}: to train')
      jobs.append(replicas.Job(group.name, group_config(base, group), group_dir,
                               group.variants))
    else:
      log(f'{head}: training')
      summaries[group.name] = runner(group_config(base, group), group_dir, group.variants,
                                     log=log)
  outcomes = None
  if fan_out is not None:
    outcomes = fan_out(jobs, log=log)
    summaries.update({name: outcome.summaries for name, outcome in outcomes.items()})
  rows = aggregate(axes, groups, summaries, costs, outcomes)
  if main:
    write_results(workdir, rows, axes, command)
  return rows
