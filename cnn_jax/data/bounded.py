"""Reading local source files without trusting the sizes they claim.

Compressed files (a ``.gz`` IDX file, a member of a ``.tar.gz``) can inflate to far more
than they occupy on disk, and their headers can declare any size; the readers bound what
they read before reading it.
"""

from __future__ import annotations

from typing import BinaryIO

# Read in pieces so that memory grows with the data actually present, not with a
# declared size (io.BufferedReader.read(n) allocates all n bytes up front).
_CHUNK_BYTES = 1 << 24


def read_at_most(f: BinaryIO, limit: int) -> bytearray:
  """Reads ``f`` to its end, but never more than ``limit + 1`` bytes.

  Args:
    f: a binary file object, possibly decompressing.
    limit: the most bytes the caller accepts.

  Returns:
    The bytes read: ``len(result) > limit`` tells the caller that ``f`` holds more than
    ``limit`` bytes, without reading (or inflating) the rest.
  """
  data = bytearray()
  while len(data) <= limit:
    chunk = f.read(min(_CHUNK_BYTES, limit + 1 - len(data)))
    if not chunk:
      break
    data += chunk
  return data
