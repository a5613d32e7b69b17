"""Reproduction: logistic regression on MNIST-1D, Greydanus 2020 (about 32% test accuracy).

The reference ``LinearBase`` is one linear layer 40 -> 10 (410 parameters): here the
``mlp`` with no hidden layers, trained with the CNN's recipe (Adam 1e-2, batch 100,
150 epochs).
"""

import ml_collections

from experiments.configs import reproduce_mnist1d_mlp


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = reproduce_mnist1d_mlp.get_config()
  config.model.hidden = ()
  return config
