"""The MNIST-1D speed config: >= 94% test accuracy in under 20 s on 2 CPU cores.

  python -m experiments.train --config experiments/configs/mnist1d_fast.py

Greydanus 2020's ConvBase and recipe (``cnn1d_mnist1d.py``, 5,210 parameters, 6,000
Adam steps) plus one change: random shifts of up to 4 samples (each sequence zero-padded
by 4 on both sides, then a random crop back to 40). The recipe alone averages 92.94%
over 10 seeds (``experiments/results/reproduce``), so a single run clears 94% only with
a lucky seed. On a held-out 10% of the training split (3 seeds, best eval accuracy):
91.50 +- 0.43 without shifts, 96.83 +- 0.29 with shifts of 4, 96.33 +- 0.14 with 8.
The test split was not used to choose; measurements are in
``experiments/results/speed.md``.
"""

from experiments.configs import cnn1d_mnist1d


def get_config():
  """Returns the configuration."""
  config = cnn1d_mnist1d.get_config()
  config.dataset.augment.crop_padding = 4
  return config
