"""Reproduction: the zalandoresearch Fashion-MNIST 2-conv CNN (at least 91% test accuracy).

The architecture of ``benchmark/convnet.py`` in github.com/zalandoresearch/fashion-mnist
(TensorFlow's layers tutorial, listed in its README as "2 Conv Layers with max pooling
(Tensorflow) >300 epochs": 0.916): conv 5x5 32 (SAME) -> max pool 2 -> conv 5x5 64 ->
max pool 2 -> dense 1024 -> dropout 0.4 -> 10, 3,274,634 parameters. The reference
trains it with plain SGD (learning rate 1e-3, batch 400) for 200,000 steps; here it
gets the project's default recipe instead (Adam with a one-cycle schedule to 3e-3,
batch 128) for 6 epochs, so the comparison is with the README's claim of >= 91%, not
with the reference's training curve. The 6 epochs were checked on a validation split
carved from the training set (``train[:90%]`` / ``train[90%:]``: 92.2% validation
accuracy after epoch 4 of 6); the test split decided nothing.

Cost: 27.8 MFLOPs per image forward, 3.3x the default CNN; three seeds in one program
took about an hour on the 2-core CPU while it was shared with other jobs.
"""

import ml_collections

from experiments.configs import fashion_mnist_cnn


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = fashion_mnist_cnn.get_config()
  config.model.features = (32, 64)
  config.model.kernel_size = 5
  config.model.dropout_rate = 0.0
  config.model.hidden = (1024,)
  config.model.dense_dropout_rate = 0.4
  config.num_epochs = 6
  return config
