"""cnn_jax.stats against hand computation and SciPy's own Welch test."""

import math

import pytest
from scipy import stats as scipy_stats

from cnn_jax import stats


def test_mean_interval_by_hand():
  # mean 2, sample std 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3), t = 4.302653 (tables).
  mean, low, high = stats.mean_interval([1.0, 2.0, 3.0])
  assert mean == 2.0
  assert high - mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
  assert mean - low == pytest.approx(high - mean)
  # 90%: t(0.95, 2) = 2.919986.
  assert stats.mean_interval([1.0, 2.0, 3.0], 0.9)[2] == pytest.approx(
      2 + 2.919986 / math.sqrt(3), rel=1e-6)
  assert stats.mean_interval([0.7]) == (0.7, -math.inf, math.inf)


def test_welch_by_hand_and_against_scipy():
  a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
  test = stats.welch(a, b)
  # var(a)/3 = 1/3, var(b)/4 = (5/3)/4 = 5/12: t = -3.5 / sqrt(3/4).
  assert test['diff'] == -3.5
  assert test['t'] == pytest.approx(-3.5 / math.sqrt(0.75))
  assert test['dof'] == pytest.approx(0.75 ** 2 / ((1 / 3) ** 2 / 2 + (5 / 12) ** 2 / 3))
  reference = scipy_stats.ttest_ind(a, b, equal_var=False)
  assert test['p'] == pytest.approx(reference.pvalue)
  assert test['significant'] == (reference.pvalue < 0.05)
  interval = reference.confidence_interval(0.95)
  assert (test['low'], test['high']) == (pytest.approx(interval.low),
                                         pytest.approx(interval.high))


@pytest.mark.parametrize('a, b', [([0.9], [0.8, 0.85]), ([0.9, 0.9], [0.8, 0.8])])
def test_welch_says_nothing_without_two_seeds_or_any_spread(a, b):
  test = stats.welch(a, b)
  assert test['p'] is None and not test['significant']
  assert test['low'] is None and test['high'] is None
  assert test['diff'] == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
  assert 'no test' in stats.verdict(test)


def test_verdict_words():
  assert stats.verdict({'diff': 0.0123, 'p': 0.004, 'significant': True}) == (
      '+1.23 points, p = 0.004: significant')
  assert stats.verdict({'diff': -0.001, 'p': 0.71, 'significant': False}) == (
      '-0.10 points, p = 0.71: no evidence of a difference')
