"""Ablation: dropout rate x conv stride of the simple CNN on Fashion-MNIST (offline).

  python -m experiments.sweep --config experiments/configs/ablation_simple_cnn_dropout_stride.py \
      --seeds 3

``get_sweep()``: ``model.dropout_rate`` (after each conv block) 0, 0.1, 0.3, 0.5 x
``model.strides`` (both convs) 1, 2: 8 settings in two programs, one per stride, each
training its 4 rates x 3 seeds = 12 replicas vmapped together. The network is the
default one at half width (16, 32 channels) with the dense layer's dropout off, so a
rate of 0 is no dropout at all.

To make overfitting show within a few epochs and keep the sweep to minutes, the models
train on 5,000 images (``train[:5000]``) for 6 epochs and report their best epoch on
another 5,000 (``train[55000:]``); test accuracy is on the full test set.

Expected cost on the 2-core CPU, estimated from the throughput of 12 vmapped replicas
measured there while other jobs shared it (load average about 6): stride 1 trained at
430 img/s, stride 2 at 4,900 img/s, so 360,000 training images per stride plus the
evaluations take about 17 + 3 minutes; an idle machine needs roughly a third of that.
"""

import ml_collections

from experiments.configs import fashion_mnist_cnn


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = fashion_mnist_cnn.get_config()
  config.dataset.train_split = 'train[:5000]'
  config.dataset.eval_split = 'train[55000:]'
  config.model.features = (16, 32)
  config.model.dense_dropout_rate = 0.0
  config.num_epochs = 6
  config.tensorboard = False
  config.steps_per_call = 0  # an epoch per compiled call (lax.scan)
  config.log_every_steps = 0  # so logs come at epoch ends
  return config


def get_sweep() -> dict:
  """The grid: dropout rate x stride."""
  return {'model.dropout_rate': [0.0, 0.1, 0.3, 0.5], 'model.strides': [1, 2]}
