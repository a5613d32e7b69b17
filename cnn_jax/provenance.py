"""Where a number came from, and how results are written: shared by train and the studies.

Every results file the project writes states the code (git commit), the versions, the
hardware and the command that produced it; a workdir refuses to be resumed by a
different run. These helpers are the one place that does both.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from typing import Sequence

import jax

RESULTS_JSON = 'results.json'
RESULTS_MD = 'results.md'


def git_commit(path: str = os.path.dirname(__file__)) -> str:
  """The commit of the checkout ``path`` (default: this package's) is in, or ``'unknown'``.

  Ends in ``-dirty`` when tracked files differ from that commit: the numbers then come
  from code no commit holds, and a results page must not claim otherwise.
  """
  run = lambda *args: subprocess.run(['git', *args], capture_output=True, text=True,
                                     cwd=path, check=True).stdout
  try:
    commit = run('rev-parse', 'HEAD').strip()
    return commit + ('-dirty' if run('status', '--porcelain', '--untracked-files=no')
                     else '')
  except (OSError, subprocess.CalledProcessError):
    return 'unknown'


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def environment(command: str = '') -> dict:
  """Versions, devices, hardware, load, date and command line of this process.

  Args:
    command: the command line that is producing the results, if any.

  Returns:
    A JSON-ready dict, stored in ``config.json`` and beside every results table.
  """
  import flax
  import optax
  devices = jax.devices()
  return {'jax': jax.__version__, 'flax': flax.__version__, 'optax': optax.__version__,
          'python': sys.version.split()[0], 'git_commit': git_commit(),
          'devices': [str(d) for d in devices], 'process_count': jax.process_count(),
          'device_kind': devices[0].device_kind, 'platform': devices[0].platform,
          'cpu_model': _cpu_model(), 'cpu_count': os.cpu_count(),
          # Other processes' load skews CPU timings; record it beside them.
          'load_average': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
          'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
          'command': command}


def hardware(env: dict) -> str:
  """``'AMD EPYC, 2 cores'`` on CPU, else the accelerator kind and count."""
  if env['platform'] == 'cpu':
    return f'{env["cpu_model"]}, {env["cpu_count"]} cores'
  return f'{len(env["devices"])} x {env["device_kind"]}'


def page_header(title: str, env: dict, versions: str = '') -> list[str]:
  """The first lines of every results page: title, command, and where and when it ran.

  Args:
    title: the page's title.
    env: from :func:`environment`.
    versions: the libraries to name; default ``'jax X, flax Y'``.

  Returns:
    Markdown lines ending in an open sentence (``'... git <commit>.'``): a caller may
    append to the last line before adding its own.
  """
  load = env.get('load_average')  # None where the OS does not report it
  where = hardware(env) + (f' (load average {load[0]:.2f} at the start)' if load else '')
  versions = versions or f'jax {env["jax"]}, flax {env["flax"]}'
  return [f'# {title}', '', f'`{env["command"]}`', '',
          f'{env["date"]}; {where}; devices {", ".join(env["devices"])}; {versions}; '
          f'git {env["git_commit"]}.']


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
  """Mean and sample standard deviation (ddof=1) over seeds.

  Returns:
    ``(mean, std)``; std is None for a single value, both are None when ``values`` is
    empty or holds a None (a run that did not report the metric).
  """
  if not values or any(v is None for v in values):
    return None, None
  return (statistics.fmean(values),
          statistics.stdev(values) if len(values) > 1 else None)


def seed_results(summaries: Sequence[dict]) -> dict:
  """What the studies report of one run's seeds, from its replica summaries.

  Returns:
    ``test_accuracies`` (per seed, in order), their ``mean`` and sample ``std``
    (:func:`mean_std`), and ``wall_s``: the longest replica's, which for seeds trained
    as one vmapped program is the program's.
  """
  accuracies = [r['test_accuracy'] for r in summaries]
  mean, std = mean_std(accuracies)
  return {'test_accuracies': accuracies, 'mean': mean, 'std': std,
          'wall_s': max(r['wall_s'] for r in summaries)}


def duration(seconds: float) -> str:
  """``75.2`` -> ``'1 min 15 s'``; ``3725`` -> ``'1 h 2 min'``."""
  s = round(seconds)
  if s < 60:
    return f'{s} s'
  if s < 3600:
    return f'{s // 60} min {s % 60} s'
  return f'{s // 3600} h {s % 3600 // 60} min'


def jsonable(value):
  """``value`` as it reads back from JSON (tuples become lists, objects strings)."""
  return json.loads(json.dumps(value, default=str))


def flatten_config(d: dict, prefix: str = '') -> dict:
  """A nested dict as one level of dotted keys (``{"model.name": ...}``)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten_config(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def refuse_different_run(workdir: str, what: str, saved: dict, current: dict) -> None:
  """Raises if a workdir's recorded identity differs from the run about to resume it.

  Args:
    workdir: the folder, for the message.
    what: what it holds, e.g. ``'run'`` or ``'sweep'``.
    saved: the identity read back from the workdir (nested dicts of JSON values).
    current: the new run's identity, same structure (converted through JSON, so
      tuples and lists compare equal).

  Raises:
    ValueError: naming up to eight differing fields with their old and new values.
  """
  old, new = flatten_config(jsonable(saved)), flatten_config(jsonable(current))
  diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
  if diff:
    details = '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in diff[:8])
    raise ValueError(f'{workdir} holds a different {what} ({details}). Resuming it would '
                     f'mix two experiments; use a new --workdir. Nothing was changed.')


def write_results(out: str, results: dict, markdown: str) -> None:
  """Writes ``results.json`` (the records) and ``results.md`` (their table) into ``out``.

  Shared by the benchmark, the reproduction and the DNN-vs-CNN study.
  """
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, RESULTS_JSON), 'w') as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(out, RESULTS_MD), 'w') as f:
    f.write(markdown)
