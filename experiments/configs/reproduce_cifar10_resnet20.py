"""Reproduction: ResNet-20 on CIFAR-10, He et al. 2015 (8.75% test error, 91.25% accuracy).

Exactly :mod:`experiments.configs.resnet20_cifar10`: option A shortcuts, SGD with
momentum 0.9 and weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 50%
and 75% of 164 epochs, 4-pixel padded random crops and horizontal flips. Prepare
CIFAR-10 with ``python -m cnn_jax.data prepare cifar10 --from-dir DIR`` (the python or
binary archive). Cost: about 0.25 GFLOPs per training example, 164 epochs of 50,000
images, 2 PFLOPs per seed: more than a day per seed on the 2-core CPU, so run it on an
accelerator.
"""

import ml_collections

from experiments.configs import resnet20_cifar10


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  return resnet20_cifar10.get_config()
