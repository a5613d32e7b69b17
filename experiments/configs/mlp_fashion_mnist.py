"""The fully connected ("DNN") baseline on Fashion-MNIST: 784 -> 256 -> 128 -> 10.

235,146 parameters; the comparison point for what convolution adds on the same data.
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = default.get_config()
  config.model = ml_collections.ConfigDict(dict(
      name='mlp',
      num_classes=10,
      hidden=(256, 128),
      dropout_rate=0.2,  # after each hidden layer
      input_dropout_rate=0.0,
      activation='relu',
  ))
  config.optimizer.learning_rate = 1e-3
  config.num_epochs = 10
  return config
