"""ResNet-50 on ImageNet: He et al. 2015 with torchvision's reference recipe.

25,557,032 parameters (torchvision's ``resnet50``). SGD with momentum 0.9, weight
decay 1e-4, batch 256, learning rate 0.1 divided by 10 every 30 epochs, 90 epochs.
``stride_in_1x1=True`` gives the paper's original block (same parameters, receptive
field 483 instead of 427 at the last stage).
"""

import ml_collections

from experiments.configs import imagenet_base


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = imagenet_base.get_config()
  config.model = ml_collections.ConfigDict(dict(
      name='resnet50',
      num_classes=1000,
      stem_stride=2,
      stem_pool='max',  # 'max', 'avg', 'conv' (strided conv) or 'none'
      stage_strides=(1, 2, 2, 2),
      stride_in_1x1=False,  # True: the paper's v1 block; False: torchvision's v1.5
      shortcut='B',
      dropout_rate=0.0,  # before the classifier
  ))
  config.optimizer.learning_rate = 0.1
  config.optimizer.weight_decay = 1e-4
  return config
