"""The README's examples run and print what the README says."""

import os

from doctest_blocks import run_python_blocks

README = os.path.join(os.path.dirname(__file__), '..', 'README.md')


def test_readme_examples():
  result = run_python_blocks(README)
  assert result.attempted >= 5
  assert result.failed == 0


def test_relative_links_in_the_docs_resolve():
  """The README, docs/ and the results index link files that exist."""
  import glob
  import re
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  pages = [os.path.join(root, 'README.md'),
           os.path.join(root, 'experiments', 'results', 'README.md'),
           *glob.glob(os.path.join(root, 'docs', '*.md'))]
  broken = []
  for page in pages:
    with open(page) as f:
      text = f.read()
    for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
      if '://' in target:
        continue
      if not os.path.exists(os.path.join(os.path.dirname(page), target)):
        broken.append(f'{os.path.relpath(page, root)} -> {target}')
  assert not broken, broken
