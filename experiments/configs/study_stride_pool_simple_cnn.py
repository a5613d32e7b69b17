"""Stride vs pooling study, the simple CNN's base run (``cnn_jax.studies.stride_pool``).

  python -m experiments.study --study stride_pool

The lesson model (``fashion_mnist_lesson.py``: 3x3 SAME convs of 16 and 32 channels,
2x2 max pooling, 28 -> 14 -> 7, its recipe) for ``EPOCHS`` epochs on the full training
set. The study builds its other downsampling variants from this config (average
pooling, stride-2 convolutions, stride-2 convolutions widened to the FLOPs of max
pooling, stride 2 on top of max pooling); ``study_stride_pool_lenet5.py`` is LeNet-5's
base run with the same epochs.

Cost, measured: the 9 runs of 3 seeds at 2 epochs trained in 5 min 46 s on the 2
cores (load average about 2; 6 min 7 s with start-up): the three simple-CNN runs near
its FLOPs 57-75 s each, the others 17-33 s. The study's default
of 5 seeds (vmapped, so about 5/3 the time) needs about 10 minutes; the results page
states what the committed run took.
"""

import ml_collections

from experiments.configs import fashion_mnist_lesson

EPOCHS = 2  # both models; the cost is in the docstring


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = fashion_mnist_lesson.get_config()
  config.num_epochs = EPOCHS
  return config
