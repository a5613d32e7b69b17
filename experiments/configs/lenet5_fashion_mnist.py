"""LeNet-5 on Fashion-MNIST in its modern form (ReLU, max pooling).

The 28x28 images are zero-padded to the paper's 32x32 field inside C1
(``c1_padding`` left at its default). The original form is
``--config.model.activation=tanh --config.model.pool=avg`` (or ``lecun_tanh`` for the
paper's scaled tanh); both have 61,706 parameters.
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = default.get_config()
  config.model = ml_collections.ConfigDict(dict(
      name='lenet5',
      num_classes=10,
      features=(6, 16, 120),  # C1, C3, C5
      kernel_size=5,
      hidden=(84,),  # F6
      stem_stride=1,  # C1
      pool='max',  # S2, S4: 'avg' (original), 'max', 'conv' (strided conv), 'none'
      pool_window=2,
      activation='relu',
      dropout_rate=0.0,  # after F6
  ))
  config.optimizer.learning_rate = 2e-3
  config.num_epochs = 10
  return config
