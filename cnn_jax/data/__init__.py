"""Datasets through tensorflow-datasets, offline-first, selected by the ``dataset`` config.

The dataset config (``config.dataset``) has these fields:

* ``name``: a dataset of :data:`catalog.DATASETS`: ``mnist``, ``fashion_mnist``,
  ``cifar10``, ``cifar100``, ``mnist1d``, ``imagenette``, ``imagenet2012``.
* ``data_dir``: the TFDS data folder; empty means TFDS's default (``TFDS_DATA_DIR``,
  else ``~/tensorflow_datasets``).
* ``prepare_from_dir``: local source files to prepare the dataset from when it is
  missing (e.g. the Debian package's Fashion-MNIST folder); empty for none.
* ``download``: let TFDS download a missing dataset (off: many machines cannot).
* ``train_split``, ``eval_split``, ``test_split``: TFDS split strings, slices included
  (``'train[:90%]'``, ``'train[90%:]'``); an empty ``eval_split`` means no validation
  split.
* ``augment``: the fields of :class:`AugmentConfig`.
* ``stream``: read through :func:`stream` even when the dataset fits in memory (the
  training loop streams the catalog's large datasets regardless).
* ``read_threads``: host threads of :func:`stream`, each reading one batch ahead.
* ``reader`` (``'tfds'``): ``'files'`` makes :func:`load` read the
  splits straight from the IDX or CIFAR files in ``prepare_from_dir``, without
  TensorFlow or TFDS (:mod:`cnn_jax.data.files`; for machines that lack them).
* ``permute_seed`` (-1): ``>= 0`` makes :func:`load` apply one fixed random
  permutation of the input positions, drawn from this seed, to every split
  (:func:`permute_positions`): the locality controls of the studies.

Prepare a dataset from local files with ``python -m cnn_jax.data prepare NAME
--from-dir DIR [--data-dir DIR]`` (see ``python -m cnn_jax.data prepare --help``).
"""

from __future__ import annotations

import numpy as np

from cnn_jax.data import catalog, files, tfds_data
from cnn_jax.data.augmentation import (AugmentConfig, augment, augment_config, crop_and_resize,
                                  crop_box, normalize, random_crop, random_flip)
from cnn_jax.data.pipeline import (batch_indices, epoch_permutation, prefetch_to_device,
                                   stream, to_global_array)
from cnn_jax.data.tfds_data import (NotPreparedError, ensure_prepared,
                                    hide_gpus_from_tensorflow, prepare, sources)

__all__ = [
    'AugmentConfig', 'NotPreparedError', 'augment', 'augment_config', 'batch_indices',
    'catalog', 'files', 'crop_and_resize', 'crop_box', 'ensure_prepared', 'epoch_permutation',
    'hide_gpus_from_tensorflow', 'load', 'normalize', 'prefetch_to_device', 'prepare',
    'permute_positions', 'random_crop', 'random_flip', 'sources', 'stream',
    'to_global_array',
]


def load(config, may_prepare: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Loads the splits named by a dataset config into memory, through TFDS.

  For small datasets, which then live on the device for the whole run (see
  :func:`batch_indices`). Reading needs no network: a missing dataset is prepared first
  only where ``ensure_prepared`` allows it (generated, ``prepare_from_dir``, or
  ``download``). With ``config.reader = 'files'`` the splits come from the local files
  in ``prepare_from_dir`` instead, without TFDS (:func:`cnn_jax.data.files.load`).

  Args:
    config: the dataset ConfigDict (fields in this module's docstring).
    may_prepare: False never prepares a missing dataset (read-only tools).

  Returns:
    ``{'train': (inputs, labels), 'test': (inputs, labels)}``, plus ``'eval'`` when
    ``config.eval_split`` is set: uint8 NHWC images (float32 NWC signals for mnist1d)
    and int32 labels, in the prepared dataset's stored order.

  Raises:
    ValueError: for an unsupported or streamed (large) dataset, or an unknown reader.
    NotPreparedError: when the dataset is missing and may not be prepared; the
      message names the command that prepares it.
  """
  if catalog.get(config.name).stream:
    raise ValueError(f'{config.name} is too large to load into memory; read it with '
                     f'cnn_jax.data.stream(...)')
  reader = config.reader
  if reader == 'files':  # local files are read, never prepared
    return permute_positions(files.load(config), config.permute_seed)
  if reader != 'tfds':
    raise ValueError(f"dataset.reader={reader!r}; expected 'tfds' or 'files'")
  builder = ensure_prepared(config, may_prepare)
  splits = {'train': config.train_split, 'eval': config.eval_split,
            'test': config.test_split}
  return permute_positions({key: tfds_data.read_split(builder, split)
                            for key, split in splits.items() if split},
                           config.permute_seed)


def permute_positions(splits: dict[str, tuple[np.ndarray, np.ndarray]], seed: int
                      ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Moves every input position to a fixed random place, the same in every split.

  The locality control of Zhang et al. 2017 ("shuffled pixels") and Greydanus 2020
  (shuffled MNIST-1D): each example keeps its values and its label, only the spatial
  arrangement is scrambled, by one permutation shared by all examples and splits. A
  dense network that flattens its input sees the same problem up to the order of its
  first layer's weights; a convolution loses the neighbourhoods it relies on. The
  channels of a position move together.

  Args:
    splits: ``{split: (inputs, labels)}`` as :func:`load` returns them, inputs
      ``(N, *spatial, C)``.
    seed: the permutation's seed; negative returns ``splits`` unchanged.

  Returns:
    The splits with permuted inputs (new arrays) and the same labels.
  """
  if seed < 0:
    return splits
  permutation = None
  out = {}
  for key, (inputs, labels) in splits.items():
    n, channels = inputs.shape[0], inputs.shape[-1]
    positions = inputs.reshape(n, -1, channels)
    if permutation is None:
      permutation = np.random.default_rng(seed).permutation(positions.shape[1])
    out[key] = (positions[:, permutation].reshape(inputs.shape), labels)
  return out
