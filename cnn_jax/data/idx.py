"""Reading MNIST-format IDX files (MNIST, Fashion-MNIST), gzipped or not, with checks.

The Debian package ``dataset-fashion-mnist`` installs the real Fashion-MNIST files in
:data:`DEBIAN_FASHION_MNIST_DIR`, the offline source from which ``python -m cnn_jax.data
prepare fashion_mnist`` builds the TFDS dataset.
"""

from __future__ import annotations

import gzip
import math
import os
import struct

import numpy as np

from cnn_jax.data import bounded

DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'
# Above any MNIST-format dataset's largest file (EMNIST ByClass train images: 547 MB).
MAX_BYTES = 1 << 30

# IDX magic: two zero bytes, a type code (0x08 = unsigned byte) and the number of dims.
_UBYTE = 0x08
_SPLIT_PREFIX = {'train': 'train', 'test': 't10k'}


class IdxFormatError(ValueError):
  """An IDX file is malformed, truncated or does not match its companion file."""


def read_idx(path: str, expected_ndim: int | None = None,
             max_bytes: int = MAX_BYTES) -> np.ndarray:
  """Reads one IDX file of unsigned bytes.

  The header is read first and the payload size it declares is checked against
  ``max_bytes`` before any payload is read; a ``.gz`` file is then inflated only up to
  that size, so a crafted header or a gzip bomb fails fast instead of exhausting memory.

  Args:
    path: file path; a ``.gz`` suffix is decompressed.
    expected_ndim: number of dimensions the header must declare (1 for labels,
      3 for images), or None to accept any.
    max_bytes: the largest payload accepted.

  Returns:
    A uint8 array with the shape from the header.

  Raises:
    FileNotFoundError: if the file does not exist.
    IdxFormatError: for a bad magic number, an unexpected rank, a declared size above
      ``max_bytes``, or a payload whose length differs from the header's.
  """
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      magic = f.read(4)
      if len(magic) < 4:
        raise IdxFormatError(f'{path}: {len(magic)} bytes, too short for an IDX header')
      zero, dtype, ndim = struct.unpack('>HBB', magic)
      if zero != 0 or dtype != _UBYTE:
        raise IdxFormatError(f'{path}: bad magic number 0x{magic.hex()}; expected '
                             f'0x0000080N (unsigned-byte IDX with N dimensions)')
      if expected_ndim is not None and ndim != expected_ndim:
        raise IdxFormatError(f'{path}: header declares {ndim} dimensions, expected '
                             f'{expected_ndim}')
      dims = f.read(4 * ndim)
      if len(dims) < 4 * ndim:
        raise IdxFormatError(f'{path}: truncated header ({4 + len(dims)} bytes)')
      shape = struct.unpack(f'>{ndim}I', dims)
      expected = math.prod(shape)  # Python ints: np.prod wraps around in int64
      if expected > max_bytes:
        raise IdxFormatError(f'{path}: header declares shape {shape} ({expected} bytes), '
                             f'above the limit of {max_bytes} bytes; the file is corrupt '
                             f'or not an MNIST-format dataset')
      data = bounded.read_at_most(f, expected)
  except (OSError, EOFError) as e:  # gzip raises these for truncated archives
    if isinstance(e, FileNotFoundError):
      raise
    raise IdxFormatError(f'{path}: cannot be read ({e}); the file is corrupt or '
                         f'truncated, restore it from the dataset source') from e
  if len(data) > expected:
    raise IdxFormatError(f'{path}: holds more data than its header declares (shape '
                         f'{shape}, {expected} bytes); the file is corrupt')
  if len(data) < expected:
    raise IdxFormatError(f'{path}: header declares shape {shape} ({expected} bytes of '
                         f'data) but the file holds {len(data)}; the file is '
                         f'truncated or corrupt')
  return np.frombuffer(data, np.uint8).reshape(shape)


def _find(directory: str, stem: str) -> str:
  for name in (stem, stem + '.gz'):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      f'{stem}[.gz] not found in {directory}. For Fashion-MNIST offline, install the '
      f'Debian package: apt-get install dataset-fashion-mnist (files land in '
      f'{DEBIAN_FASHION_MNIST_DIR})')


def split_paths(directory: str, split: str) -> tuple[str, str]:
  """Finds the images and labels files of one split, gzipped or not.

  Args:
    directory: folder holding ``train-images-idx3-ubyte[.gz]`` etc.
    split: ``'train'`` or ``'test'``.

  Returns:
    ``(images_path, labels_path)``.

  Raises:
    ValueError: for another split name.
    FileNotFoundError: if a file is missing (the message says how to install it).
  """
  if split not in _SPLIT_PREFIX:
    raise ValueError(f'split must be one of {sorted(_SPLIT_PREFIX)}, got {split!r}')
  prefix = _SPLIT_PREFIX[split]
  return (_find(directory, f'{prefix}-images-idx3-ubyte'),
          _find(directory, f'{prefix}-labels-idx1-ubyte'))


def load_split(directory: str, split: str, num_classes: int = 10):
  """Loads one split of an MNIST-format dataset from a directory of IDX files.

  Args:
    directory: folder holding ``train-images-idx3-ubyte[.gz]`` etc.
    split: ``'train'`` or ``'test'``.
    num_classes: labels must lie in ``[0, num_classes)``.

  Returns:
    ``(images, labels)``: uint8 ``(N, H, W, 1)`` and int32 ``(N,)``.

  Raises:
    FileNotFoundError: if a file is missing (the message says how to install it).
    IdxFormatError: if a file is malformed, the counts disagree or a label is out of
      range.
  """
  images_path, labels_path = split_paths(directory, split)
  images = read_idx(images_path, expected_ndim=3)
  labels = read_idx(labels_path, expected_ndim=1)
  if images.shape[0] != labels.shape[0]:
    raise IdxFormatError(f'{images_path} holds {images.shape[0]} images but {labels_path} '
                         f'holds {labels.shape[0]} labels')
  if labels.size and labels.max() >= num_classes:
    raise IdxFormatError(f'{labels_path}: label {labels.max()} outside [0, {num_classes})')
  return images[..., None], labels.astype(np.int32)
