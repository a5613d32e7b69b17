"""Reproduction: the MNIST-1D CNN on shuffled sequences, Greydanus 2020 (about 56%).

The locality control (Zhang et al. 2017's shuffled pixels): one fixed random
permutation of the 40 positions, the same for the train and the test sequences
(``dataset.permute_seed``), and otherwise :mod:`reproduce_mnist1d_cnn` unchanged. The
reference notebook (``notebooks/mnist1d-classification.ipynb``) draws its permutation
with ``np.random.seed(42); np.random.permutation(40)``; ours comes from
``numpy.random.default_rng(42)``, another permutation, and which one matters a little:
the reference's own PyTorch code, seeds 0-9, ends at 56.60% [55.84, 57.36] with the
notebook's and 57.96% [56.92, 59.00] with ours (final test accuracy, mean and 95%
interval; ``experiments/results/reproduce/mnist1d_protocol/results.md``, rows
``cnn_shuffled`` and ``cnn_shuffled_our_permutation``). Our loop's two choices
(batches reshuffled every epoch, Flax's initialisation; see
:mod:`reproduce_mnist1d_cnn`) add about two more points here, where they cost 0.7 on
the unshuffled data: the reference's code with our permutation and both choices ends
at 59.92% [58.69, 61.15] (``mnist1d_protocol_shuffled_both/``), and ours, 10 seeds, at
60.31% [59.40, 61.22] (``experiments/results/reproduce/results.md``). So this row
fails the published 56% ± 3 (the interval lies above 59%) for reasons the reference's
own code reproduces; the control's point stands: without locality the CNN loses about
33 points and falls under the MLP (66.53% shuffled).
"""

import ml_collections

from experiments.configs import reproduce_mnist1d_cnn

PERMUTE_SEED = 42  # the seed of the reference notebook's permutation, drawn our way


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  config = reproduce_mnist1d_cnn.get_config()
  config.dataset.permute_seed = PERMUTE_SEED
  return config
