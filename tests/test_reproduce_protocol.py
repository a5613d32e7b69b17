"""experiments.mnist1d_protocol: the reference's models, init and shuffle (needs torch)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from experiments import mnist1d_protocol as protocol  # noqa: E402  (after the torch check)


def _params(model):
  return sum(p.numel() for p in model.parameters())


def test_models_have_the_references_parameter_counts():
  # ConvBase prints 5,210; MLPBase 40-100-100-10 and LinearBase 40-10 by (n_in + 1) n_out.
  assert _params(protocol.MODELS['cnn']()) == 5210
  assert _params(protocol.MODELS['mlp']()) == 41 * 100 + 101 * 100 + 101 * 10
  assert _params(protocol.MODELS['logistic']()) == 41 * 10
  assert protocol.MODELS['cnn']()(torch.zeros(7, 40)).shape == (7, 10)


def test_paper_permutation_is_the_notebooks():
  np.random.seed(42)  # the notebook's two lines, on the global state
  expected = np.random.permutation(40)
  assert list(protocol.paper_permutation()) == list(expected)
  data = {'x': np.arange(80.).reshape(2, 40), 'x_test': np.arange(40.)[None]}
  moved = protocol.positions(data, 'paper permutation')
  assert list(moved['x_test'][0]) == list(expected)  # train and test alike
  assert list(moved['x'][1]) == list(40 + expected)


def test_flax_init_is_lecun_normal_with_zero_biases():
  torch.manual_seed(0)
  model = protocol.MLPBase()
  protocol.flax_init(model)
  weight = model.linear2.weight.detach().numpy()  # 10,000 draws, fan_in 100
  assert weight.std() == pytest.approx(math.sqrt(1 / 100), rel=0.03)
  assert np.abs(weight).max() <= 2 * math.sqrt(1 / 100) / .87962566103423978
  assert all(not m.bias.detach().any() for m in (model.linear1, model.linear2, model.linear3))
