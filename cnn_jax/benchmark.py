"""Throughput of the project's own train and eval steps, per model and batch size.

  python -m experiments.benchmark --config experiments/configs/fashion_mnist_cnn.py \
      --batch_sizes 128,256 --steps 20 --repeats 3 --out experiments/results/benchmarks/NAME

Each case is a config (its model, optimizer and augmentation) or a bare registered model
(on the default experiment's optimizer), at one batch size. The steps are those
:func:`cnn_jax.train.loop.train_and_evaluate` runs, built by its
:class:`~cnn_jax.train.trainer.Trainer` on data held in device memory: synthetic (uniform
random images and labels, the default) or the config's real dataset. So the numbers are
the step's device work, not an input pipeline's.

Per case:

* ``compile_s``: lowering and compiling the jitted train step.
* ``train_images_per_sec`` / ``eval_images_per_sec``: batch size x ``steps`` / the median
  wall time of ``repeats`` windows of ``steps`` steps, timed after ``warmup_steps``
  steps (eval: after one untimed window) and ended by ``jax.block_until_ready``. An
  eval window is one :meth:`~cnn_jax.train.trainer.Trainer.evaluate` over ``steps``
  batches.
* ``train_flops_per_sec``: ``train_images_per_sec`` x ``train_flops_per_example``,
  taken as 3 x the forward FLOPs of :func:`cnn_jax.summary.summarize` (multiply-add = 2;
  the backward pass counted as twice the forward).
* ``peak_memory_bytes``: the device's ``peak_bytes_in_use`` where the backend reports it
  (GPU), else the process's maximum resident set size (CPU); both are peaks over the
  process so far, not per case (``peak_memory_kind`` says which), so with a reference
  they include its earlier cases too.
* ``reference`` (only with ``run(reference=...)``, the benchmark script's ``--torch``):
  the same model and optimizer in another framework (``experiments/torch_reference.py``:
  PyTorch), timed the same way right after ours on the same data; ``train_ratio`` and
  ``eval_ratio`` are our images/s over its. With ``run(rounds=R)`` (``--rounds``) the
  pair is measured R times, alternating, and the images/s and the ratios are medians
  over the rounds (``'rounds'`` keeps each one).

``time_to_accuracy`` trains a config with ``train_and_evaluate`` on its real data in a
temporary workdir and reports the wall time and the final test accuracy.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import resource
import statistics
import tempfile
import time
from typing import Callable, Sequence

import jax
import ml_collections
import numpy as np

from cnn_jax import config_utils, models, provenance
from cnn_jax import data as data_lib
from cnn_jax.data import catalog
from cnn_jax.summary import summarize
from cnn_jax.train import loop
from cnn_jax.train.trainer import Trainer

# The backward pass costs about twice the forward (two matmuls per forward one).
TRAIN_FLOPS_PER_FORWARD = 3
FLOPS_NOTE = ('train FLOPs per example = 3 x the forward FLOPs of cnn_jax.summary '
              '(multiply-add = 2; backward taken as 2x forward)')


@dataclasses.dataclass(frozen=True)
class Case:
  """What to benchmark: an experiment config and the model input shape it implies.

  Attributes:
    name: label in the results (config file stem or model name).
    source: the config file, or ``'model NAME'`` for a bare registered model.
    config: the experiment ConfigDict (batch sizes are set per run).
    input_shape: one model input's shape, without the batch axis.
  """
  name: str
  source: str
  config: ml_collections.ConfigDict
  input_shape: tuple[int, ...]


def config_case(spec: str) -> Case:
  """A case from a config file (``path[:arg]``, as ``--config`` takes it).

  Raises:
    ValueError: if the file does not exist, or its dataset has no fixed input shape.
  """
  path = spec.partition(':')[0]
  if not os.path.isfile(path):
    raise ValueError(f'config file {path!r} not found')
  config = config_utils.load_config(spec)
  shape = catalog.model_input_shape(config.dataset)
  if shape is None:
    raise ValueError(f'{spec}: dataset {config.dataset.name} has variable-size images; '
                     f'set dataset.augment.image_size in the config')
  models.create(**config.model)  # an unknown model or field fails here, not mid-run
  return Case(os.path.splitext(os.path.basename(path))[0], spec, config, shape)


def model_case(base: ml_collections.ConfigDict, name: str, input_shape: Sequence[int],
               num_classes: int = 10) -> Case:
  """A case for a bare registered model, trained as the default experiment trains.

  Named ``'NAME HxWxC'`` (e.g. ``'resnet20 32x32x3'``), so one run can hold a model at
  several input shapes.

  Args:
    base: the training settings (data, optimizer, batch size), e.g. the schema's
      defaults (``experiments/configs/default.py``); its ``model`` is replaced.
    name: a registered model name (see :func:`cnn_jax.models.names`).
    input_shape: one input's shape, e.g. ``(28, 28, 1)``; 2-D inputs are benchmarked as
      uint8 images, 1-D ones as float32 signals (as the datasets store them).
    num_classes: size of the output layer.

  Raises:
    ValueError: for an unknown model (listing the registered ones).
  """
  models.create(name, num_classes=num_classes)
  config = ml_collections.ConfigDict(base.to_dict())
  config.model = ml_collections.ConfigDict({'name': name, 'num_classes': num_classes})
  shape = tuple(input_shape)
  return Case(f'{name} {"x".join(map(str, shape))}', f'model {name}', config, shape)


def _synthetic(shape: tuple[int, ...], n: int, num_classes: int, rng) -> tuple:
  """``n`` random examples stored as the datasets store them (uint8 images, float signals)."""
  if len(shape) == 3:
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
  else:
    images = rng.standard_normal((n, *shape), dtype=np.float32)
  return images, rng.integers(0, num_classes, n, dtype=np.int32)


def case_splits(case: Case, n: int, data: str = 'synthetic') -> dict:
  """The host data a case is timed on, shared by the project's steps and any reference.

  Args:
    case: from :func:`config_case` or :func:`model_case`.
    n: examples per split (the real train split is kept in full).
    data: ``'synthetic'`` (uniform random images and labels drawn from the config's
      seed) or ``'real'`` (the config's dataset, which must fit in memory).

  Returns:
    ``{'train': (images, labels), 'test': (images, labels)}`` as stored (uint8 images,
    float32 signals), channels last.

  Raises:
    ValueError: for a bad ``data`` value, or real data of a streamed dataset.
  """
  config = case.config
  if data == 'synthetic':
    rng = np.random.default_rng(config.seed)
    num_classes = config.model.get('num_classes', 10)
    return {split: _synthetic(case.input_shape, n, num_classes, rng)
            for split in ('train', 'test')}
  if data != 'real':
    raise ValueError(f'data={data!r}; expected synthetic or real')
  if catalog.get(config.dataset.name).stream:
    raise ValueError(f'{case.name}: {config.dataset.name} is streamed from the host; '
                     f'benchmark it with synthetic data')
  splits = data_lib.load(config.dataset)
  images, labels = splits['test']
  return {'train': splits['train'], 'test': (images[:n], labels[:n])}


def median_window(run_window, repeats: int) -> tuple[float, list[float]]:
  """Median and all wall times of ``repeats`` calls of ``run_window`` (which syncs)."""
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    run_window()
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def peak_memory() -> tuple[int, str]:
  """The process's peak memory so far: device peak where reported, else max RSS.

  Returns:
    ``(bytes, kind)``, kind ``'device peak_bytes_in_use'`` or ``'process max RSS'``.
  """
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return int(stats['peak_bytes_in_use']), 'device peak_bytes_in_use'
  # Linux reports ru_maxrss in KiB.
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'process max RSS'


def benchmark_case(case: Case, batch_size: int, *, steps: int = 20, repeats: int = 3,
                   warmup_steps: int = 3, data: str = 'synthetic') -> dict:
  """Compile time, train and eval throughput, FLOP/s and peak memory of one case.

  Args:
    case: from :func:`config_case` or :func:`model_case`.
    batch_size: train and eval batch size.
    steps: steps per timed window.
    repeats: timed windows; the median is reported.
    warmup_steps: untimed train steps after compiling.
    data: ``'synthetic'`` or ``'real'`` (the config's dataset, which must fit in memory).

  Returns:
    One record; the fields are described in this module's docstring.

  Raises:
    ValueError: for a bad ``data`` value, or real data of a streamed dataset.
  """
  if min(steps, repeats) < 1 or warmup_steps < 0:
    raise ValueError(f'steps={steps} and repeats={repeats} must be >= 1, '
                     f'warmup_steps={warmup_steps} >= 0')
  config = ml_collections.ConfigDict(case.config.to_dict())
  config.batch_size = config.eval_batch_size = batch_size
  config.dataset.eval_split = ''  # only the test split is timed
  # A window's steps are one synthetic epoch; the loop's log/checkpoint intervals are
  # not used here, so they must not constrain config.steps_per_call.
  config.log_every_steps = config.checkpoint_every_steps = 0
  trainer = Trainer(config, splits=case_splits(case, batch_size * steps, data))

  state = trainer.init_state()
  compile_s, batches = trainer.compile(state)
  per_call = trainer.steps_per_call  # steps run by one compiled call (lax.scan)

  def train_window(n):
    nonlocal state
    for _ in range(-(-n // per_call)):
      state, _ = trainer.train_step(state, next(batches))
    jax.block_until_ready(state)

  train_window(warmup_steps)
  train_s, train_windows = median_window(lambda: train_window(steps), repeats)
  trainer.evaluate(state, 'test')  # compiles the eval step
  eval_s, eval_windows = median_window(lambda: trainer.evaluate(state, 'test'), repeats)

  summary = summarize(trainer.model, case.input_shape)
  train_flops = TRAIN_FLOPS_PER_FORWARD * summary.flops
  train_ips = batch_size * steps / train_s
  memory, memory_kind = peak_memory()
  return {
      'name': case.name, 'source': case.source, 'model': config.model.name,
      'data': data, 'input_shape': list(case.input_shape), 'batch_size': batch_size,
      'steps': steps, 'steps_per_call': per_call, 'repeats': repeats,
      'warmup_steps': warmup_steps,
      'params': summary.params, 'forward_flops_per_example': summary.flops,
      'train_flops_per_example': train_flops, 'compile_s': compile_s,
      'train_images_per_sec': train_ips, 'train_window_s': train_windows,
      'eval_images_per_sec': batch_size * steps / eval_s, 'eval_window_s': eval_windows,
      'train_flops_per_sec': train_ips * train_flops,
      'peak_memory_bytes': memory, 'peak_memory_kind': memory_kind,
  }


def time_to_accuracy(case: Case, target: float, log=print) -> dict:
  """Trains a config on its real data with ``train_and_evaluate`` in a temporary workdir.

  Args:
    case: a config case (its own batch size and epochs are used).
    target: the test accuracy to reach, e.g. 0.91.
    log: called with the loop's progress lines.

  Returns:
    ``{'name', 'source', 'target', 'test_accuracy', 'reached', 'wall_s', 'compile_s',
    'epochs', 'batch_size', 'train_images_per_sec'}``.
  """
  with tempfile.TemporaryDirectory() as workdir:
    summary = loop.train_and_evaluate(case.config, workdir, log=log)
  return {'name': case.name, 'source': case.source, 'target': target,
          'test_accuracy': summary['test_accuracy'],
          'reached': summary['test_accuracy'] >= target, 'wall_s': summary['wall_s'],
          'compile_s': summary['compile_s'], 'epochs': summary['epochs'],
          'batch_size': case.config.batch_size,
          'train_images_per_sec': summary['train_images_per_sec']}


def run(cases: Sequence[Case], batch_sizes: Sequence[int], *, steps: int = 20,
        repeats: int = 3, warmup_steps: int = 3, data: str = 'synthetic',
        target_accuracy: float | None = None, out: str | None = None, command: str = '',
        reference: Callable[..., dict] | None = None, rounds: int = 1, log=print) -> dict:
  """Benchmarks every case at every batch size; writes ``results.json``/``.md`` to ``out``.

  Args:
    cases: from :func:`config_case` / :func:`model_case`.
    batch_sizes: batch sizes to measure each case at.
    steps: steps per timed window.
    repeats: timed windows per measurement.
    warmup_steps: untimed train steps after compiling.
    data: ``'synthetic'`` or ``'real'``.
    target_accuracy: if set, also run :func:`time_to_accuracy` for every config case.
    out: folder for the results (created); None writes nothing.
    command: the command line, recorded in the results.
    reference: another implementation of the same models timed right after each of
      ours, in this process, on the same :func:`case_splits` (e.g.
      ``experiments.torch_reference.benchmark_case``): called as ``reference(case,
      batch_size, steps=, repeats=, warmup_steps=, data=)``, it returns at least
      ``framework``, ``train_images_per_sec`` and ``eval_images_per_sec``. Its record
      is stored under the case's ``'reference'``, with ``train_ratio`` and
      ``eval_ratio`` = ours / its images/s.
    rounds: measure each case (and its reference right after it) this many times,
      alternating, and report the medians over rounds: the images/s of each side and
      the ratio of each round, whose median is ``train_ratio``/``eval_ratio``. Load
      from other processes drifts over seconds on a shared machine; alternating rounds
      expose both sides to it alike. Every round's numbers are kept under ``'rounds'``.
    log: called with one line per finished case.

  Returns:
    ``{'environment', 'flops_note', 'cases': [record, ...], 'time_to_accuracy': [...]}``.
  """
  if rounds < 1:
    raise ValueError(f'rounds={rounds} must be >= 1')
  results = {'environment': provenance.environment(command), 'flops_note': FLOPS_NOTE,
             'cases': [], 'time_to_accuracy': []}
  for case, batch_size in itertools.product(cases, batch_sizes):
    settings = dict(steps=steps, repeats=repeats, warmup_steps=warmup_steps, data=data)
    measured = []
    for _ in range(rounds):
      record = benchmark_case(case, batch_size, **settings)
      ref = reference(case, batch_size, **settings) if reference is not None else None
      measured.append((record, ref))
    record, ref = _median_of_rounds(measured)
    line = (f'{case.name} batch {batch_size}: {record["train_images_per_sec"]:,.0f} train '
            f'img/s, {record["eval_images_per_sec"]:,.0f} eval img/s, compile '
            f'{record["compile_s"]:.2f} s')
    if ref is not None:
      line += (f'; {ref["framework"]} {ref["train_images_per_sec"]:,.0f} train, '
               f'{ref["eval_images_per_sec"]:,.0f} eval img/s (ours/{ref["framework"]} '
               f'{record["train_ratio"]:.2f}x train, {record["eval_ratio"]:.2f}x eval)')
    results['cases'].append(record)
    log(line)
  if target_accuracy is not None:
    for case in cases:
      if case.source.startswith('model '):
        raise ValueError(f'time to accuracy needs a config with real data, not the bare '
                         f'{case.source}')
      results['time_to_accuracy'].append(time_to_accuracy(case, target_accuracy, log))
  if out:
    provenance.write_results(out, results, format_results(results))
  return results


def _median_of_rounds(measured: list[tuple[dict, dict | None]]) -> tuple[dict, dict | None]:
  """One record from the rounds of a case: medians of images/s and of per-round ratios."""
  modes = ('train', 'eval')
  record, ref = dict(measured[-1][0]), measured[-1][1]
  for mode in modes:
    key = f'{mode}_images_per_sec'
    record[key] = statistics.median(r[key] for r, _ in measured)
  record['train_flops_per_sec'] = record['train_images_per_sec'] * record['train_flops_per_example']
  if ref is not None:
    ref = dict(ref)
    for mode in modes:
      key = f'{mode}_images_per_sec'
      ref[key] = statistics.median(f[key] for _, f in measured)
      record[f'{mode}_ratio'] = statistics.median(r[key] / f[key] for r, f in measured)
    record['reference'] = ref
  if len(measured) > 1:
    record['rounds'] = [
        {**{f'{m}_images_per_sec': r[f'{m}_images_per_sec'] for m in modes},
         **({f'reference_{m}_images_per_sec': f[f'{m}_images_per_sec'] for m in modes}
            if f is not None else {})} for r, f in measured]
  return record, ref


def _si(value: float, unit: str) -> str:
  exponent = min(max(int(math.log10(value) // 3), 0), 4) if value > 0 else 0
  return f'{value / 1000 ** exponent:.3g} {" kMGT"[exponent].strip()}{unit}'


def format_results(results: dict) -> str:
  """The results as markdown: environment, a table of cases, time to accuracy."""
  env = results['environment']
  lines = [
      *provenance.page_header('Benchmark', env), '',
      f'Median of the timed windows. {results["flops_note"]}.', '',
      '| case | data | batch | compile s | train img/s | eval img/s | train FLOP/s '
      '| train FLOPs/example | peak memory |',
      '|---|---|---|---|---|---|---|---|---|',
  ]
  refs = [r['reference'] for r in results['cases'] if 'reference' in r]
  if refs:
    fw = refs[0]['framework']
    lines[-2] += (f' {fw} train img/s | {fw} eval img/s | train ours/{fw} | '
                  f'eval ours/{fw} |')
    lines[-1] += '---|---|---|---|'
  for r in results['cases']:
    row = (f'| {r["name"]} | {r["data"]} | {r["batch_size"]} | {r["compile_s"]:.2f} | '
           f'{r["train_images_per_sec"]:,.0f} | {r["eval_images_per_sec"]:,.0f} | '
           f'{_si(r["train_flops_per_sec"], "FLOP/s")} | '
           f'{_si(r["train_flops_per_example"], "FLOPs")} | '
           f'{_si(r["peak_memory_bytes"], "B")} ({r["peak_memory_kind"]}) |')
    if 'reference' in r:
      ref = r['reference']
      row += (f' {ref["train_images_per_sec"]:,.0f} | {ref["eval_images_per_sec"]:,.0f} | '
              f'{r["train_ratio"]:.2f} | {r["eval_ratio"]:.2f} |')
    lines.append(row)
  if refs:
    lines += ['', f'Reference: {refs[0].get("description", refs[0]["framework"])}, timed '
              f'in the same process right after each case, on the same data.']
  rounds = [r for r in results['cases'] if 'rounds' in r]
  if rounds:
    lines += ['', f'Each case measured in {len(rounds[0]["rounds"])} rounds (ours, then the '
              f'reference if any), reported as medians over rounds; per round:', '']
    for r in rounds:
      per_round = [f'{x["train_images_per_sec"]:,.0f}' + (
          f' / {x["reference_train_images_per_sec"]:,.0f} = '
          f'{x["train_images_per_sec"] / x["reference_train_images_per_sec"]:.2f}x'
          if 'reference_train_images_per_sec' in x else '') for x in r['rounds']]
      lines.append(f'* {r["name"]} batch {r["batch_size"]}, train img/s'
                   f'{" (ours / reference)" if "reference" in r else ""}: '
                   f'{"; ".join(per_round)}')
  if results['time_to_accuracy']:
    lines += ['', '| config | target | test accuracy | reached | wall s | epochs | batch |',
              '|---|---|---|---|---|---|---|']
    for r in results['time_to_accuracy']:
      lines.append(f'| {r["name"]} | {r["target"]:.4f} | {r["test_accuracy"]:.4f} | '
                   f'{"yes" if r["reached"] else "no"} | {r["wall_s"]:.1f} | '
                   f'{r["epochs"]} | {r["batch_size"]} |')
  return '\n'.join(lines) + '\n'
