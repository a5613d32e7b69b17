"""Stride vs pooling study, the simple CNN's base run (``cnn_jax.studies.stride_pool``).

  python -m experiments.study --study stride_pool

The lesson model (``fashion_mnist_lesson.py``: 3x3 SAME convs of 16 and 32 channels,
2x2 max pooling, 28 -> 14 -> 7, its recipe) for ``EPOCHS`` epochs on the full training
set. The study builds its other downsampling variants from this config (average
pooling, stride-2 convolutions, stride-2 convolutions widened to the FLOPs of max
pooling, stride 2 on top of max pooling); ``study_stride_pool_lenet5.py`` is LeNet-5's
base run with the same epochs.
"""

import ml_collections

from experiments.configs import fashion_mnist_lesson

EPOCHS = 3  # both models; see the study's docstring for what the whole study costs


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = fashion_mnist_lesson.get_config()
  config.num_epochs = EPOCHS
  return config
