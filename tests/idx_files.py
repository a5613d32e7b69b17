"""Writes MNIST-format IDX files for tests, from the format's definition."""

import gzip
import os
import struct

import numpy as np


def write_idx(path, array, magic_type=0x08):
  """Writes an unsigned-byte IDX file (big-endian header: 0, type, ndim, dims)."""
  header = struct.pack('>HBB', 0, magic_type, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  opener = gzip.open if str(path).endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def write_split(directory, prefix, images, labels, gz=True):
  """Writes ``{prefix}-images-idx3-ubyte`` and ``{prefix}-labels-idx1-ubyte``."""
  suffix = '.gz' if gz else ''
  write_idx(os.path.join(directory, f'{prefix}-images-idx3-ubyte{suffix}'), images)
  write_idx(os.path.join(directory, f'{prefix}-labels-idx1-ubyte{suffix}'), labels)


def write_toy_dataset(directory, n_train=512, n_test=128, size=28, seed=0):
  """A learnable 10-class toy: the label is where a bright 3x3 patch sits, plus noise."""
  rng = np.random.default_rng(seed)
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, size, size))
    for i, label in enumerate(labels):
      r, c = divmod(int(label), 4)
      images[i, 3 * r:3 * r + 3, 3 * c:3 * c + 3] = 255
    write_split(directory, prefix, images, labels)


def prepare_toy_tfds(source_dir, data_dir):
  """Writes the toy as IDX files and prepares it as a TFDS ``fashion_mnist`` dataset.

  Returns:
    ``data_dir``, for ``config.dataset.data_dir``.
  """
  from cnn_jax import data  # imported here: the IDX writers above need no TFDS
  write_toy_dataset(source_dir)
  data.prepare('fashion_mnist', data_dir=str(data_dir), from_dir=str(source_dir),
               verify_counts=False)
  return str(data_dir)
