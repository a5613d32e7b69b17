"""A seconds-long variant of the default experiment for end-to-end tests.

  --config tests/configs/tiny.py:/path/to/tfds_data_dir

The data dir holds the toy of ``tests/idx_files.py`` prepared as ``fashion_mnist``.
"""

from experiments.configs import default


def get_config(data_dir: str = ''):
  """The default config shrunk: a small CNN, 3 short epochs, frequent checkpoints."""
  config = default.get_config()
  config.dataset.data_dir = data_dir
  config.dataset.prepare_from_dir = ''  # never fall back to the real dataset
  config.dataset.train_split = 'train[:75%]'  # 384 examples: 12 steps of 32
  config.dataset.eval_split = 'train[75%:]'
  config.model.features = (8,)
  config.model.hidden = (32,)
  config.batch_size = 32
  config.eval_batch_size = 64
  config.num_epochs = 3
  config.log_every_steps = 4
  config.checkpoint_every_steps = 4
  config.tensorboard = False
  return config
