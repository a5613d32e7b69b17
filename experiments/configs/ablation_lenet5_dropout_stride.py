"""Ablation: dropout rate x downsampling of LeNet-5 (modern form) on Fashion-MNIST.

  python -m experiments.sweep --config experiments/configs/ablation_lenet5_dropout_stride.py \
      --seeds 3

``get_sweep()``: ``model.dropout_rate`` (after F6) 0, 0.1, 0.3, 0.5 x ``model.pool``
``'max'`` or ``'conv'``: S2 and S4 downsample by 2x2 max pooling or by a learned 2x2
convolution with stride 2 (the network's stride ablation). A stride-2 C1
(``model.stem_stride=2``) cannot run: its three unpadded 5x5 convolutions need the
32x32 field, and S4 would leave a 1x1 map for C5's 5x5 kernel (the sweep stops before
training, naming ``c5``). 8 settings in two programs, one per ``pool``, each training
its 4 rates x 3 seeds = 12 replicas vmapped together.

Data and epochs as in ``ablation_simple_cnn_dropout_stride.py``: 6 epochs on 5,000
training images, another 5,000 for the best epoch, the full test set. Expected cost on
the 2-core CPU, estimated from the throughput of 12 vmapped replicas measured there
while other jobs shared it (load average about 6): max pooling trained at 910 img/s,
stride-2 convolutions at 710 img/s, so 360,000 training images per setting of ``pool``
plus the evaluations take about 10 + 12 minutes; an idle machine needs roughly a third
of that.
"""

import ml_collections

from experiments.configs import ablation_simple_cnn_dropout_stride, lenet5_fashion_mnist


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = lenet5_fashion_mnist.get_config()
  data = ablation_simple_cnn_dropout_stride.get_config()
  config.dataset = data.dataset
  config.num_epochs = data.num_epochs
  config.tensorboard = False
  config.steps_per_call = 0  # an epoch per compiled call (lax.scan)
  config.log_every_steps = 0  # so logs come at epoch ends
  return config


def get_sweep() -> dict:
  """The grid: dropout rate x downsampling by max pooling or stride-2 convolution."""
  return {'model.dropout_rate': [0.0, 0.1, 0.3, 0.5], 'model.pool': ['max', 'conv']}
