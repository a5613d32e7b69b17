"""The 1-D CNN on MNIST-1D: Greydanus 2020's ConvBase and training recipe.

Three stride-2 convolutions (25 channels, kernels 5, 3, 3, padding 1) and a linear
layer: 5,210 parameters. The reference trains with Adam, learning rate 1e-2, batch
100, 6,000 steps on the 4,000 training sequences (150 epochs). Pooling instead of
strides: ``--config.model.strides=1 --config.model.pool=max``.
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = default.get_config()
  config.dataset.name = 'mnist1d'
  config.dataset.prepare_from_dir = ''

  config.model = ml_collections.ConfigDict(dict(
      name='cnn1d',
      num_classes=10,
      features=(25, 25, 25),
      kernel_size=(5, 3, 3),
      strides=2,
      padding=1,
      pool='none',  # 'max', 'avg', 'conv' (strided conv) or 'none'
      pool_window=2,
      dropout_rate=0.0,
  ))

  config.optimizer.learning_rate = 1e-2
  config.optimizer.schedule = 'constant'
  config.batch_size = 100
  config.eval_batch_size = 1000
  config.num_epochs = 150
  # 40 steps an epoch: one lax.scan program per epoch, a log line every 25 epochs and
  # a checkpoint every 50 (saving all 150 epochs would take longer than training).
  config.steps_per_call = 0
  config.log_every_steps = 1000
  config.checkpoint_every_steps = 2000
  config.tensorboard = False  # importing TensorFlow for it costs seconds
  return config
