"""The statistics the studies and reproductions state their verdicts with.

Seeds are the replicates: a setting's accuracy over n seeds is a sample, and a claim
("dropout helps at 1k images", "our mean matches the paper") is a statement about the
mean of that sample. Student's t covers the small n (3-10 seeds) honestly; a normal
interval would be too narrow.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _scipy_stats

SIGNIFICANCE = 0.05  # the level every verdict in the results pages is stated at


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
  """The mean of ``values`` and its two-sided Student-t confidence interval.

  Args:
    values: one number per seed.
    level: the interval's confidence level.

  Returns:
    ``(mean, low, high)``; with one value the interval is ``(-inf, inf)``: one seed
    says nothing about the spread.
  """
  x = np.asarray(values, dtype=np.float64)
  mean = float(x.mean())
  if x.size < 2:
    return mean, -math.inf, math.inf
  half = (_scipy_stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1)
          / math.sqrt(x.size))
  return mean, mean - float(half), mean + float(half)


def welch(a: Sequence[float], b: Sequence[float]) -> dict:
  """Welch's two-sided t-test of ``mean(a) - mean(b)`` (unequal variances).

  Args:
    a: one number per seed of the first setting.
    b: likewise for the second.

  Returns:
    ``{'diff', 't', 'dof', 'p', 'significant', 'low', 'high'}``: the difference of the
    means, the t statistic, the Welch-Satterthwaite degrees of freedom, the two-sided
    p-value, whether ``p < SIGNIFICANCE``, and the 95% confidence interval of the
    difference (``diff -+ t_{0.975, dof} * SE``: the differences the seeds cannot rule
    out). With fewer than two values on a side, or no spread on both, nothing can be
    said: ``t``, ``dof``, ``p``, ``low`` and ``high`` are None and ``significant`` False.
  """
  a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
  diff = float(a.mean() - b.mean())
  va = a.var(ddof=1) / a.size if a.size > 1 else math.nan
  vb = b.var(ddof=1) / b.size if b.size > 1 else math.nan
  if not (va + vb > 0):  # nan (too few seeds) or no spread at all
    return {'diff': diff, 't': None, 'dof': None, 'p': None, 'significant': False,
            'low': None, 'high': None}
  se = math.sqrt(va + vb)
  t = diff / se
  dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  p = float(2 * _scipy_stats.t.sf(abs(t), dof))
  half = float(_scipy_stats.t.ppf(0.975, dof)) * se
  return {'diff': diff, 't': float(t), 'dof': float(dof), 'p': p,
          'significant': p < SIGNIFICANCE, 'low': diff - half, 'high': diff + half}


def verdict(test: dict) -> str:
  """A Welch test as words: the difference in accuracy points and whether it is real.

  Args:
    test: from :func:`welch`, on accuracies as fractions.

  Returns:
    e.g. ``'+1.23 points, p = 0.004: significant'`` or ``'-0.10 points, p = 0.71: no
    evidence of a difference'``.
  """
  diff = f'{100 * test["diff"]:+.2f} points'
  if test['p'] is None:
    return f'{diff}, too few seeds or no spread: no test'
  word = 'significant' if test['significant'] else 'no evidence of a difference'
  # Three digits, so that a p-value just under the threshold never prints as it.
  return f'{diff}, p = {test["p"]:.3g}: {word}'
