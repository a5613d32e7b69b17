"""The default experiment: the simple CNN on Fashion-MNIST, offline.

Reads Fashion-MNIST through TFDS; when it is not prepared yet, it is built once from the
real IDX files of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``), so it needs no download. Two 3x3 conv blocks
(32, 64 channels) with 2x2 max pooling and dropout, a 128-unit dense layer, Adam with
a one-cycle schedule.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the default configuration."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'fashion_mnist'
  config.dataset.data_dir = ''  # TFDS data folder; empty: $TFDS_DATA_DIR or ~/tensorflow_datasets
  # Prepared from the Debian package's IDX files on first use when missing (offline).
  config.dataset.prepare_from_dir = '/usr/share/datasets/fashion-mnist'
  config.dataset.download = False  # True lets TFDS download a missing dataset
  config.dataset.train_split = 'train'  # e.g. 'train[:90%]' with eval_split 'train[90%:]'
  config.dataset.eval_split = ''  # empty: no validation split
  config.dataset.test_split = 'test'
  config.dataset.stream = False  # stream from the host even if it fits in memory
  config.dataset.read_threads = 4  # streamed (large) datasets: batches read ahead on host
  config.dataset.augment = ml_collections.ConfigDict()
  config.dataset.augment.crop_padding = 0  # CIFAR: 4
  config.dataset.augment.padding_mode = 'constant'
  config.dataset.augment.flip = False
  config.dataset.augment.random_resized_crop = False  # ImageNet-style
  config.dataset.augment.area_range = (0.08, 1.0)
  config.dataset.augment.aspect_ratio_range = (3 / 4, 4 / 3)
  config.dataset.augment.image_size = 0  # e.g. 224 for GoogLeNet; 0 keeps the stored size
  config.dataset.augment.eval_crop_fraction = 0.875
  config.dataset.augment.normalize = False
  config.dataset.augment.mean = ()  # empty with normalize: the dataset's published stats
  config.dataset.augment.std = ()

  # Per-block fields take one value or a tuple, so a config built on this one may
  # replace an int with a tuple (strides = (1, 2, 2)): no type locking here.
  config.model = ml_collections.ConfigDict(type_safe=False)
  config.model.name = 'simple_cnn'
  config.model.features = (32, 64)
  config.model.kernel_size = 3
  config.model.strides = 1
  config.model.batch_norm = False  # BatchNorm after each conv (per block or one for all)
  config.model.pool = 'max'
  config.model.dropout_rate = 0.25
  config.model.hidden = (128,)
  config.model.dense_dropout_rate = 0.5

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = 'one_cycle'
  config.optimizer.warmup_steps = 0  # constant/cosine/piecewise only
  config.optimizer.momentum = 0.9  # sgd only
  config.optimizer.nesterov = False  # sgd only
  config.optimizer.weight_decay = 0.0  # kernels only, never biases or BatchNorm
  config.optimizer.grad_clip_norm = 0.0  # 0: off

  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 6
  config.label_smoothing = 0.0
  config.aux_loss_weight = 0.0  # auxiliary classifiers (GoogLeNet: 0.3)
  config.ema_decay = 0.0  # > 0: evaluate an EMA of the parameters
  config.eval_flip = False  # evaluate on each image and its mirror (with augment.flip)
  config.half_precision = False  # bfloat16 compute, float32 parameters

  config.steps_per_call = 1  # steps per compiled call, as one lax.scan; 0: a whole epoch
  config.evaluate_train = False  # also evaluate on the training split at the end (the gap)

  config.log_every_steps = 100
  config.checkpoint_every_steps = 0  # 0: every epoch; N: every N steps (and evaluated steps, the end)
  config.keep_checkpoints = 2  # the latest K, plus the best by eval accuracy
  config.tensorboard = True  # if TensorFlow is installed
  return config
