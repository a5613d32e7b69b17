"""The config schema: every field the library reads, with its default and meaning.

The one home for defaults. Library code reads ``config.x`` (a missing field is an
error naming it), so every experiment config starts from :func:`get_config` here and
overrides what it changes. A new knob is added here first (see the README's "add a
config knob").

As an experiment this is the simple CNN on Fashion-MNIST, offline: two 3x3 conv blocks
(32, 64 channels) with 2x2 max pooling and dropout, a 128-unit dense layer, Adam with a
one-cycle schedule. Fashion-MNIST is read through TFDS; when it is not prepared yet it
is built once from the real IDX files of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``), so it needs no download.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Every field the library reads, at its default value."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # initialisation, batch order, dropout and augmentation keys

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'fashion_mnist'  # see cnn_jax.data.catalog for the known names
  # TFDS data folder; empty: $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.dataset.data_dir = ''
  # Prepared from the Debian package's IDX files on first use when missing (offline).
  config.dataset.prepare_from_dir = '/usr/share/datasets/fashion-mnist'
  config.dataset.download = False  # True lets TFDS download a missing dataset
  config.dataset.train_split = 'train'  # e.g. 'train[:90%]' with eval_split 'train[90%:]'
  config.dataset.eval_split = ''  # empty: no validation split
  config.dataset.test_split = 'test'  # evaluated once, at the end
  config.dataset.stream = False  # stream from the host even if it fits in memory
  config.dataset.read_threads = 4  # streamed (large) datasets: batches read ahead on host
  config.dataset.augment = ml_collections.ConfigDict()
  config.dataset.augment.crop_padding = 0  # CIFAR: 4
  config.dataset.augment.padding_mode = 'constant'  # crop padding: or 'reflect', 'edge'
  config.dataset.augment.flip = False  # random horizontal flips
  config.dataset.augment.random_resized_crop = False  # ImageNet-style
  config.dataset.augment.area_range = (0.08, 1.0)  # random resized crop: area fraction
  config.dataset.augment.aspect_ratio_range = (3 / 4, 4 / 3)  # and its aspect ratio
  config.dataset.augment.image_size = 0  # e.g. 224 for GoogLeNet; 0 keeps the stored size
  config.dataset.augment.eval_crop_fraction = 0.875  # central crop at evaluation (resized)
  config.dataset.augment.normalize = False  # subtract mean, divide by std per channel
  config.dataset.augment.mean = ()  # empty with normalize: the dataset's published stats
  config.dataset.augment.std = ()  # likewise

  # Per-block fields take one value or a tuple, so a config built on this one may
  # replace an int with a tuple (strides = (1, 2, 2)): no type locking here.
  config.model = ml_collections.ConfigDict(type_safe=False)
  # The model's fields are its constructor's (cnn_jax.models.<name>); these are simple_cnn's.
  config.model.name = 'simple_cnn'  # a registered name, cnn_jax.models.names()
  config.model.features = (32, 64)  # output channels of each conv block
  config.model.kernel_size = 3  # per block or one for all
  config.model.strides = 1  # conv stride, per block or one for all
  config.model.batch_norm = False  # BatchNorm after each conv (per block or one for all)
  config.model.pool = 'max'  # after each block: 'max', 'avg', 'none' or 'conv' (strided)
  config.model.dropout_rate = 0.25  # after each conv block, in [0, 1)
  config.model.hidden = (128,)  # dense layers of the head
  config.model.dense_dropout_rate = 0.5  # after each dense layer of the head

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'  # 'sgd', 'adam' or 'adamw'
  config.optimizer.learning_rate = 3e-3  # the peak of the schedule
  config.optimizer.schedule = 'one_cycle'  # 'constant', 'cosine', 'one_cycle', 'piecewise'
  config.optimizer.warmup_steps = 0  # constant/cosine/piecewise only
  config.optimizer.momentum = 0.9  # sgd only
  config.optimizer.nesterov = False  # sgd only
  config.optimizer.weight_decay = 0.0  # kernels only, never biases or BatchNorm
  config.optimizer.grad_clip_norm = 0.0  # 0: off
  # piecewise only: decay points as fractions of the run, each multiplying by decay_factor
  config.optimizer.boundaries = (0.5, 0.75)
  config.optimizer.decay_factor = 0.1

  config.batch_size = 128  # global: split over the devices
  config.eval_batch_size = 1000  # global; the last batch is padded and masked
  config.num_epochs = 6  # passes over the training split
  config.label_smoothing = 0.0  # target mass spread uniformly over the classes
  config.aux_loss_weight = 0.0  # auxiliary classifiers (GoogLeNet: 0.3)
  config.ema_decay = 0.0  # > 0: evaluate an EMA of the parameters
  config.eval_flip = False  # evaluate on each image and its mirror (with augment.flip)
  config.half_precision = False  # bfloat16 compute, float32 parameters

  config.steps_per_call = 1  # steps per compiled call, as one lax.scan; 0: a whole epoch
  config.evaluate_train = False  # also evaluate on the training split at the end (the gap)

  config.log_every_steps = 100  # train metrics every N steps (0: every epoch)
  # 0: every epoch; N: every N steps (and always after an evaluation and at the end)
  config.checkpoint_every_steps = 0
  config.keep_checkpoints = 2  # the latest K, plus the best by eval accuracy
  config.tensorboard = True  # if TensorFlow is installed

  # What one group (one compiled program) needs on a Dask cluster (--cluster): tasks
  # are submitted with these Dask worker resources, so a gpu=1 group only lands on a
  # worker started with --resources "GPU=1". 0: not requested. Ignored without --cluster.
  config.resources = ml_collections.ConfigDict()
  config.resources.cpu = 0  # Dask resource CPU (workers: --resources "CPU=N")
  config.resources.gpu = 0  # Dask resource GPU (workers: --resources "GPU=N")
  config.resources.memory_gb = 0.0  # Dask resource MEMORY in bytes (x 1e9)
  return config
