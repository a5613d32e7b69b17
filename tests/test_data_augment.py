"""On-device augmentation against numpy slicing, padding and arithmetic."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.data import augmentation as aug
from experiments.configs import fashion_mnist_cnn
from references import crop_and_resize_ref

KEY = jax.random.key(0)


def images_u8(n=16, h=8, w=8, c=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def test_default_config_only_scales_to_unit_range():
  x = images_u8()
  out = aug.augment(x, KEY, aug.AugmentConfig())
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, x / 255.0, rtol=1e-6)
  floats = np.random.default_rng(1).normal(size=(4, 40, 1)).astype(np.float32)
  np.testing.assert_array_equal(aug.augment(floats, KEY, aug.AugmentConfig()), floats)


@pytest.mark.parametrize('mode', ['constant', 'reflect'])
def test_random_crop_is_a_window_of_the_padded_image(mode):
  x, p = images_u8(), 2
  config = aug.AugmentConfig(crop_padding=p, padding_mode=mode)
  out = np.asarray(aug.augment(x, KEY, config)) * 255.0
  padded = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)], mode=mode).astype(np.float64)
  offsets = set()
  for i in range(len(x)):
    matches = [(dy, dx) for dy, dx in itertools.product(range(2 * p + 1), repeat=2)
               if np.allclose(out[i], padded[i, dy:dy + 8, dx:dx + 8], atol=1e-3)]
    assert matches, f'image {i} is no window of its padded input'
    offsets.add(matches[0])
  assert len(offsets) > 3  # offsets vary per image


def test_flip_gives_the_image_or_its_mirror_both_occurring():
  x = images_u8(n=32)
  out = np.asarray(aug.augment(x, KEY, aug.AugmentConfig(flip=True))) * 255.0
  flipped = [np.allclose(o, xi[:, ::-1], atol=1e-3) for o, xi in zip(out, x)]
  kept = [np.allclose(o, xi, atol=1e-3) for o, xi in zip(out, x)]
  assert all(f or k for f, k in zip(flipped, kept))
  assert 0 < sum(flipped) < len(x)


def test_one_dimensional_signals_crop_and_flip():
  x = np.arange(2 * 10 * 1, dtype=np.float32).reshape(2, 10, 1)
  out = np.asarray(aug.augment(x, KEY, aug.AugmentConfig(crop_padding=3, flip=True)))
  assert out.shape == x.shape
  for o, xi in zip(out, x):
    padded = np.pad(xi, [(3, 3), (0, 0)])
    windows = [padded[d:d + 10] for d in range(7)]
    assert any(np.array_equal(o, w) or np.array_equal(o, w[::-1]) for w in windows)


def test_augmentation_keeps_labels_aligned():
  # Image i is constant at a value that encodes its label; crops (zero padding) and flips
  # keep that value as the image's maximum, so the label is still readable in place.
  labels = np.arange(16) % 10
  x = np.broadcast_to((labels * 20 + 10).astype(np.uint8)[:, None, None, None],
                      (16, 8, 8, 3))
  config = aug.AugmentConfig(crop_padding=4, flip=True)
  out = np.asarray(aug.augment(x, KEY, config))
  assert out.shape == x.shape
  np.testing.assert_allclose(out.max(axis=(1, 2, 3)) * 255.0, labels * 20 + 10, atol=1e-3)


def test_normalize_matches_numpy():
  x = images_u8()
  mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
  out = aug.augment(x, KEY, aug.AugmentConfig(normalize=True, mean=mean, std=std))
  np.testing.assert_allclose(out, (x / 255.0 - np.array(mean)) / np.array(std), atol=1e-5)


def test_resize_to_an_architectures_input():
  x = np.full((2, 28, 28, 1), 200, np.uint8)
  out = aug.augment(x, None, aug.AugmentConfig(image_size=227), train=False)
  assert out.shape == (2, 227, 227, 1)
  np.testing.assert_allclose(out, 200 / 255.0, rtol=1e-6)  # a constant stays constant


def test_crop_box_stays_inside_with_area_and_aspect_in_range():
  rng = np.random.default_rng(0)
  for _ in range(200):
    height, width = rng.integers(8, 300, 2)
    y0, x0, h, w = aug.crop_box(rng.random((aug.CROP_ATTEMPTS, 4)), height, width)
    assert 0 <= y0 and y0 + h <= height and 0 <= x0 and x0 + w <= width and h >= 1 <= w
  # Big images: rounding is negligible, so the sampled box obeys the ranges closely.
  for _ in range(200):
    y0, x0, h, w = aug.crop_box(rng.random((aug.CROP_ATTEMPTS, 4)), 1000, 1000)
    assert 0.08 - 2e-3 <= h * w / 1e6 <= 1.0 and 3 / 4 - 1e-2 <= w / h <= 4 / 3 + 1e-2


def test_crop_box_falls_back_to_the_centre_crop():
  # 10 x 100 with areas of 90-100%: every candidate is taller than the image. The
  # fallback (torchvision) is the full height with the widest allowed ratio, centred.
  uniforms = np.random.default_rng(0).random((aug.CROP_ATTEMPTS, 4))
  box = aug.crop_box(uniforms, 10, 100, area_range=(0.9, 1.0))
  np.testing.assert_array_equal(box, [0, 43, 10, 13])


def test_crop_box_host_and_device_agree():
  uniforms = np.random.default_rng(1).random((aug.CROP_ATTEMPTS, 4)).astype(np.float32)
  np.testing.assert_array_equal(aug.crop_box(uniforms, 37, 53),
                                aug.crop_box(jnp.asarray(uniforms), 37, 53, xp=jnp))


def test_crop_and_resize_of_an_integer_box_at_scale_one_is_slicing():
  image = np.random.default_rng(2).random((12, 14, 3)).astype(np.float32)
  out = aug.crop_and_resize(image, jnp.array([2, 3, 8, 9]), (8, 9))
  np.testing.assert_allclose(out, image[2:10, 3:12], atol=1e-6)


# (image height, width), box [y0, x0, h, w], output size: enlarging, shrinking (where
# antialiasing widens the kernel), mixed, and boxes away from the origin, so a
# translation that ignored the scale would move the sampled window.
_RESIZE_CASES = [((13, 15), (2, 3, 5, 4), (9, 11)),
                 ((13, 15), (1, 2, 10, 12), (4, 5)),
                 ((13, 15), (4, 1, 6, 13), (10, 6)),
                 ((16, 16), (0, 0, 16, 16), (7, 7))]


@pytest.mark.parametrize('shape,box,size', _RESIZE_CASES)
def test_crop_and_resize_matches_an_independent_bilinear_reference(shape, box, size):
  image = np.random.default_rng(sum(box)).random((*shape, 2)).astype(np.float32)
  out = aug.crop_and_resize(image, jnp.array(box), size)
  np.testing.assert_allclose(out, crop_and_resize_ref(image, box, size), atol=1e-5)


@pytest.mark.parametrize('shape,box,size', _RESIZE_CASES)
def test_bilinear_reference_agrees_with_pillow(shape, box, size):
  """The numpy reference itself against PIL's antialiased BILINEAR resize of a box."""
  pil = pytest.importorskip('PIL.Image')
  image = np.random.default_rng(sum(box)).random(shape).astype(np.float32)
  y0, x0, h, w = box
  want = np.asarray(pil.fromarray(image, mode='F').resize(
      size[::-1], pil.Resampling.BILINEAR, box=(x0, y0, x0 + w, y0 + h)))
  np.testing.assert_allclose(crop_and_resize_ref(image[..., None], box, size)[..., 0], want,
                             atol=1e-5)


@pytest.mark.parametrize('image_size', [5, 13])
def test_resize_to_image_size_matches_the_bilinear_reference(image_size):
  x = images_u8(n=2, h=9, w=9)
  out = aug.augment(x, None, aug.AugmentConfig(image_size=image_size), train=False)
  for image, got in zip(x / 255.0, out):
    want = crop_and_resize_ref(image, (0, 0, 9, 9), (image_size, image_size))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_eval_centre_crop_is_resized_from_the_right_window():
  # 10 x 10, fraction 0.6: the centre box [2, 2, 6, 6] enlarged to 8 x 8 (scale 4/3).
  x = images_u8(n=2, h=10, w=10)
  config = aug.AugmentConfig(random_resized_crop=True, image_size=8, eval_crop_fraction=0.6)
  out = aug.augment(x, None, config, train=False)
  for image, got in zip(x / 255.0, out):
    np.testing.assert_allclose(got, crop_and_resize_ref(image, (2, 2, 6, 6), (8, 8)),
                               atol=1e-5)


def test_random_resized_crop_shapes_determinism_and_eval_centre_crop():
  x = images_u8(n=4, h=10, w=10)
  config = aug.AugmentConfig(random_resized_crop=True, image_size=8, flip=True)
  a = aug.augment(x, KEY, config)
  assert a.shape == (4, 8, 8, 3) and 0 <= float(a.min()) and float(a.max()) <= 1
  np.testing.assert_array_equal(a, aug.augment(x, KEY, config))
  assert not np.array_equal(a, aug.augment(x, jax.random.key(1), config))
  # Evaluation: the centre 8 x 8 of a 10 x 10 image (fraction 0.8), at scale one.
  evaluation = aug.augment(x, None, dataclasses.replace(config, eval_crop_fraction=0.8),
                           train=False)
  np.testing.assert_allclose(evaluation, x[:, 1:9, 1:9] / 255.0, atol=1e-6)


def test_jit_and_vmap():
  x = images_u8(n=4)
  config = aug.AugmentConfig(crop_padding=2, flip=True, normalize=True, mean=(0.5,),
                             std=(0.25,))
  jitted = jax.jit(aug.augment, static_argnames=('config', 'train'))
  np.testing.assert_allclose(jitted(x, KEY, config), aug.augment(x, KEY, config),
                             atol=1e-6)
  keys = jax.random.split(KEY, 3)
  stacked = jax.vmap(aug.augment, in_axes=(None, 0, None))(x, keys, config)
  np.testing.assert_allclose(stacked[1], aug.augment(x, keys[1], config), atol=1e-6)


def test_step_keys_make_a_resumed_run_reproduce():
  x = images_u8(n=4)
  config = aug.AugmentConfig(crop_padding=2, flip=True)
  step_key = lambda step: jax.random.fold_in(KEY, step)
  # An uninterrupted run: steps 0..8 in one scanned program. A run resumed at step 7 is
  # a new process that traces augment afresh and computes that step alone; its images
  # must be the ones the full run saw (randomness from anywhere but the key would not).
  _, full_run = jax.lax.scan(lambda c, step: (c, aug.augment(x, step_key(step), config)),
                             None, jnp.arange(9))
  aug.augment.clear_cache()
  np.testing.assert_array_equal(full_run[7], aug.augment(x, step_key(7), config))
  assert not np.array_equal(aug.augment(x, step_key(7), config),
                            aug.augment(x, step_key(8), config))


@pytest.mark.parametrize('shape, config, match', [
    ((2, 8, 1), aug.AugmentConfig(random_resized_crop=True), 'needs 2-D images'),
    ((2, 8, 8, 3), aug.AugmentConfig(normalize=True, mean=(0.1, 0.2), std=(1.0, 1.0)),
     'needs 1 or 3 values'),
    ((2, 8, 8, 3), aug.AugmentConfig(padding_mode='wrap'), 'padding_mode'),
    ((8, 8), aug.AugmentConfig(), 'expects a batch'),
])
def test_bad_settings_raise(shape, config, match):
  with pytest.raises(ValueError, match=match):
    aug.augment(np.zeros(shape, np.uint8), KEY, config)


def test_config_from_the_dataset_block():
  dataset = fashion_mnist_cnn.get_config().dataset
  assert aug.augment_config(dataset) == aug.AugmentConfig()  # everything off by default
  dataset.name = 'cifar10'
  dataset.augment.update(crop_padding=4, flip=True, normalize=True)
  config = aug.augment_config(dataset)
  assert config.mean == (0.4914, 0.4822, 0.4465) and config.crop_padding == 4
  host_done = dataclasses.replace(config, random_resized_crop=True, image_size=224)
  assert host_done.after_host_crop() == dataclasses.replace(config, crop_padding=0)
