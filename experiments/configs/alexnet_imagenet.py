"""AlexNet on ImageNet: torchvision's single-GPU variant (61,100,840 parameters).

Krizhevsky et al. 2012 trained with SGD, momentum 0.9, weight decay 5e-4, batch 128,
learning rate 0.01 divided by 10 three times when the validation error stopped
improving, about 90 epochs; here the division happens every 30 epochs (torchvision's
reference recipe). The paper's two-GPU network (60,965,224 parameters):
``--config.model.features='(96, 256, 384, 384, 256)'
--config.model.groups='(1, 2, 1, 2, 2)'``.
"""

import ml_collections

from experiments.configs import imagenet_base


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = imagenet_base.get_config()
  config.model = ml_collections.ConfigDict(dict(
      name='alexnet',
      num_classes=1000,
      features=(64, 192, 384, 256, 256),
      groups=(1, 1, 1, 1, 1),
      stem_stride=4,
      stem_padding=2,
      pool='max',  # 'max', 'avg', 'conv' (strided conv) or 'none'
      pool_window=3,  # 3 with stride 2: overlapping; 2: the paper's non-overlapping ablation
      pool_stride=2,
      hidden=(4096, 4096),
      dropout_rate=0.5,  # after fc6 and fc7
  ))
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 5e-4
  config.batch_size = 128
  return config
