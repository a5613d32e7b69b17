"""Reproduction of published results: reference settings, n seeds each, pass or fail.

  python -m experiments.reproduce [--only NAME[,NAME]] [--seeds N] \
      [--override [NAME:]KEY=VALUE] [--workdir runs/reproduce] [--out DIR]

Each :class:`Reference` names a config file under ``experiments/configs/``, the
published test accuracy with its source, the rule that decides whether our number
reproduces it, and its default number of seeds (10 for the cheap MNIST-1D references,
3 for the others; ``--seeds`` sets one count for all). :func:`run` checks first that
each reference's dataset can be read without network; one that cannot is reported as
skipped, with the reason and the command that prepares it. The others are trained with
one seed per replica (:func:`cnn_jax.train.replicas.train_replicas`, all seeds as one
vmapped program) in ``workdir/NAME``; a reference whose workdir already holds the
finished seeds is read back, not trained again. The results go to ``results.json`` and
``results.md``.

The verdict accounts for the seed spread. The seeds' final test accuracies are a sample;
:func:`cnn_jax.stats.mean_interval` gives their mean and its two-sided 95% Student-t
interval ``[low, high]``, and the rule reads that interval (:meth:`Reference.verdict`):

* ``at_least``: pass if ``high >= published - tolerance``. A fail means the whole
  interval lies below that floor: our mean is below it at the one-sided 2.5% level.
* ``within``: pass if the interval meets ``[published - tolerance, published +
  tolerance]``. A fail means the interval lies wholly on one side of the band: our
  mean is outside it at the one-sided 2.5% level.

So a fail is evidence against the reproduction, and a pass says that the seeds cannot
show one; a wide interval (few seeds, a large spread) passes more easily, which is why
the table states the interval. With one seed there is no interval and the verdict is
``'too few seeds'``.

Tolerances are about two binomial standard deviations of a test-set accuracy at the
published value (``sqrt(p (1 - p) / n_test)``: 1.5 points for 94% of MNIST-1D's 1,000
test sequences, 3 points at 32-68%, 0.2 points for 99% of 10,000 images): the
published number is itself one run's accuracy on a finite test set. Where the source
states a floor ("at least 91%") the tolerance is 0.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import ml_collections

from cnn_jax import config_utils, provenance, stats
from cnn_jax import data as data_lib
from cnn_jax.data import tfds_data
from cnn_jax.train import replicas

DEFAULT_WORKDIR = 'runs/reproduce'

LEVEL = 0.95  # the confidence level of the interval every verdict reads
TOO_FEW_SEEDS = 'too few seeds'  # the verdict of one seed: no interval
CHEAP_SEEDS = 10  # default seeds of a reference that trains in about a minute
SEEDS = 3  # default seeds of the others

# rule -> (how the table states it, the test on (low, high, published, tolerance), low
# and high the interval of our mean).
RULES = {
    'at_least': ('>= published - {tol}', lambda low, high, pub, tol: high >= pub - tol),
    'within': ('published ± {tol}',
               lambda low, high, pub, tol: low <= pub + tol and high >= pub - tol),
}

_GREYDANUS = ('Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439, as tabulated '
              'in the README of greydanus/mnist1d')
_ZALANDO = 'zalandoresearch/fashion-mnist README, benchmark table'
_HE = ('He, Zhang, Ren, Sun 2015, "Deep residual learning for image recognition", '
       'arXiv:1512.03385, Table 6')


@dataclasses.dataclass(frozen=True)
class Reference:
  """One published result and how to reproduce it.

  Attributes:
    name: short name, used by ``--only`` and as the workdir's folder name.
    config: the config file's name, ``reproduce_NAME.py``, in the configs folder the
      caller passes (``experiments/configs``).
    dataset: the dataset's TFDS name.
    published: the published test accuracy, as a fraction.
    tolerance: how far below (``at_least``) or from (``within``) it our mean may be.
    rule: ``'at_least'`` (our mean >= published - tolerance; beating it passes) or
      ``'within'`` (our mean within published ± tolerance: baselines and controls,
      whose point is where they land); read on the interval, see :meth:`verdict`.
    source: the citation.
    url: where the number is printed.
    seeds: the default number of seeds (``--seeds`` overrides it).
    note: how the setting differs from the published one, if it does.
  """
  name: str
  config: str
  dataset: str
  published: float
  tolerance: float
  rule: str
  source: str
  url: str
  seeds: int = SEEDS
  note: str = ''

  def verdict(self, accuracies: Sequence[float]) -> dict:
    """Whether the seeds' accuracies reproduce the published number.

    Args:
      accuracies: one final test accuracy per seed, as fractions.

    Returns:
      ``{'mean', 'low', 'high', 'status'}``: the mean, its two-sided :data:`LEVEL`
      Student-t interval (None and None for one seed) and ``'pass'``, ``'fail'`` or
      :data:`TOO_FEW_SEEDS`: the rule of :data:`RULES` applied to the interval (the
      module docstring states what each outcome means).
    """
    mean, low, high = stats.mean_interval(accuracies, LEVEL)
    if len(accuracies) < 2:
      return {'mean': mean, 'low': None, 'high': None, 'status': TOO_FEW_SEEDS}
    ok = RULES[self.rule][1](low, high, self.published, self.tolerance)
    return {'mean': mean, 'low': low, 'high': high, 'status': 'pass' if ok else 'fail'}

  def rule_text(self) -> str:
    """The rule with the tolerance in accuracy points, e.g. ``'>= published - 1.5'``."""
    if self.rule == 'at_least' and not self.tolerance:
      return '>= published'
    return RULES[self.rule][0].format(tol=f'{100 * self.tolerance:g}')


def _reference(name: str, dataset: str, published: float, tolerance: float, rule: str,
               source: str, url: str, note: str = '', seeds: int = SEEDS) -> Reference:
  return Reference(name, f'reproduce_{name}.py', dataset, published, tolerance, rule,
                   source, url, seeds, note)


_MNIST1D = 'https://github.com/greydanus/mnist1d'
_SHUFFLED = ('shuffled: one fixed permutation of the 40 positions, train and test alike '
             '(dataset.permute_seed 42; not the notebook\'s permutation, see '
             'mnist1d_protocol/)')

REFERENCES = (
    # Checked against the README table of github.com/greydanus/mnist1d (not against the
    # paper's PDF), as printed: "MNIST-1D | 32% | 68% | 94% | 91% | 96%" and
    # "MNIST-1D (shuffle**) | 32% | 68% | 56% | 57% | ~30%" for logistic regression,
    # MLP, CNN, GRU (not here) and a human expert; "**The term "shuffle" refers to
    # shuffling the spatial dimension of the dataset, as in Zhang et al. (2017)".
    _reference('mnist1d_cnn', 'mnist1d', 0.94, 0.015, 'at_least', _GREYDANUS, _MNIST1D,
               'the reference\'s model, data and recipe; its own PyTorch code, run over '
               'seeds, ends near 94% (final accuracy, not a maximum); our loop\'s '
               'reshuffled batches and Flax initialisation each cost about half a point '
               'there: mnist1d_protocol/ and the config\'s docstring', seeds=CHEAP_SEEDS),
    _reference('mnist1d_mlp', 'mnist1d', 0.68, 0.03, 'within', _GREYDANUS, _MNIST1D,
               'plain 40-100-100-10 MLP; the reference MLP\'s second layer is residual, '
               'and run over seeds its own code ends under 68%: mnist1d_protocol/',
               seeds=CHEAP_SEEDS),
    _reference('mnist1d_logistic', 'mnist1d', 0.32, 0.03, 'within', _GREYDANUS, _MNIST1D,
               seeds=CHEAP_SEEDS),
    # The controls: without locality the CNN drops to 56%, the dense models stay.
    _reference('mnist1d_cnn_shuffled', 'mnist1d', 0.56, 0.03, 'within',
               _GREYDANUS + ', shuffled row', _MNIST1D, _SHUFFLED, seeds=CHEAP_SEEDS),
    _reference('mnist1d_mlp_shuffled', 'mnist1d', 0.68, 0.03, 'within',
               _GREYDANUS + ', shuffled row', _MNIST1D,
               _SHUFFLED + '; plain MLP, as mnist1d_mlp', seeds=CHEAP_SEEDS),
    _reference('mnist1d_logistic_shuffled', 'mnist1d', 0.32, 0.03, 'within',
               _GREYDANUS + ', shuffled row', _MNIST1D, _SHUFFLED, seeds=CHEAP_SEEDS),
    _reference('fashion_mnist_cnn', 'fashion_mnist', 0.91, 0.0, 'at_least',
               _ZALANDO + ': 2-conv CNNs 0.876 to 0.925; "2 Conv Layers with max '
               'pooling (Tensorflow)", benchmark/convnet.py, 0.916',
               'https://github.com/zalandoresearch/fashion-mnist#benchmark',
               'convnet.py\'s architecture; Adam for 6 epochs, not SGD for 200k steps'),
    _reference('fashion_mnist_resnet18', 'fashion_mnist', 0.949, 0.005, 'at_least',
               _ZALANDO + ': "ResNet18" (Kyriakos Efthymiadis), 0.949',
               'https://github.com/zalandoresearch/fashion-mnist#benchmark',
               'the reference: up to 200 epochs, also vertical flips and rotations; the '
               'config states the cost'),
    _reference('mnist_lenet5', 'mnist', 0.9905, 0.002, 'at_least',
               'LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to '
               'document recognition", Proc. IEEE 86(11); LeNet-5: 0.95% test error',
               'http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf',
               'dense output layer instead of RBF units, full C3 connectivity, Adam'),
    _reference('cifar10_resnet20', 'cifar10', 0.9125, 0.005, 'at_least',
               _HE + ': 8.75% test error',
               'https://arxiv.org/abs/1512.03385'),
    _reference('cifar10_resnet56', 'cifar10', 0.9303, 0.005, 'at_least',
               _HE + ': 6.97% test error',
               'https://arxiv.org/abs/1512.03385'),
)


def names() -> list[str]:
  """The reference names, in table order."""
  return [r.name for r in REFERENCES]


def select(only: Sequence[str] = ()) -> list[Reference]:
  """The references named in ``only`` (all of them when it is empty), in table order.

  Raises:
    ValueError: for an unknown name, listing the known ones.
  """
  unknown = sorted(set(only) - set(names()))
  if unknown:
    raise ValueError(f'unknown reference(s) {", ".join(unknown)}; the references are: '
                     f'{", ".join(names())}')
  return [r for r in REFERENCES if not only or r.name in only]


def reference_config(ref: Reference, config_dir: str, overrides: Sequence[str] = ()
                     ) -> ml_collections.ConfigDict:
  """A reference's config with the command line's overrides applied.

  Args:
    ref: the reference.
    config_dir: the folder holding the reference configs.
    overrides: ``'KEY=VALUE'`` (every reference) or ``'NAME:KEY=VALUE'`` (reference
      NAME only), KEY a dotted config field (``num_epochs``, ``dataset.data_dir``).

  Returns:
    The ConfigDict.

  Raises:
    ValueError: for a malformed override, an unknown reference name, or a field the
      config does not have (naming the closest ones).
  """
  path = os.path.join(config_dir, ref.config)
  config = config_utils.load_config(path)
  for override in overrides:
    # Only the value may hold a ':' (a path), so split at the '=' first.
    field, eq, value = override.partition('=')
    target, _, key = field.rpartition(':')
    if not eq or not key:
      raise ValueError(f'override {override!r} is not [NAME:]KEY=VALUE')
    if target and target not in names():
      raise ValueError(f'override {override!r} names no reference; the references are: '
                       f'{", ".join(names())}')
    if target and target != ref.name:
      continue
    try:
      config = config_utils.apply_overrides(config,
                                            {key: config_utils.parse_literal(value)})
    except ValueError as e:
      raise ValueError(f'override {override!r}: {e} (config file: {path})') from None
  return config


def missing_data(config) -> str | None:
  """Why the config's dataset cannot be read here, or None if it can.

  A dataset that may be prepared without network (generated, or from
  ``dataset.prepare_from_dir``) is prepared now, as training would.
  """
  try:
    data_lib.ensure_prepared(config.dataset)
  except data_lib.NotPreparedError as e:
    return str(e)
  return None


def run(references: Sequence[Reference], config_dir: str, seeds: int | None = None,
        workdir: str = DEFAULT_WORKDIR, out: str | None = None,
        overrides: Sequence[str] = (), command: str = '', not_run: Sequence[Reference] = (),
        runner: replicas.Runner | None = None, log=print,
        fan_out: replicas.FanOut | None = None) -> dict:
  """Reproduces each reference with its seeds; writes the results to ``out``.

  Args:
    references: from :func:`select`.
    config_dir: the folder holding the reference configs (``experiments/configs``).
    seeds: seeds ``0 .. seeds - 1`` for every reference; None: each reference's own
      default (:attr:`Reference.seeds`).
    workdir: parent of the per-reference run directories.
    out: folder for ``results.json`` and ``results.md`` (created); None writes nothing.
    overrides: see :func:`reference_config`; all are checked before anything trains.
    command: the command line, recorded in the results.
    not_run: references left out of this run (``--only``), listed as not run so the
      table still shows every reference.
    runner: see :func:`cnn_jax.train.replicas.train_seeds`.
    log: progress lines.
    fan_out: trains the references elsewhere, all at once (``--cluster``; see
      :func:`cnn_jax.train.replicas.train_seeds_each`).

  Returns:
    ``{'environment', 'seeds', 'overrides', 'references': [record, ...]}``; a record
    holds the reference's fields, ``status`` (``'pass'``, ``'fail'``,
    :data:`TOO_FEW_SEEDS`, ``'skipped'``, ``'not run'``, ``'failed'``) and, when
    trained, ``setting``, ``test_accuracies``, ``mean``, ``std``, ``low`` and ``high``
    (the interval of :meth:`Reference.verdict`), ``num_params``, ``epochs``,
    ``wall_s``, ``resumed``, ``hardware``; when skipped, ``reason`` and
    ``prepare_command``; trained by ``fan_out``, ``host`` and ``group_s`` (seconds on
    its worker), and when that failed, ``error`` (one line).

  Raises:
    ValueError: for a bad override, fewer than one seed or a workdir holding another
      run.
  """
  if seeds is not None and seeds < 1:
    raise ValueError(f'seeds={seeds}; need at least 1')
  configs = [reference_config(ref, config_dir, overrides) for ref in references]
  env = provenance.environment(command)
  records, to_train = [], []
  for ref, config in zip(references, configs):
    record = {**dataclasses.asdict(ref), 'rule_text': ref.rule_text(),
              'setting': f'{config.model.name}, {config.num_epochs} epochs'}
    reason = missing_data(config)
    if reason is not None:
      record.update(status='skipped', reason=reason, data_dir=config.dataset.data_dir,
                    prepare_command=tfds_data.prepare_command(config.dataset.name,
                                                              config.dataset.data_dir))
      log(f'{ref.name}: skipped, {config.dataset.name} is not prepared; prepare it with '
          f'{record["prepare_command"]}')
      records.append(record)
      continue
    n = seeds or ref.seeds
    log(f'{ref.name}: {n} seed(s) of {ref.config} in {os.path.join(workdir, ref.name)}')
    records.append(record)
    to_train.append((ref, config, record))
  trained = replicas.train_seeds_each(
      [(ref.name, config, os.path.join(workdir, ref.name)) for ref, config, _ in to_train],
      {ref.name: range(seeds or ref.seeds) for ref, _, _ in to_train}, runner, fan_out, log)
  for ref, config, record in to_train:
    summaries, resumed, outcome = trained[ref.name]
    if outcome is not None:
      record.update(host=outcome.host, group_s=outcome.duration_s)
    if summaries is None:
      record.update(status='failed', error=outcome.error)
      log(f'{ref.name}: failed on {outcome.host}: {outcome.error}')
      continue
    record.update(provenance.seed_results(summaries))  # the verdict's mean replaces its own
    record.update(ref.verdict(record['test_accuracies']),
                  num_params=summaries[0]['num_params'], epochs=config.num_epochs,
                  resumed=resumed,
                  hardware=(provenance.hardware(env) if outcome is None else
                            f'Dask worker {outcome.host}'))
    log(f'{ref.name}: {_ours(record)}, 95% interval {_interval(record)}, against '
        f'{100 * ref.published:.2f}% -> {record["status"]}')
  for ref in not_run:
    config = reference_config(ref, config_dir, overrides)
    records.append({**dataclasses.asdict(ref), 'rule_text': ref.rule_text(),
                    'status': 'not run',
                    'setting': f'{config.model.name}, {config.num_epochs} epochs'})
  order = {name: i for i, name in enumerate(names())}
  records.sort(key=lambda r: order.get(r['name'], -1))  # table order
  results = {'environment': env, 'seeds': seeds, 'overrides': list(overrides),
             'references': records}
  if out:
    provenance.write_results(out, results, format_results(results))
  return results


def _ours(record: dict) -> str:
  std = '' if record['std'] is None else f' ± {100 * record["std"]:.2f}'
  return f'{100 * record["mean"]:.2f}%{std} ({len(record["test_accuracies"])})'


def _interval(record: dict) -> str:
  if record['low'] is None:
    return 'none (one seed)'
  return f'[{100 * record["low"]:.2f}, {100 * record["high"]:.2f}]'


def format_results(results: dict) -> str:
  """The results as markdown: how they were obtained, then one table row per reference."""
  env, records = results['environment'], results['references']
  seeds = ('seeds 0..n-1 of each reference (n in brackets: its default, '
           f'{CHEAP_SEEDS} for the MNIST-1D references and {SEEDS} for the others)'
           if results['seeds'] is None else f'seeds 0..{results["seeds"] - 1}')
  notes = [
      f'Ours: the final test accuracy, mean ± sample standard deviation over {seeds}, '
      f'each seed trained from scratch. The verdict reads the {LEVEL:.0%} Student-t '
      'interval of the mean: ">= published - t" passes unless the whole interval lies '
      'below published - t, "published ± t" passes unless it lies wholly outside '
      'published ± t; either way a fail means our mean is outside the rule at the '
      f'one-sided {(1 - LEVEL) / 2:.1%} level, a pass that the seeds cannot show it. One '
      f'seed gives no interval: "{TOO_FEW_SEEDS}". Tolerances are in accuracy points.']
  if results['overrides']:
    notes.append(f'Overrides: {", ".join(f"`{o}`" for o in results["overrides"])}.')
  resumed = [r['name'] for r in records if r.get('resumed')]
  if resumed:
    notes.append(f'Read back from the workdir, trained by an earlier command (the wall time '
                 f'includes any interrupted part): {", ".join(resumed)}.')
  lines = [
      *provenance.page_header('Reproduction of published results', env), '',
      ' '.join(notes), '',
      f'| setting | published (source) | ours: mean ± std (n) | {LEVEL:.0%} interval '
      '| tolerance | result | hardware | wall time |',
      '|---|---|---|---|---|---|---|---|',
  ]
  for r in records:
    published = f'{100 * r["published"]:.2f}% ([{r["source"]}]({r["url"]}))'
    setting = f'{r["name"]}: {r["setting"]}' + (f' ({r["note"]})' if r['note'] else '')
    head = f'| {setting} | {published} | - | - | {r["rule_text"]} |'
    if r['status'] == 'failed':
      lines.append(f'{head} failed on {r["host"]}: {r["error"]} | - | - |')
    elif r['status'] == 'not run':
      lines.append(f'{head} not run (not selected by --only) | - | - |')
    elif r['status'] == 'skipped':
      data_dir = r['data_dir'] or 'the default TFDS data_dir'
      lines.append(f'{head} skipped: {r["dataset"]} is not prepared in {data_dir}; '
                   f'prepare it with `{r["prepare_command"]}` | - | - |')
    else:
      lines.append(f'| {setting} | {published} | {_ours(r)} | {_interval(r)} | '
                   f'{r["rule_text"]} | {r["status"]} | {r["hardware"]} | '
                   f'{provenance.duration(r["wall_s"])} |')
  return '\n'.join(lines) + '\n'
