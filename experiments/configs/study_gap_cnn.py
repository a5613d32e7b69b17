"""The lesson's CNN with a global average pooling head (the shifted-inputs study).

:mod:`experiments.configs.fashion_mnist_lesson` (two 3x3 conv -> ReLU -> 2x2 max pool
-> dropout blocks of 16 and 32 channels, the 128-unit dense layer, the output layer,
the one-minute recipe) with one change: the dense layers read each channel's mean over
the 7x7 positions (``model.head = 'global_avg'``) instead of the flattened 7x7x32 maps.
Where a feature lies then no longer reaches the classifier, and the dense layer has 32
inputs instead of 1,568 (10,314 parameters in all instead of 206,922).

Measured once here (seed 0, 2 CPU cores): 81.42% test accuracy after the 4 epochs, in
38 s; the global average keeps 32 numbers of the 1,568 the dense head reads, and the
lesson's CNN reaches about 91.3% with the same recipe. The study reports that cost
beside the shift tolerance it buys.
"""

from experiments.configs import fashion_mnist_lesson


def get_config():
  """Returns the configuration."""
  config = fashion_mnist_lesson.get_config()
  config.model.head = 'global_avg'
  return config
