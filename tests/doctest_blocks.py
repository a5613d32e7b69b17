"""Runs the ```python blocks of a markdown page as doctests, for the pages' tests."""

import doctest
import re


def run_python_blocks(path: str) -> doctest.TestResults:
  """Doctests each ```python block of ``path`` in order, sharing one namespace.

  Each block is parsed on its own, so the closing fence is not read as expected output;
  later blocks see the names earlier ones defined.

  Returns:
    The summed ``(failed, attempted)`` counts; failures are printed as doctest does.
  """
  with open(path) as f:
    text = f.read()
  blocks = re.findall(r'```python\n(.*?)```', text, flags=re.S)
  globs, runner = {}, doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
  parser = doctest.DocTestParser()
  for i, block in enumerate(blocks):
    test = parser.get_doctest(block, globs, f'{path} block {i}', path, 0)
    runner.run(test, clear_globs=False)
    globs.update(test.globs)
  return runner.summarize(verbose=False)
