"""GoogLeNet (Inception v1) on ImageNet, the paper's architecture (6,998,552 parameters).

Szegedy et al. 2014 trained with asynchronous SGD, momentum 0.9 and a learning rate
cut by 4% every 8 epochs, a schedule this optimizer config does not offer; a cosine
decay stands in for it. The two auxiliary classifiers are trained with weight 0.3, as
in the paper, and dropped at evaluation. torchvision's variant (6,624,904 parameters):
``--config.model.batch_norm=True --config.model.branch3_kernel=3``.
"""

import ml_collections

from experiments.configs import imagenet_base


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = imagenet_base.get_config()
  config.model = ml_collections.ConfigDict(dict(
      name='googlenet',
      num_classes=1000,
      stem_stride=2,
      pool='max',  # 'max', 'avg', 'conv' (strided conv) or 'none'
      pool_stride=2,
      branch3_kernel=5,
      batch_norm=False,
      dropout_rate=0.4,  # before the classifier
      aux_logits=True,
      aux_dropout_rate=0.7,
  ))
  config.aux_loss_weight = 0.3
  config.optimizer.learning_rate = 0.01
  config.optimizer.weight_decay = 2e-4
  config.optimizer.schedule = 'cosine'
  config.optimizer.warmup_steps = 2000
  config.batch_size = 128
  return config
