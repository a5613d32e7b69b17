"""Augmentation and normalisation as pure jnp functions with explicit PRNG keys.

Everything here runs inside a jitted train step on batches that already live on the
device: ``augment(images, jax.random.fold_in(key, step), config)`` gives the same images
for the same (key, step), so a resumed run sees what an uninterrupted one would have.
Per-image functions (``random_crop``, ``random_flip``, ``crop_and_resize``) take one
image and one key and are vmapped by :func:`augment`.

The recipes follow the literature: CIFAR-style random crop from a zero-padded image plus
horizontal flip (He et al. 2016), Inception-style random resized crop plus flip for
ImageNet (Szegedy et al. 2015, as in torchvision), normalisation with the training
set's per-channel mean and std, and an optional resize to the input an architecture
expects (e.g. AlexNet/GoogLeNet on small images). All are off by default, which suits
MNIST-style data: :func:`augment` then only scales uint8 images to [0, 1].
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.data import catalog

# Candidate boxes tried by the random resized crop before it falls back to a centre crop
# (torchvision and the Inception preprocessing both use 10).
CROP_ATTEMPTS = 10
PADDING_MODES = ('constant', 'reflect', 'edge')


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Augmentation settings; hashable, so it can be a static argument of ``jax.jit``.

  Attributes:
    crop_padding: pad each side by this many pixels, then crop back to the input size at
      a random offset (CIFAR: 4); 0 turns it off.
    padding_mode: ``'constant'`` (zeros), ``'reflect'`` or ``'edge'``.
    flip: mirror each image left-right with probability 1/2.
    random_resized_crop: crop a box of random area fraction in ``area_range`` and aspect
      ratio in ``aspect_ratio_range`` and resize it to ``image_size`` (ImageNet-style);
      at evaluation a centre crop of ``eval_crop_fraction`` is resized instead.
    area_range: area fraction range of the random resized crop.
    aspect_ratio_range: width/height range of the random resized crop.
    image_size: resize images to ``image_size`` (square) for an architecture's expected
      input; 0 keeps the stored size.
    eval_crop_fraction: side fraction of the centre crop at evaluation for datasets
      trained with random resized crops (0.875: 224 of 256).
    normalize: subtract ``mean`` and divide by ``std`` after scaling to [0, 1].
    mean: per-channel (or one shared) mean on the [0, 1] scale.
    std: per-channel (or one shared) standard deviation.
  """
  crop_padding: int = 0
  padding_mode: str = 'constant'
  flip: bool = False
  random_resized_crop: bool = False
  area_range: tuple[float, float] = (0.08, 1.0)
  aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3)
  image_size: int = 0
  eval_crop_fraction: float = 0.875
  normalize: bool = False
  mean: tuple[float, ...] = ()
  std: tuple[float, ...] = ()

  def after_host_crop(self) -> AugmentConfig:
    """The device part of this config for images that the host already cropped.

    :func:`cnn_jax.data.stream` crops and resizes variable-size images (ImageNet) on
    the host; on the device only the flip and the normalisation remain.
    """
    return dataclasses.replace(self, crop_padding=0, random_resized_crop=False,
                               image_size=0)


def augment_config(dataset_config) -> AugmentConfig:
  """Builds an :class:`AugmentConfig` from ``dataset_config.augment``.

  With ``normalize`` on and no ``mean``/``std`` given, the dataset's published
  statistics from :mod:`cnn_jax.data.catalog` are used.
  """
  fields = {k: tuple(v) if isinstance(v, (list, tuple)) else v
            for k, v in dataset_config.augment.to_dict().items()}
  config = AugmentConfig(**fields)
  if config.normalize and not config.mean:
    spec = catalog.get(dataset_config.name)
    config = dataclasses.replace(config, mean=spec.mean, std=spec.std)
  return config


def crop_box(uniforms, height: int, width: int,
             area_range: tuple[float, float] = (0.08, 1.0),
             aspect_ratio_range: tuple[float, float] = (3 / 4, 4 / 3), xp=np):
  """An Inception-style random crop box, as a pure function of uniform draws.

  Each of the ``len(uniforms)`` candidates gets an area ``height * width * U(area_range)``
  and an aspect ratio ``exp(U(log aspect_ratio_range))``; the first one that fits inside
  the image is placed uniformly at random. If none fits, the largest centred box whose
  aspect ratio is inside the range is used (torchvision's ``RandomResizedCrop``).
  Taking the randomness as an argument lets the same code run on the host with numpy
  (``xp=np``, draws from a ``np.random.Generator``) and on the device (``xp=jnp``).

  Args:
    uniforms: ``(attempts, 4)`` draws in [0, 1): area, log aspect ratio, y, x.
    height: image height (a Python int).
    width: image width.
    area_range: area fraction range.
    aspect_ratio_range: width/height range.
    xp: ``numpy`` or ``jax.numpy``.

  Returns:
    int32 ``[y0, x0, h, w]`` with ``0 <= y0``, ``y0 + h <= height`` (same for x, w).
  """
  log_lo, log_hi = math.log(aspect_ratio_range[0]), math.log(aspect_ratio_range[1])
  area = height * width * (area_range[0] + (area_range[1] - area_range[0]) * uniforms[:, 0])
  aspect = xp.exp(log_lo + (log_hi - log_lo) * uniforms[:, 1])
  w = xp.round(xp.sqrt(area * aspect))
  h = xp.round(xp.sqrt(area / aspect))
  fits = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
  y0 = xp.floor(uniforms[:, 2] * (height - h + 1))
  x0 = xp.floor(uniforms[:, 3] * (width - w + 1))
  first = xp.argmax(fits)
  sampled = xp.stack([y0[first], x0[first], h[first], w[first]])
  # The fallback depends only on the static image size: plain Python arithmetic.
  ratio = width / height
  fh, fw = height, width
  if ratio < aspect_ratio_range[0]:
    fh = round(width / aspect_ratio_range[0])
  elif ratio > aspect_ratio_range[1]:
    fw = round(height * aspect_ratio_range[1])
  fallback = xp.asarray([(height - fh) // 2, (width - fw) // 2, fh, fw], sampled.dtype)
  return xp.where(xp.any(fits), sampled, fallback).astype(xp.int32)


def center_box(height: int, width: int, fraction: float) -> np.ndarray:
  """The centred square whose side is ``fraction`` of the shorter side: ``[y0, x0, h, w]``.

  Resizing it to ``S`` equals resizing the shorter side to ``S / fraction`` and cropping
  the centre ``S x S``, the usual ImageNet evaluation input.
  """
  side = max(1, round(min(height, width) * fraction))
  return np.array([(height - side) // 2, (width - side) // 2, side, side], np.int32)


def crop_and_resize(image, box, size: tuple[int, int]):
  """Crops ``box`` (``[y0, x0, h, w]``, may be traced) and resizes it bilinearly.

  Args:
    image: float ``(H, W, C)``.
    box: int ``[y0, x0, h, w]`` inside the image.
    size: output ``(height, width)``.

  Returns:
    float32 ``(*size, C)``; antialiased when the box is larger than the output.
  """
  box = jnp.asarray(box, jnp.float32)
  scale = jnp.array(size, jnp.float32) / box[2:]
  return jax.image.scale_and_translate(
      image.astype(jnp.float32), (*size, image.shape[-1]), spatial_dims=(0, 1),
      scale=scale, translation=-box[:2] * scale, method='linear', antialias=True)


def random_crop(image, key, padding: int, mode: str = 'constant'):
  """Pads every spatial side by ``padding`` and crops the input size at a random offset.

  Works for any number of spatial dimensions (``(W, C)``, ``(H, W, C)``).
  """
  spatial = image.ndim - 1
  padded = jnp.pad(image, [(padding, padding)] * spatial + [(0, 0)], mode=mode)
  offsets = jax.random.randint(key, (spatial,), 0, 2 * padding + 1)
  return jax.lax.dynamic_slice(padded, (*offsets, 0), image.shape)


def random_flip(image, key):
  """Mirrors the last spatial axis (left-right) with probability 1/2."""
  return jnp.where(jax.random.bernoulli(key), jnp.flip(image, axis=-2), image)


def normalize(images, mean, std):
  """``(images - mean) / std`` over the channel axis, in float32."""
  mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
  return (images.astype(jnp.float32) - mean) / std


@functools.partial(jax.jit, static_argnames=('config', 'train'))
def augment(images, key, config: AugmentConfig, *, train: bool = True):
  """Turns a batch of stored images into float32 model inputs, augmenting in training.

  Order: scale uint8 to [0, 1]; crop (random resized crop, or random crop from the
  padded image) in training, or the evaluation centre crop of a random-resized-crop
  config; resize to ``config.image_size``; flip in training; normalise.

  Args:
    images: a batch, uint8 (scaled by 1/255) or float (used as is), channels last:
      ``(N, H, W, C)`` or ``(N, W, C)``.
    key: a PRNG key for the batch (split per image); unused when ``train`` is False.
    config: the settings; static under ``jax.jit``.
    train: apply the random parts; False gives the deterministic evaluation inputs.

  Returns:
    float32 images, ``(N, image_size, image_size, C)`` when resizing, else the input
    shape.

  Raises:
    ValueError: at trace time, for settings that do not fit the input.
  """
  _check(images, config)
  if train and key is None:
    raise ValueError('augment(train=True) needs a PRNG key')
  x = images.astype(jnp.float32)
  if images.dtype == jnp.uint8:
    x = x / 255.0
  n, spatial = x.shape[0], x.shape[1:-1]
  size = (config.image_size,) * len(spatial) if config.image_size else spatial
  if train:
    crop_key, flip_key = jax.random.split(key)
    crop_keys, flip_keys = jax.random.split(crop_key, n), jax.random.split(flip_key, n)
  if config.random_resized_crop:
    if train:
      boxes = jax.vmap(lambda k: crop_box(
          jax.random.uniform(k, (CROP_ATTEMPTS, 4)), *spatial, config.area_range,
          config.aspect_ratio_range, xp=jnp))(crop_keys)
    else:
      boxes = jnp.broadcast_to(center_box(*spatial, config.eval_crop_fraction), (n, 4))
    x = jax.vmap(crop_and_resize, in_axes=(0, 0, None))(x, boxes, size)
  else:
    if train and config.crop_padding:
      x = jax.vmap(random_crop, in_axes=(0, 0, None, None))(
          x, crop_keys, config.crop_padding, config.padding_mode)
    if size != spatial:
      x = jax.image.resize(x, (n, *size, x.shape[-1]), method='linear')
  if train and config.flip:
    x = jax.vmap(random_flip)(x, flip_keys)
  if config.normalize:
    x = normalize(x, config.mean, config.std)
  return x


def _check(images, config: AugmentConfig) -> None:
  if images.ndim < 3:
    raise ValueError(f'augment expects a batch (N, *spatial, C), got shape {images.shape}')
  if config.random_resized_crop and images.ndim != 4:
    raise ValueError(f'random_resized_crop needs 2-D images (N, H, W, C), got shape '
                     f'{images.shape}')
  if config.crop_padding < 0 or config.image_size < 0:
    raise ValueError(f'crop_padding={config.crop_padding} and image_size='
                     f'{config.image_size} must be >= 0')
  if config.padding_mode not in PADDING_MODES:
    raise ValueError(f'padding_mode={config.padding_mode!r}; expected one of '
                     f'{PADDING_MODES}')
  if config.normalize:
    channels = images.shape[-1]
    if len(config.mean) not in (1, channels) or len(config.std) != len(config.mean):
      raise ValueError(f'normalize needs 1 or {channels} values of mean and std, got '
                       f'mean={config.mean}, std={config.std}')
    if min(config.std) <= 0:
      raise ValueError(f'std must be positive, got {config.std}')
