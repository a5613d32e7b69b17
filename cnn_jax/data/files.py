"""A dataset's splits read straight from its local source files, without TensorFlow or TFDS.

The route of ``dataset.reader = 'files'`` in :func:`cnn_jax.data.load`: the folder named
by ``dataset.prepare_from_dir`` holds the files that ``python -m cnn_jax.data prepare``
would turn into a TFDS dataset (MNIST-format IDX files, the CIFAR archives), and they
are read with :mod:`cnn_jax.data.idx` and :mod:`cnn_jax.data.cifar`, which need only
numpy. This is how a machine without TensorFlow and tensorflow-datasets (a GPU image)
trains on Fashion-MNIST: copy the four IDX files there.

The examples are those of the TFDS dataset prepared from the same files, in the files'
order; TFDS stores them shuffled, so the same seed gives other batches than with
``reader = 'tfds'`` (the same data, not the same run).
"""

from __future__ import annotations

import re

import numpy as np

from cnn_jax.data import catalog, cifar, idx

# TFDS's split slicing: NAME, NAME[FROM:TO] with optional ints or percents.
_SPLIT = re.compile(r'^(\w+)(?:\[(-?\d*)(%?):(-?\d*)(%?)\])?$')


def read_local(name: str, directory: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Every split of a dataset whose catalog entry has local files (IDX or CIFAR).

  Args:
    name: a dataset of :data:`cnn_jax.data.catalog.DATASETS`.
    directory: the folder of its files (as for ``prepare --from-dir``).

  Returns:
    ``{'train': (images, labels), 'test': (images, labels)}``: uint8 NHWC images and
    int32 labels, in the files' order.

  Raises:
    ValueError: for a dataset without local files of these kinds.
    FileNotFoundError: for missing files (the message says how to get them).
    idx.IdxFormatError, cifar.CifarFormatError: for malformed files.
  """
  source = catalog.get(name).local_source
  if source == 'idx':
    return {split: idx.load_split(directory, split) for split in ('train', 'test')}
  if source == 'cifar':
    splits = cifar.read(name, directory).splits
    return {split: (arrays['image'], arrays['label'].astype(np.int32))
            for split, arrays in splits.items()}
  raise ValueError(f"dataset.reader='files' reads IDX or CIFAR files; {name} has none "
                   f"(local source {source!r}): use dataset.reader='tfds'")


def split_range(split: str, sizes: dict[str, int]) -> tuple[str, int, int]:
  """The examples a TFDS split string selects, as TFDS resolves it.

  Percent boundaries round to the closest example (TFDS's default ``rounding``), and
  negative boundaries count from the end, so ``'train[:90%]'`` and ``'train[90%:]'`` of
  Fashion-MNIST are examples ``[0, 54000)`` and ``[54000, 60000)``.

  Args:
    split: ``NAME`` or ``NAME[FROM:TO]``, each boundary an optional int or percent.
    sizes: the number of examples of each split.

  Returns:
    ``(name, start, stop)``.

  Raises:
    ValueError: for another syntax (TFDS's ``+`` and shard slices are not read here),
      an unknown split, or a boundary beyond the split.
  """
  match = _SPLIT.match(split.replace(' ', ''))
  if not match:
    raise ValueError(f"split {split!r}: expected NAME or NAME[FROM:TO] (ints or "
                     f"percents), as in 'train[:90%]'")
  name, lo, lo_pct, hi, hi_pct = match.groups()
  if name not in sizes:
    raise ValueError(f'split {split!r}: unknown split {name!r}; the files hold '
                     f'{sorted(sizes)}')
  n = sizes[name]

  def boundary(text, percent, default):
    if text in (None, ''):
      return default
    value = round(int(text) * n / 100) if percent else int(text)
    if abs(value) > n:
      raise ValueError(f'split {split!r}: boundary {text}{percent} is beyond the {n} '
                       f'examples of {name}')
    return value + n if value < 0 else value

  return name, boundary(lo, lo_pct, 0), boundary(hi, hi_pct, n)


def load(config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The splits a dataset config names, read from ``config.prepare_from_dir``.

  Args:
    config: the dataset ConfigDict (``name``, ``prepare_from_dir``, ``train_split``,
      ``eval_split``, ``test_split``).

  Returns:
    Like :func:`cnn_jax.data.load`: ``{'train', 'test'}`` plus ``'eval'`` when
    ``eval_split`` is set, each ``(uint8 NHWC images, int32 labels)``.

  Raises:
    ValueError: for a dataset without local files, no ``prepare_from_dir``, or a bad
      split string.
    FileNotFoundError: for missing files.
  """
  if not config.prepare_from_dir:
    raise ValueError(f"dataset.reader='files' reads dataset.prepare_from_dir, which is "
                     f"empty; set it to the folder of the {config.name} files")
  arrays = read_local(config.name, config.prepare_from_dir)
  sizes = {name: len(labels) for name, (_, labels) in arrays.items()}
  out = {}
  for key in ('train', 'eval', 'test'):
    split = config.get(f'{key}_split', '')
    if split:
      name, start, stop = split_range(split, sizes)
      images, labels = arrays[name]
      out[key] = (images[start:stop], labels[start:stop])
  return out
