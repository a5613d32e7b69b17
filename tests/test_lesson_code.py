"""docs/lesson_code.md: the lesson's wrong samples and the corrected results print what
the page says (every block runs as a doctest), and the page quotes the numbers the
issue and the lesson state."""

import os

from doctest_blocks import run_python_blocks

PAGE = os.path.join(os.path.dirname(__file__), '..', 'docs', 'lesson_code.md')


def test_lesson_code_page_runs_as_written():
  result = run_python_blocks(PAGE)
  assert result.failed == 0
  assert result.attempted >= 15


def test_lesson_code_page_shows_both_wrong_outputs_and_the_corrections():
  with open(PAGE) as f:
    text = f.read()
  # The lesson's outputs, and ours: numpy.convolve([1, 2, 3], [1, 2, 3]) by hand.
  for quoted in ('\n36\n', '[0.325, 0.6625, 1.0]', '[ 1,  4, 10, 12,  9]'):
    assert quoted in text
