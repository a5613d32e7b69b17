"""Batch order and streaming: deterministic, resumable, sharded across hosts.

Two pipelines, chosen by the dataset's size (``catalog.DatasetSpec.stream``):

* Small datasets (MNIST-, CIFAR-size) are loaded once with :func:`cnn_jax.data.load`,
  put on the device, and batched there. The train loop computes each epoch's order once,
  ``perm = epoch_permutation(data_key, epoch, n)`` with the run's data key (split from
  its seed); step ``s`` of the run takes ``perm[i * batch_size:(i + 1) * batch_size]``
  of epoch ``s // steps_per_epoch``, with ``i = s % steps_per_epoch``, gathered from the
  images inside the jitted step (the last ``n % batch_size`` examples of each epoch's
  order are left out). So there is no per-step host-to-device copy, and resuming at
  step ``s`` gives the batches an uninterrupted run would have seen;
  :func:`batch_indices` is the same slice as a pure function of (key, step). On several
  hosts each process holds the whole (small) dataset replicated,
  ``to_global_array(x, NamedSharding(mesh, P()))``, and the jitted gather produces the
  batch with whatever sharding the step asks for.
* Large datasets (ImageNet) stream with :func:`stream`: TFDS ``data_source`` (random
  access into array_record files) and grain, which reads and decodes in threads. Global
  position ``p`` of the stream is example ``shuffle_e(p mod n)`` of epoch
  ``e = p // n`` (grain's index shuffle, reseeded per epoch), global batch ``s`` holds
  positions ``[s * B, (s + 1) * B)``, and process ``i`` of ``P`` reads positions
  ``i, i + P, ...`` of it, so the processes read disjoint shards whose union is the
  global batch. :func:`to_global_array` assembles the per-process batches into one
  globally sharded ``jax.Array``; :func:`prefetch_to_device` keeps a few in flight.
"""

from __future__ import annotations

import collections
import functools
import itertools
from typing import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.data import augmentation
from cnn_jax.data import tfds_data


def _as_key(key_or_seed):
  if isinstance(key_or_seed, (int, np.integer)) or (
      jnp.ndim(key_or_seed) == 0 and jnp.issubdtype(jnp.result_type(key_or_seed),
                                                    jnp.integer)):
    return jax.random.key(key_or_seed)
  return key_or_seed


def epoch_permutation(key_or_seed, epoch, n: int):
  """The example order of one epoch: a permutation of ``range(n)`` from (key, epoch).

  Args:
    key_or_seed: a PRNG key, or an integer seed (``jax.random.key(seed)``).
    epoch: epoch number (may be traced).
    n: number of examples (static).

  Returns:
    int32 ``(n,)``: ``jax.random.permutation(jax.random.fold_in(key, epoch), n)``.
  """
  return jax.random.permutation(jax.random.fold_in(_as_key(key_or_seed), epoch), n)


def batch_indices(key_or_seed, step, n: int, batch_size: int):
  """The example indices of global step ``step``; a pure function of (key, step).

  Epochs have ``n // batch_size`` steps; the last ``n % batch_size`` examples of each
  epoch's permutation are dropped, a different few each epoch. Jittable with a traced
  ``step``; a loop that wants one permutation per epoch can instead slice
  :func:`epoch_permutation` itself, with the same result.

  Args:
    key_or_seed: a PRNG key or an integer seed.
    step: global step, counted from 0 across epochs (may be traced).
    n: number of examples (static).
    batch_size: examples per step (static).

  Returns:
    int32 ``(batch_size,)`` indices into the dataset.

  Raises:
    ValueError: if ``batch_size`` exceeds ``n``.
  """
  steps_per_epoch = n // batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'batch_size={batch_size} is larger than the dataset ({n} examples)')
  perm = epoch_permutation(key_or_seed, step // steps_per_epoch, n)
  return jax.lax.dynamic_slice(perm, ((step % steps_per_epoch) * batch_size,),
                               (batch_size,))


def stream(dataset_config, split: str, *, batch_size: int, seed: int, start_step: int = 0,
           train: bool = True, process_index: int | None = None,
           process_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Host batches of one split, deterministic and resumable, for this process.

  Training streams repeat forever, reshuffled every epoch; a batch may span two epochs.
  Evaluation streams read the split once in stored order; the last batch is padded and
  ``'mask'`` marks the real examples, so every process yields the same number of
  batches. Images whose size varies (ImageNet) are cropped and resized on the host to
  ``augment.image_size``: a random resized crop when training with
  ``augment.random_resized_crop``, else the centre crop of ``eval_crop_fraction``; use
  ``augment_config(...).after_host_crop()`` for the device part. Fixed-size images are
  left for :func:`cnn_jax.data.augment` on the device.

  Args:
    dataset_config: dataset ConfigDict (``name``, ``data_dir``, ``download``,
      ``prepare_from_dir``, ``augment``, ``read_threads``).
    split: a TFDS split, slices included.
    batch_size: the global batch size, divisible by ``process_count``.
    seed: the data seed (shuffle order and host-side crops).
    start_step: index of the first batch to yield: resuming at step ``S`` gives the
      batches an uninterrupted stream yields from ``S`` on.
    train: shuffle, repeat and augment; False for evaluation.
    process_index: this process (default ``jax.process_index()``).
    process_count: number of processes (default ``jax.process_count()``).

  Returns:
    An iterator of ``{'image', 'label'}`` (plus ``'mask'`` when not training) numpy
    batches with ``batch_size // process_count`` rows: this process's share of each
    global batch.

  Raises:
    ValueError: if ``batch_size`` is not divisible by ``process_count``, or images vary
      in size and ``augment.image_size`` is 0.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if batch_size % process_count:
    raise ValueError(f'batch_size={batch_size} is not divisible by the {process_count} '
                     f'processes')
  builder = tfds_data.ensure_prepared(dataset_config)
  source = tfds_data.data_source(builder, split)
  n = len(source)
  input_key, label_key = builder.info.supervised_keys
  feature = builder.info.features[input_key]
  aug = augmentation.augment_config(dataset_config)
  crop = None
  shape = tuple(feature.shape)
  if None in shape:
    if not aug.image_size:
      raise ValueError(f'{dataset_config.name} images vary in size: set '
                       f'dataset.augment.image_size to crop them on the host')
    crop = functools.partial(_host_crop, config=aug, train=train)
    shape = (aug.image_size, aug.image_size, shape[-1])
  example = functools.partial(_example, source=source, n=n, keys=(input_key, label_key),
                              crop=crop, pad=np.zeros(shape, feature.np_dtype),
                              with_mask=not train)
  import grain  # pylint: disable=g-import-not-at-top  (streaming only; absent from GPU images)
  if train:
    positions = grain.MapDataset.range(n).seed(seed).shuffle().repeat()
  else:
    positions = grain.MapDataset.range(-(-n // batch_size) * batch_size).seed(seed)
  # Map before sharding, so an example's host-side crop depends on its global position,
  # not on how many processes read the stream.
  batches = (positions.random_map(example)[process_index::process_count]
             .batch(batch_size // process_count)[start_step:])
  # Each thread reads whole batches; a buffer of one batch per thread keeps them all busy.
  options = grain.ReadOptions(num_threads=dataset_config.read_threads,
                              prefetch_buffer_size=dataset_config.read_threads)
  return iter(batches.to_iter_dataset(options))


def _example(index, rng, *, source, n, keys, crop, pad, with_mask):
  if index >= n:  # evaluation padding
    return {'image': pad, 'label': np.int32(0), 'mask': False}
  record = source[index]
  image = record[keys[0]]
  out = {'image': crop(image, rng) if crop else image, 'label': np.int32(record[keys[1]])}
  if with_mask:
    out['mask'] = True
  return out


def _host_crop(image: np.ndarray, rng: np.random.Generator, *, config, train: bool):
  """Crops a variable-size image on the host and resizes it to ``config.image_size``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  height, width = image.shape[:2]
  if train and config.random_resized_crop:
    box = augmentation.crop_box(rng.random((augmentation.CROP_ATTEMPTS, 4)), height, width,
                               config.area_range, config.aspect_ratio_range)
  else:
    box = augmentation.center_box(height, width, config.eval_crop_fraction)
  y0, x0, h, w = (int(v) for v in box)
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  out = np.asarray(pil.resize((config.image_size,) * 2, Image.BILINEAR,
                              box=(x0, y0, x0 + w, y0 + h)))
  return out.reshape(config.image_size, config.image_size, image.shape[-1])


def to_global_array(tree, sharding: jax.sharding.Sharding):
  """Assembles per-process host arrays into globally sharded ``jax.Array``s.

  Args:
    tree: a pytree of numpy arrays: this process's rows of each global array (for a
      sharding over the batch axis), or the whole array (for a replicated sharding).
    sharding: e.g. ``NamedSharding(mesh, P('data'))``; the global batch is the
      processes' rows in process order, as ``jax.make_array_from_process_local_data``
      lays them out.

  Returns:
    The same pytree of global ``jax.Array``s.
  """
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def prefetch_to_device(batches: Iterable, sharding: jax.sharding.Sharding,
                       size: int = 2) -> Iterator:
  """Yields :func:`to_global_array` of each batch, with ``size`` transfers in flight.

  Transfers are asynchronous, so while the step runs on batch ``s`` the next ``size``
  batches are already being copied to the devices.
  """
  queue = collections.deque()
  batches = iter(batches)

  def enqueue(k):
    for batch in itertools.islice(batches, k):
      queue.append(to_global_array(batch, sharding))

  enqueue(size)
  while queue:
    yield queue.popleft()
    enqueue(1)
