"""The default experiment: the simple CNN on Fashion-MNIST, offline.

Reads the real Fashion-MNIST IDX files of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``), so it needs no download. Two 3x3 conv blocks
(32, 64 channels) with 2x2 max pooling and dropout, a 128-unit dense layer, Adam with
a one-cycle schedule.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default configuration."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'fashion_mnist'
  config.dataset.data_dir = ''  # empty: the Debian package's folder

  config.model = ml_collections.ConfigDict()
  config.model.name = 'simple_cnn'
  config.model.features = (32, 64)
  config.model.kernel_size = 3
  config.model.strides = 1
  config.model.pool = 'max'
  config.model.dropout_rate = 0.25
  config.model.hidden = (128,)
  config.model.dense_dropout_rate = 0.5

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = 'one_cycle'

  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 3
  return config
