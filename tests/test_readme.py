"""The README's examples run and print what the README says."""

import doctest
import os
import re

README = os.path.join(os.path.dirname(__file__), '..', 'README.md')


def test_readme_examples():
  with open(README) as f:
    text = f.read()
  # Doctest each ```python block on its own, so the closing fence is not read as output.
  blocks = re.findall(r'```python\n(.*?)```', text, flags=re.S)
  globs, runner = {}, doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
  parser = doctest.DocTestParser()
  for i, block in enumerate(blocks):
    test = parser.get_doctest(block, globs, f'README block {i}', README, 0)
    runner.run(test, clear_globs=False)
    globs.update(test.globs)  # later blocks use earlier imports
  result = runner.summarize(verbose=False)
  assert result.attempted >= 5
  assert result.failed == 0
