"""The README's examples run and print what the README says."""

import os

from doctest_blocks import run_python_blocks

README = os.path.join(os.path.dirname(__file__), '..', 'README.md')


def test_readme_examples():
  result = run_python_blocks(README)
  assert result.attempted >= 5
  assert result.failed == 0
