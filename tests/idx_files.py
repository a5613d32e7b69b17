"""Writes MNIST-format IDX and CIFAR-100 binary files for tests, from the formats' definitions."""

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


def cifar_rows(images):
  """``(N, 32, 32, 3)`` images as CIFAR's channel-major 3072-byte rows."""
  return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_cifar100_binary(directory, sizes, seed):
  """Random examples as ``directory/cifar-100-binary``: ``{split}.bin`` and the label names.

  Args:
    directory: the parent folder (a ``pathlib.Path``).
    sizes: ``((split, n), ...)``, e.g. ``(('train', 4), ('test', 2))``.
    seed: the numpy seed of the images and labels.

  Returns:
    ``{split: (images, fine, coarse)}`` as written.
  """
  rng = np.random.default_rng(seed)
  folder = directory / 'cifar-100-binary'
  folder.mkdir()
  written = {}
  for split, n in sizes:
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    coarse, fine = rng.integers(0, 20, n), rng.integers(0, 100, n)
    # Each record: coarse label byte, fine label byte, 3072 channel-major pixel bytes.
    records = np.concatenate([coarse[:, None], fine[:, None], cifar_rows(images)], axis=1)
    (folder / f'{split}.bin').write_bytes(records.astype(np.uint8).tobytes())
    written[split] = images, fine, coarse
  (folder / 'coarse_label_names.txt').write_text('\n'.join(f'c{i}' for i in range(20)))
  (folder / 'fine_label_names.txt').write_text('\n'.join(f'f{i}' for i in range(100)))
  return written
