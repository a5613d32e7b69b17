"""Reproduction: ResNet-18 on Fashion-MNIST (94.9% in the zalandoresearch benchmark table).

The reference (Kyriakos Efthymiadis, github.com/kefth/fashion-mnist) trains a ResNet-18
from ``torchvision.models`` with Adam (learning rate 1e-3, batch 256) for up to 200
epochs with early stopping, on normalised images with random horizontal and vertical
flips, translations and rotations. Here: the ImageNet form of ResNet-18 as torchvision
builds it (7x7/2 stem conv and 3x3/2 max pool, so 28x28 inputs reach the last stage at
1x1; 11,175,370 parameters with one input channel and 10 classes; how the reference
adapted the stem to 1-channel images was not checked), normalised inputs, horizontal
flips and translations of up to 2 pixels (no vertical flips or rotations), Adam with a
one-cycle schedule to 1e-3, batch 128, 30 epochs on the whole training split.

Cost: about 200 MFLOPs per training example (3x the forward pass). On the 2-core CPU
this project is developed on, the train step ran at about 60 images/s: ~16 minutes per
epoch, ~8 hours per seed for 30 epochs (the seeds run as one program, so three take
three times as long). Run it on an accelerator, or shorten it and say so:
``python -m experiments.reproduce --only fashion_mnist_resnet18
--override num_epochs=3`` (the results table states the epochs used).
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = default.get_config()
  config.dataset.augment.normalize = True
  config.dataset.augment.flip = True
  config.dataset.augment.crop_padding = 2

  config.model = ml_collections.ConfigDict(dict(
      name='resnet18',
      num_classes=10,
      stem_stride=2,
      stem_pool='max',  # the ImageNet stem, as torchvision builds it
      dropout_rate=0.0,
  ))

  config.optimizer.learning_rate = 1e-3
  config.batch_size = 128
  config.num_epochs = 30
  return config
