"""Datasets as arrays: offline-first loading selected by the ``dataset`` config."""

from __future__ import annotations

import numpy as np

from cnn_jax.data import idx

# MNIST-format datasets readable from a directory of IDX files.
IDX_DATASETS = {'fashion_mnist': idx.DEBIAN_FASHION_MNIST_DIR, 'mnist': None}


def load(config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Loads the train and test splits named by a dataset config.

  Args:
    config: a ConfigDict with ``name`` (``'fashion_mnist'`` or ``'mnist'``) and
      ``data_dir`` (folder of IDX files; empty means the Debian package's folder for
      Fashion-MNIST).

  Returns:
    ``{'train': (images, labels), 'test': (images, labels)}`` with uint8 NHWC images
    and int32 labels.

  Raises:
    ValueError: for a dataset this loader does not know.
    FileNotFoundError, idx.IdxFormatError: for missing or corrupt files.
  """
  if config.name not in IDX_DATASETS:
    raise ValueError(f'dataset.name={config.name!r} is not supported by this loader; '
                     f'supported: {sorted(IDX_DATASETS)}')
  directory = config.get('data_dir') or IDX_DATASETS[config.name]
  if not directory:
    raise ValueError(f'dataset.data_dir must name a folder of IDX files for '
                     f'{config.name!r}')
  return {split: idx.load_split(directory, split) for split in ('train', 'test')}
