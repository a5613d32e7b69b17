"""Reproduction of published results: reference settings, n seeds each, pass or fail.

  python -m experiments.reproduce [--only NAME[,NAME]] [--seeds 3] \
      [--override [NAME:]KEY=VALUE] [--workdir runs/reproduce] [--out DIR]

Each :class:`Reference` names a config file under ``experiments/configs/``, the
published test accuracy with its source, and the rule that decides whether our number
reproduces it. :func:`run` checks first that each reference's dataset can be read
without network; one that cannot is reported as skipped, with the reason and the
command that prepares it. The others are trained with one seed per replica
(:func:`cnn_jax.train.replicas.train_replicas`, all seeds as one vmapped program) in
``workdir/NAME``; a reference whose workdir already holds the finished seeds is read
back, not trained again. The results go to ``results.json`` and ``results.md``.

Pass or fail is decided on the mean test accuracy over the seeds. Tolerances are about
two binomial standard deviations of a test-set accuracy at the published value
(``sqrt(p (1 - p) / n_test)``: 0.75 points for 94% of MNIST-1D's 1,000 test sequences,
0.1 points for 99% of 10,000 images), so a faithful reproduction fails by chance
rarely; where the source states a floor ("at least 91%") the tolerance is 0.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import ml_collections

from cnn_jax import config_utils, provenance
from cnn_jax import data as data_lib
from cnn_jax.data import tfds_data
from cnn_jax.train import replicas

DEFAULT_WORKDIR = 'runs/reproduce'

# rule -> (how the table states it, the test on (ours, published, tolerance)).
RULES = {
    'at_least': ('>= published - {tol}', lambda ours, pub, tol: ours >= pub - tol),
    'within': ('published ± {tol}', lambda ours, pub, tol: abs(ours - pub) <= tol),
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
    tolerance: how far below (``at_least``) or from (``within``) it ours may be.
    rule: ``'at_least'`` (ours >= published - tolerance; beating it passes) or
      ``'within'`` (|ours - published| <= tolerance: baselines, whose point is where
      they land).
    source: the citation.
    url: where the number is printed.
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
  note: str = ''

  def passes(self, accuracy: float) -> bool:
    """Whether ``accuracy`` (mean over seeds) reproduces the published number."""
    return RULES[self.rule][1](accuracy, self.published, self.tolerance)

  def rule_text(self) -> str:
    """The rule with the tolerance in accuracy points, e.g. ``'>= published - 1.5'``."""
    if self.rule == 'at_least' and not self.tolerance:
      return '>= published'
    return RULES[self.rule][0].format(tol=f'{100 * self.tolerance:g}')


def _reference(name: str, dataset: str, published: float, tolerance: float, rule: str,
               source: str, url: str, note: str = '') -> Reference:
  return Reference(name, f'reproduce_{name}.py', dataset, published, tolerance, rule,
                   source, url, note)


REFERENCES = (
    # Checked against the README table of github.com/greydanus/mnist1d (not against the
    # paper's PDF): logistic regression 32%, MLP 68%, CNN 94%, GRU 91% (no GRU here).
    _reference('mnist1d_cnn', 'mnist1d', 0.94, 0.015, 'at_least', _GREYDANUS,
               'https://github.com/greydanus/mnist1d'),
    _reference('mnist1d_mlp', 'mnist1d', 0.68, 0.03, 'within', _GREYDANUS,
               'https://github.com/greydanus/mnist1d',
               'plain 40-100-100-10 MLP; the reference MLP\'s second layer is residual'),
    _reference('mnist1d_logistic', 'mnist1d', 0.32, 0.03, 'within', _GREYDANUS,
               'https://github.com/greydanus/mnist1d'),
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


# runner(config, workdir, variants, log=log) -> one summary per variant, as
# cnn_jax.train.replicas.train_replicas.
def run(references: Sequence[Reference], config_dir: str, seeds: int = 3,
        workdir: str = DEFAULT_WORKDIR, out: str | None = None,
        overrides: Sequence[str] = (), command: str = '', not_run: Sequence[Reference] = (),
        runner: replicas.Runner | None = None, log=print,
        fan_out: replicas.FanOut | None = None) -> dict:
  """Reproduces each reference with ``seeds`` seeds; writes the results to ``out``.

  Args:
    references: from :func:`select`.
    config_dir: the folder holding the reference configs (``experiments/configs``).
    seeds: seeds ``0 .. seeds - 1`` per reference.
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
    holds the reference's fields, ``status`` (``'pass'``, ``'fail'``, ``'skipped'``,
    ``'not run'``, ``'failed'``) and, when trained, ``setting``, ``test_accuracies``,
    ``mean``, ``std``, ``num_params``, ``epochs``, ``wall_s``, ``resumed``,
    ``hardware``; when skipped, ``reason`` and ``prepare_command``; trained by
    ``fan_out``, ``host`` and ``group_s`` (seconds on its worker), and when that
    failed, ``error`` (one line).

  Raises:
    ValueError: for a bad override or a workdir holding another run.
  """
  if seeds < 1:
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
    log(f'{ref.name}: {seeds} seed(s) of {ref.config} in {os.path.join(workdir, ref.name)}')
    records.append(record)
    to_train.append((ref, config, record))
  trained = replicas.train_seeds_each(
      [(ref.name, config, os.path.join(workdir, ref.name)) for ref, config, _ in to_train],
      range(seeds), runner, fan_out, log)
  for ref, config, record in to_train:
    summaries, resumed, outcome = trained[ref.name]
    if outcome is not None:
      record.update(host=outcome.host, group_s=outcome.duration_s)
    if summaries is None:
      record.update(status='failed', error=outcome.error)
      log(f'{ref.name}: failed on {outcome.host}: {outcome.error}')
      continue
    accuracies = [r['test_accuracy'] for r in summaries]
    mean, std = provenance.mean_std(accuracies)
    record.update(status='pass' if ref.passes(mean) else 'fail', test_accuracies=accuracies,
                  mean=mean, std=std, num_params=summaries[0]['num_params'],
                  epochs=config.num_epochs,
                  # The seeds train as one program: its wall time is every replica's.
                  wall_s=max(r['wall_s'] for r in summaries), resumed=resumed,
                  hardware=(provenance.hardware(env) if outcome is None else
                            f'Dask worker {outcome.host}'))
    log(f'{ref.name}: {_ours(record)} against {100 * ref.published:.2f}% -> '
        f'{record["status"]}')
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


def format_results(results: dict) -> str:
  """The results as markdown: how they were obtained, then one table row per reference."""
  env, records = results['environment'], results['references']
  notes = [f'Ours: the final test accuracy, mean ± sample standard deviation over seeds '
           f'0..{results["seeds"] - 1} (n in brackets), each seed trained from scratch; '
           f'pass or fail is decided on the mean. Tolerances are in accuracy points.']
  if results['overrides']:
    notes.append(f'Overrides: {", ".join(f"`{o}`" for o in results["overrides"])}.')
  resumed = [r['name'] for r in records if r.get('resumed')]
  if resumed:
    notes.append(f'Read back from the workdir, trained by an earlier command (the wall time '
                 f'includes any interrupted part): {", ".join(resumed)}.')
  lines = [
      '# Reproduction of published results', '',
      f'`{env["command"]}`', '',
      f'{env["date"]}; {provenance.hardware(env)}; devices {", ".join(env["devices"])}; '
      f'jax {env["jax"]}, flax {env["flax"]}; git {env["git_commit"]}.', '',
      ' '.join(notes), '',
      '| setting | published (source) | ours: mean ± std (n) | tolerance | result '
      '| hardware | wall time |',
      '|---|---|---|---|---|---|---|',
  ]
  for r in records:
    published = f'{100 * r["published"]:.2f}% ([{r["source"]}]({r["url"]}))'
    setting = f'{r["name"]}: {r["setting"]}' + (f' ({r["note"]})' if r['note'] else '')
    if r['status'] == 'failed':
      lines.append(f'| {setting} | {published} | - | {r["rule_text"]} | failed on '
                   f'{r["host"]}: {r["error"]} | - | - |')
    elif r['status'] == 'not run':
      lines.append(f'| {setting} | {published} | - | {r["rule_text"]} | not run '
                   f'(not selected by --only) | - | - |')
    elif r['status'] == 'skipped':
      data_dir = r['data_dir'] or 'the default TFDS data_dir'
      lines.append(f'| {setting} | {published} | - | {r["rule_text"]} | skipped: '
                   f'{r["dataset"]} is not prepared in {data_dir}; prepare it with '
                   f'`{r["prepare_command"]}` | - | - |')
    else:
      lines.append(f'| {setting} | {published} | {_ours(r)} | {r["rule_text"]} | '
                   f'{r["status"]} | {r["hardware"]} | {provenance.duration(r["wall_s"])} |')
  return '\n'.join(lines) + '\n'
