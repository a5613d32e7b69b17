"""ResNet-20 on CIFAR-10 as in He et al. 2015, section 4.2.

Option A (parameter-free) shortcuts, 269,722 parameters. The paper's recipe: SGD with
momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 32k and
48k of 64k iterations (the piecewise boundaries 0.5 and 0.75; 64k iterations of 128 are
about 164 epochs of 50k images), 4-pixel padding with random 32x32 crops and
horizontal flips, per-pixel mean subtraction (here: per-channel normalisation).
Deeper variants: ``--config.model.name=resnet56`` (or 32, 44, 110).
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = default.get_config()
  config.dataset.name = 'cifar10'
  config.dataset.prepare_from_dir = ''
  config.dataset.augment.crop_padding = 4
  config.dataset.augment.flip = True
  config.dataset.augment.normalize = True

  config.model = ml_collections.ConfigDict(dict(
      name='resnet20',
      num_classes=10,
      stem_stride=1,
      stem_pool='none',  # 'max', 'avg', 'conv' (strided conv) or 'none'
      stage_strides=(1, 2, 2),
      shortcut='A',  # 'B': 1x1 projections where the shape changes
      dropout_rate=0.0,  # before the classifier
  ))

  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 0.1
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 1e-4
  config.optimizer.schedule = 'piecewise'
  config.optimizer.boundaries = (0.5, 0.75)
  config.optimizer.decay_factor = 0.1

  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 164
  return config
