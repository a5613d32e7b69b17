"""Stride vs pooling study, the simple CNN's base run (``cnn_jax.studies.stride_pool``).

  python -m experiments.study --study stride_pool

The lesson model (``fashion_mnist_lesson.py``: 3x3 SAME convs of 16 and 32 channels,
2x2 max pooling, 28 -> 14 -> 7, its recipe) for ``EPOCHS`` epochs on the full training
set. The study builds its other downsampling variants from this config (average
pooling, stride-2 convolutions, stride-2 convolutions widened to the FLOPs of max
pooling, stride 2 on top of max pooling); ``study_stride_pool_lenet5.py`` is LeNet-5's
base run with the same epochs.

Cost: estimated from the lesson model's ~55 s per seed for 4 epochs on the 2 cores
(about 14 s per epoch and seed): the three simple-CNN runs near its FLOPs take about
3 x 80 s at 2 epochs and 3 seeds, the cheaper stride-2 runs and LeNet-5 (a third of
its FLOPs) a few minutes more with compilation, about 10 minutes in all on a quiet
machine. The results page states the time the committed run took.
"""

import ml_collections

from experiments.configs import fashion_mnist_lesson

EPOCHS = 2  # both models: 9 runs x 3 seeds fit ~10 minutes (below)


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = fashion_mnist_lesson.get_config()
  config.num_epochs = EPOCHS
  return config
