"""What the data layer knows about each supported dataset, beyond TFDS's own metadata.

TFDS defines each dataset's features, versions and splits; this table adds what the
project needs on top: where ``prepare --from-dir`` finds local files, the published split
sizes that prepared data is checked against, the per-channel statistics used for
normalisation, and whether a dataset is small enough to hold in memory.
"""

from __future__ import annotations

import dataclasses

# ImageNet statistics on the [0, 1] scale (torchvision's reference values); Imagenette is
# a 10-class subset of ImageNet and uses the same.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Facts about one TFDS dataset that this package relies on.

  Attributes:
    name: the TFDS name.
    local_source: how ``prepare --from-dir`` reads local files: ``'idx'`` (MNIST-format
      IDX files), ``'cifar'`` (the CIFAR python or binary archives), ``'generated'``
      (built by code, no files at all), ``'manual'`` (TFDS's own manual-download route,
      the folder is TFDS's ``manual_dir``) or ``None`` (download only).
    split_sizes: the published number of examples per split; local files must match.
    mean: per-channel mean of the training inputs on the [0, 1] scale.
    std: per-channel standard deviation (over all pixels, not averaged per image).
    stream: True for datasets too large to hold in memory: read them with
      :func:`cnn_jax.data.stream`, not :func:`cnn_jax.data.load`.
    example_shape: one stored example's shape, channels last; None for the spatial
      sizes of datasets whose images vary in size.
  """
  name: str
  local_source: str | None
  split_sizes: dict[str, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  stream: bool = False
  example_shape: tuple[int | None, ...] = (None, None, 3)


DATASETS = {spec.name: spec for spec in (
    DatasetSpec('mnist', 'idx', {'train': 60000, 'test': 10000}, (0.1307,), (0.3081,),
                example_shape=(28, 28, 1)),
    DatasetSpec('fashion_mnist', 'idx', {'train': 60000, 'test': 10000}, (0.2860,),
                (0.3530,), example_shape=(28, 28, 1)),
    DatasetSpec('cifar10', 'cifar', {'train': 50000, 'test': 10000},
                (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                example_shape=(32, 32, 3)),
    DatasetSpec('cifar100', 'cifar', {'train': 50000, 'test': 10000},
                (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                example_shape=(32, 32, 3)),
    # The mnist1d package standardises the whole dataset to mean 0 and std 1.
    DatasetSpec('mnist1d', 'generated', {'train': 4000, 'test': 1000}, (0.0,), (1.0,),
                example_shape=(40, 1)),
    DatasetSpec('imagenette', None, {'train': 9469, 'validation': 3925}, _IMAGENET_MEAN,
                _IMAGENET_STD, stream=True),
    DatasetSpec('imagenet2012', 'manual', {'train': 1281167, 'validation': 50000},
                _IMAGENET_MEAN, _IMAGENET_STD, stream=True),
)}


def get(name: str) -> DatasetSpec:
  """Returns the spec of a supported dataset.

  Raises:
    ValueError: for a name this package does not support, listing the supported ones.
  """
  if name not in DATASETS:
    raise ValueError(f'dataset.name={name!r} is not supported; supported: '
                     f'{sorted(DATASETS)}')
  return DATASETS[name]


def model_input_shape(dataset_config) -> tuple[int, ...] | None:
  """One model input's shape for a dataset config, after any resize; None if unknown.

  Args:
    dataset_config: the ``config.dataset`` ConfigDict (``name``, ``augment.image_size``).

  Returns:
    The shape without the batch axis, e.g. ``(28, 28, 1)`` or ``(224, 224, 3)``; None
    for variable-size images that the config does not resize.
  """
  shape = get(dataset_config.name).example_shape
  size = dataset_config.get('augment', {}).get('image_size', 0)
  if size:
    shape = (size,) * (len(shape) - 1) + shape[-1:]
  return None if None in shape else shape
