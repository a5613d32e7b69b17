"""Reproduction: the MNIST-1D MLP on shuffled sequences, Greydanus 2020 (about 68%).

:mod:`reproduce_mnist1d_mlp` on the permuted positions of
:mod:`reproduce_mnist1d_cnn_shuffled`. A dense first layer sees the same problem up to
the order of its weights' columns, so the published number is the unshuffled one.
"""

import ml_collections

from experiments.configs import reproduce_mnist1d_cnn_shuffled, reproduce_mnist1d_mlp


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = reproduce_mnist1d_mlp.get_config()
  config.dataset.permute_seed = reproduce_mnist1d_cnn_shuffled.PERMUTE_SEED
  return config
