"""A seconds-long variant of the default experiment for end-to-end tests.

  --config tests/configs/tiny.py:/path/to/idx_dir
"""

from experiments.configs import fashion_mnist_cnn


def get_config(data_dir: str = ''):
  """The default config shrunk: a small CNN, 3 short epochs, frequent checkpoints."""
  config = fashion_mnist_cnn.get_config()
  config.dataset.data_dir = data_dir
  config.model.features = (8,)
  config.model.hidden = (32,)
  config.batch_size = 32
  config.eval_batch_size = 64
  config.num_epochs = 3
  config.log_every_steps = 4
  config.checkpoint_every_steps = 4
  config.tensorboard = False
  return config
