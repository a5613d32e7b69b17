"""Ablation: dropout on/off before ResNet-20's classifier on CIFAR-10.

  python -m cnn_jax.data prepare cifar10 --from-dir DIR_WITH_cifar-10-python.tar.gz
  python -m experiments.sweep --config experiments/configs/ablation_resnet20_dropout.py --seeds 3

``get_sweep()``: ``model.dropout_rate`` 0 or 0.5; both rates and all seeds train as one
vmapped program (6 replicas with 3 seeds). The recipe of ``resnet20_cifar10.py``
(SGD, the learning rate divided by 10 at 50% and 75% of the run, crop + flip) over 30
epochs instead of 164, with 5,000 training images held out to pick the best epoch.
Needs CIFAR-10 prepared (above); without it the sweep stops with the data layer's
"prepare" instructions. Not timed here: this machine has no CIFAR-10; expect GPU work
(30 epochs x 45,000 images x 6 replicas).
"""

import ml_collections

from experiments.configs import resnet20_cifar10


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = resnet20_cifar10.get_config()
  config.dataset.train_split = 'train[:45000]'
  config.dataset.eval_split = 'train[45000:]'
  config.num_epochs = 30
  return config


def get_sweep() -> dict:
  """Dropout off and on."""
  return {'model.dropout_rate': [0.0, 0.5]}
