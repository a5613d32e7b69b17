"""Reproduction: ResNet-56 on CIFAR-10, He et al. 2015 (6.97% test error, 93.03% accuracy).

:mod:`experiments.configs.reproduce_cifar10_resnet20` with the 56-layer network
(853,018 parameters, option A shortcuts); the recipe is the paper's, the same for every
depth. About 3x ResNet-20's cost (0.76 GFLOPs per training example): run it on an
accelerator.
"""

import ml_collections

from experiments.configs import reproduce_cifar10_resnet20


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = reproduce_cifar10_resnet20.get_config()
  config.model.name = 'resnet56'
  return config
