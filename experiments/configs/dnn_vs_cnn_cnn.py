"""The CNN of the DNN-vs-CNN study: the simple CNN sized to the MLP baseline's parameters.

:mod:`experiments.configs.fashion_mnist_cnn` (conv 3x3 32 -> max pool -> conv 3x3 64 ->
max pool -> dense -> 10, its dropout and Adam one-cycle recipe, 6 epochs) with a
69-unit dense layer, the width at which its parameters (235,969) come closest to the
MLP of :mod:`experiments.configs.mlp_fashion_mnist` (235,146): 216,453 of them sit in
that dense layer (on the 7x7x64 flattened features), 18,816 in the two convolutions.
"""

import ml_collections

from experiments.configs import fashion_mnist_cnn


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = fashion_mnist_cnn.get_config()
  config.model.hidden = (69,)
  return config
