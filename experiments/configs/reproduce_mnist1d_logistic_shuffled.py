"""Reproduction: logistic regression on shuffled MNIST-1D, Greydanus 2020 (about 32%).

:mod:`reproduce_mnist1d_logistic` on the permuted positions of
:mod:`reproduce_mnist1d_cnn_shuffled`: a linear model is blind to the order of its
inputs, so the published number is the unshuffled one.
"""

import ml_collections

from experiments.configs import reproduce_mnist1d_cnn_shuffled, reproduce_mnist1d_logistic


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = reproduce_mnist1d_logistic.get_config()
  config.dataset.permute_seed = reproduce_mnist1d_cnn_shuffled.PERMUTE_SEED
  return config
