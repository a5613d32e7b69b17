"""Reproduction: the MNIST-1D CNN of Greydanus 2020 (94% in its README's table).

Exactly :mod:`experiments.configs.cnn1d_mnist1d`: the paper's ``ConvBase`` (three
stride-2 convolutions of 25 channels, kernels 5, 3, 3, padding 1, ReLU, then a linear
layer on the 125 flattened features: 5,210 parameters) with its recipe (Adam 1e-2,
batch 100, 6,000 steps = 150 epochs on the 4,000 training sequences), on the paper's
data (the generated MNIST-1D equals the repository's frozen ``mnist1d_data.pkl`` to
9e-16). Ten seeds took 50 s on the 2-core CPU.

Why our mean sits under 94% (issue #18), measured. The reference's training code
(``notebooks/train.py``, the same as the ``train.py`` of the first commit, which holds
the README table) was run as published, in PyTorch, over seeds 0-9
(``python -m experiments.mnist1d_protocol``; pages under
``experiments/results/reproduce/mnist1d_protocol*/``). Final test accuracy, mean and
95% interval:

* as published: 93.79% [93.19, 94.39]. The 94% is what this code ends at; its best of
  the 25 test evaluations (every 250 steps) is 94.20% [93.66, 94.74], so "best vs
  final" is worth 0.4 points and is not the gap. One seed is not enough: the
  notebooks' own printed seed-42 runs end at 92.5% (2020 quickstart) and 92.3% (2024
  benchmark notebook).
* Our loop differs in two choices. It draws a new batch order every epoch (the
  reference slices the same fixed order every epoch): 93.18% [92.66, 93.70] in the
  reference's code. It initialises like Flax (LeCun-normal kernels, zero biases;
  PyTorch draws weights and biases uniformly in ±1/sqrt(fan_in), a third of the
  variance): 93.40% [92.84, 93.96]. Both: 93.11% [92.22, 94.00].
* Ours, 10 seeds: 92.94% ± 0.82, interval [92.35, 93.53]
  (``experiments/results/reproduce/results.md``). The issue's 92.33% ± 1.72 was seeds
  0-2 as a 3-replica program; in this 10-replica one the same seeds read 92.53% ±
  0.81: another batch of replicas sums in another order, and 6,000 steps amplify the
  last bits, so single seeds move by a point or two and only the mean over many is
  stable.

So the model, the data and the reading are the paper's; our batch order and
initialisation account for 0.7 of the 0.85-point gap in the reference's own code, and
the 0.17 left (93.11 against 92.94) is well inside either interval.
"""

import ml_collections

from experiments.configs import cnn1d_mnist1d


def get_config() -> ml_collections.ConfigDict:
  """Returns the configuration."""
  return cnn1d_mnist1d.get_config()
