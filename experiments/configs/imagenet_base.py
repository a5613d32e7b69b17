"""Shared ImageNet (ILSVRC-2012) settings for the ImageNet architecture configs.

224x224 random-resized crops with horizontal flips for training, a centre crop for
evaluation, per-channel normalisation; the 50,000 validation images serve as the test
set (the test labels were never published). TFDS needs the manually downloaded
archives for ``imagenet2012``.
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the ImageNet settings; the architecture configs set ``model`` and ``optimizer``."""
  config = default.get_config()
  config.dataset.name = 'imagenet2012'
  config.dataset.prepare_from_dir = ''
  config.dataset.test_split = 'validation'
  config.dataset.augment.random_resized_crop = True
  config.dataset.augment.image_size = 224
  config.dataset.augment.flip = True
  config.dataset.augment.normalize = True

  config.optimizer.name = 'sgd'
  config.optimizer.momentum = 0.9
  config.optimizer.schedule = 'piecewise'
  config.optimizer.boundaries = (1 / 3, 2 / 3)  # /10 every 30 of 90 epochs
  config.optimizer.decay_factor = 0.1

  config.batch_size = 256
  config.eval_batch_size = 250
  config.num_epochs = 90
  return config
