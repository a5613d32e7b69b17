"""Ablation: dropout on/off in AlexNet-small's dense layers on CIFAR-10.

  python -m cnn_jax.data prepare cifar10 --from-dir DIR_WITH_cifar-10-python.tar.gz
  python -m experiments.sweep --config experiments/configs/ablation_alexnet_small_dropout.py \
      --seeds 3

``get_sweep()``: ``model.dropout_rate`` (after fc6 and fc7, the paper's place) 0 or
0.5; both rates and all seeds train as one vmapped program (6 replicas with 3 seeds).
``alexnet_small`` is AlexNet for 32x32 inputs (5x5 stride-1 stem, 1024-unit dense
layers); SGD with momentum, weight decay 5e-4 and a cosine schedule for 30 epochs,
CIFAR crop + flip, 5,000 training images held out to pick the best epoch. Needs CIFAR-10
prepared (above); without it the sweep stops with the data layer's "prepare"
instructions. Not timed here: this machine has no CIFAR-10; expect GPU work.
"""

import ml_collections

from experiments.configs import ablation_resnet20_dropout


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = ablation_resnet20_dropout.get_config()  # CIFAR-10 data, splits, augmentation
  config.model = ml_collections.ConfigDict(dict(
      name='alexnet_small',
      num_classes=10,
      features=(64, 192, 384, 256, 256),
      kernel_size=(5, 5, 3, 3, 3),
      stem_stride=1,
      stem_padding=2,
      pool='max',
      pool_window=3,
      pool_stride=2,
      hidden=(1024, 1024),
      dropout_rate=0.5,  # after fc6 and fc7
  ))
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 5e-4
  config.optimizer.schedule = 'cosine'
  return config


def get_sweep() -> dict:
  """Dropout off and on."""
  return {'model.dropout_rate': [0.0, 0.5]}
