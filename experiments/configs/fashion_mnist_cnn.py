"""The simple CNN on Fashion-MNIST (32/64 channels, 6 epochs): the schema's own values.

  python -m experiments.train --config experiments/configs/fashion_mnist_cnn.py

Two 3x3 conv blocks with 2x2 max pooling and dropout 0.25, a 128-unit dense layer with
dropout 0.5, Adam with a one-cycle schedule peaking at 3e-3, batch 128. Offline: built
from the Debian package's Fashion-MNIST IDX files on first use.
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration (the defaults of ``default.py``)."""
  return default.get_config()
