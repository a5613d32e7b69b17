"""Tests for the experiments.bench_ops entry point (its table selection)."""

import sys

import pytest

from experiments import bench_ops


def _main(monkeypatch, *args):
  monkeypatch.setattr(sys, 'argv', ['bench_ops', *args])
  bench_ops.main()


def test_unknown_table_is_refused_with_the_choices(monkeypatch, capsys):
  with pytest.raises(SystemExit) as exit_info:
    _main(monkeypatch, '--tables', 'pool,convs')
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert "unknown --tables ['convs']" in err and "'conv_grads'" in err


def test_selected_table_only(monkeypatch, capsys):
  _main(monkeypatch, '--tables', 'pool', '--batch', '2', '--repeats', '1')
  out = capsys.readouterr().out
  assert out.count('| max_pool 2x2/2') == 2
  assert 'conv2d' not in out
