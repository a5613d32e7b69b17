"""Stride vs pooling study, LeNet-5's base run (``cnn_jax.studies.stride_pool``).

The modern LeNet-5 of ``lenet5_fashion_mnist.py`` (ReLU, 2x2 max pooling in S2 and
S4, its recipe) for the epochs of ``study_stride_pool_simple_cnn.py``, an epoch per
compiled call. The study builds its other downsampling variants from this config.
"""

import ml_collections

from experiments.configs import lenet5_fashion_mnist, study_stride_pool_simple_cnn


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = lenet5_fashion_mnist.get_config()
  config.model.c3_stride = 1  # 2 (with stem_stride=2, pool='none'): strided S2 and S4
  config.num_epochs = study_stride_pool_simple_cnn.EPOCHS
  config.steps_per_call = 0  # an epoch per compiled call (lax.scan)
  config.log_every_steps = 0  # so logs come at epoch ends
  config.tensorboard = False
  return config
