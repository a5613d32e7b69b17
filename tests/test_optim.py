"""Optimizers and schedules from a config (``cnn_jax.train.optim``) and the smoothed loss.

Expected values come from the update rules written out in float64 numpy (the papers'
formulas, as PyTorch documents them), never from optax: a few steps on small arrays
with a different gradient each step, so momentum and bias correction both matter.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.train import optim
from cnn_jax.train.steps import cross_entropy
from experiments.configs import default

# A kernel (decayed) and a bias (never decayed), and one gradient per step.
PARAMS = {'kernel': np.array([[0.5, -1.0], [2.0, 0.25]]), 'bias': np.array([0.3, -0.7])}
GRADS = [{'kernel': np.array([[0.1, -0.2], [0.3, 0.05]]), 'bias': np.array([-0.4, 0.2])},
         {'kernel': np.array([[-0.3, 0.1], [0.2, -0.6]]), 'bias': np.array([0.1, 0.5])},
         {'kernel': np.array([[0.7, 0.4], [-0.1, 0.2]]), 'bias': np.array([-0.2, -0.3])}]


def _opt_config(**fields):
  """The schema's optimizer fields, plain SGD at rate 1 unless ``fields`` say otherwise."""
  config = default.get_config().optimizer
  config.update({'name': 'sgd', 'learning_rate': 1.0, 'schedule': 'constant',
                 'momentum': 0.0, **fields})
  return config


def _run(config):
  """The params after ``len(GRADS)`` updates of ``make_optimizer(config)``, float32."""
  tx = optim.make_optimizer(config, total_steps=100)
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), PARAMS)
  state = tx.init(params)
  for grads in GRADS:
    updates, state = tx.update(jax.tree.map(jnp.float32, grads), state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
  return params


def _decay(name, wd):
  """Weight decay per leaf: kernels only."""
  return wd if name == 'kernel' else 0.0


def _nesterov_sgd(lr, momentum, wd):
  """PyTorch's SGD with ``nesterov=True``: g += wd*w; b = mu*b + g; w -= lr*(g + mu*b)."""
  out = {}
  for name, w in PARAMS.items():
    w, buf = w.copy(), np.zeros_like(w)
    for grads in GRADS:
      g = grads[name] + _decay(name, wd) * w
      buf = momentum * buf + g
      w = w - lr * (g + momentum * buf)
    out[name] = w
  return out


def _adam(lr, wd, decoupled, b1=0.9, b2=0.999, eps=1e-8):
  """Adam (Kingma and Ba 2015, Algorithm 1) with L2 in the gradient, or AdamW
  (Loshchilov and Hutter 2019): ``w -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * w)``."""
  out = {}
  for name, w in PARAMS.items():
    w, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for t, grads in enumerate(GRADS, start=1):
      g = grads[name] + (0.0 if decoupled else _decay(name, wd) * w)
      m = b1 * m + (1 - b1) * g
      v = b2 * v + (1 - b2) * g * g
      step = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
      w = w - lr * (step + (_decay(name, wd) * w if decoupled else 0.0))
    out[name] = w
  return out


@pytest.mark.parametrize('config,expected', [
    (dict(name='sgd', learning_rate=0.1, momentum=0.9, nesterov=True),
     _nesterov_sgd(0.1, 0.9, 0.0)),
    (dict(name='sgd', learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
     _nesterov_sgd(0.1, 0.9, 0.05)),
    (dict(name='adam', learning_rate=0.01), _adam(0.01, 0.0, decoupled=False)),
    (dict(name='adam', learning_rate=0.01, weight_decay=0.1), _adam(0.01, 0.1, decoupled=False)),
    (dict(name='adamw', learning_rate=0.01, weight_decay=0.1), _adam(0.01, 0.1, decoupled=True)),
], ids=['nesterov', 'nesterov-wd', 'adam', 'adam-l2', 'adamw'])
def test_update_rule_against_hand_computed_steps(config, expected):
  got = _run(_opt_config(**config))
  for name in PARAMS:
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7)


def test_adamw_decay_is_decoupled_from_the_adaptive_scaling():
  # With a zero gradient Adam's step is 0/(0 + eps) = 0, so AdamW moves a kernel by
  # exactly -lr*wd*w per step; L2-in-the-gradient Adam would move it by about -lr.
  config = _opt_config(name='adamw', learning_rate=0.01, weight_decay=0.1)
  tx = optim.make_optimizer(config, total_steps=10)
  params = {'kernel': jnp.full((2, 2), 3.0)}
  updates, _ = tx.update({'kernel': jnp.zeros((2, 2))}, tx.init(params), params)
  np.testing.assert_allclose(updates['kernel'], -0.01 * 0.1 * 3.0, rtol=1e-6)


def test_schedules_against_hand_values():
  warm = optim.make_schedule(_opt_config(warmup_steps=10), 100)
  assert float(warm(0)) == 0.0 and abs(float(warm(5)) - 0.5) < 1e-6 and float(warm(50)) == 1.0
  piece = optim.make_schedule(_opt_config(schedule='piecewise', boundaries=(0.5, 0.75),
                                          decay_factor=0.1), 100)
  np.testing.assert_allclose([float(piece(s)) for s in (0, 49, 51, 74, 76, 99)],
                             [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
  cosine = optim.make_schedule(_opt_config(schedule='cosine'), 100)
  np.testing.assert_allclose([float(cosine(s)) for s in (0, 50, 100)], [1, 0.5, 0], atol=1e-6)
  with pytest.raises(ValueError, match="schedule='linear' is unknown"):
    optim.make_schedule(_opt_config(schedule='linear'), 10)
  with pytest.raises(ValueError, match="name='rmsprop' is unknown"):
    optim.make_optimizer(_opt_config(name='rmsprop'), 10)


@pytest.mark.parametrize('warmup', [0, 10])
def test_piecewise_boundaries_are_fractions_of_the_whole_run(warmup):
  # 100 steps, boundaries 0.5 and 0.75: the decays land on steps 50 and 75 with or
  # without a warm-up (as "/10 at 32k and 48k of 64k iterations" in resnet20_cifar10).
  schedule = optim.make_schedule(_opt_config(schedule='piecewise', boundaries=(0.5, 0.75),
                                             decay_factor=0.1, warmup_steps=warmup), 100)
  steps = (9, 10, 49, 50, 74, 75, 99)
  expected = [0.9 if warmup else 1, 1, 1, 0.1, 0.1, 0.01, 0.01]
  np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, rtol=1e-6)


def test_piecewise_boundary_inside_the_warm_up_is_an_error():
  with pytest.raises(ValueError, match=r'first decay at step 10 of 100, inside the warm-up '
                                       r'of 20 steps'):
    optim.make_schedule(_opt_config(schedule='piecewise', boundaries=(0.1,),
                                    warmup_steps=20), 100)


@pytest.mark.parametrize('name', ['sgd', 'adamw'])
def test_weight_decay_skips_biases(name):
  params = {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones((2,))}
  tx = optim.make_optimizer(_opt_config(name=name, learning_rate=0.1, weight_decay=0.5), 10)
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  assert float(jnp.abs(updates['bias']).max()) == 0.0
  assert float(updates['kernel'][0, 0]) == pytest.approx(-0.05)  # -lr * wd * w


def test_grad_clipping_bounds_the_update():
  tx = optim.make_optimizer(_opt_config(grad_clip_norm=1.0), 10)
  params = {'w': jnp.zeros(4)}
  updates, _ = tx.update({'w': jnp.full(4, 10.0)}, tx.init(params), params)
  assert float(jnp.linalg.norm(updates['w'])) == pytest.approx(1.0, rel=1e-5)


def test_label_smoothing_matches_the_formula():
  # The label's logit is not the mean of the logits: there the loss is the same for
  # every eps and a wrong smoothing would pass.
  logits = jnp.array([[2.0, 0.3, -1.0]])
  eps, k = 0.1, 3
  logp = jax.nn.log_softmax(logits)[0]
  expected = -((1 - eps) * logp[1] + eps / k * logp.sum())
  np.testing.assert_allclose(cross_entropy(logits, jnp.array([1]), eps)[0], expected,
                             rtol=1e-6)


def test_label_smoothing_against_numpy_log_softmax():
  # Targets (1 - eps) on the label plus eps/K everywhere (Szegedy et al. 2016, 7),
  # log-probabilities from a numpy log-sum-exp: no JAX on the expected side.
  logits = np.array([[2.0, 0.5, -1.0, 0.0], [-3.0, 1.0, 1.5, 0.2]])
  labels, eps = np.array([1, 3]), 0.2
  shifted = logits - logits.max(axis=1, keepdims=True)
  logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  targets = np.full(logits.shape, eps / logits.shape[1])
  targets[np.arange(2), labels] += 1 - eps
  expected = -(targets * logp).sum(axis=1)
  np.testing.assert_allclose(cross_entropy(jnp.asarray(logits, jnp.float32), labels, eps),
                             expected, rtol=1e-6)
  np.testing.assert_allclose(cross_entropy(jnp.asarray(logits, jnp.float32), labels),
                             -logp[np.arange(2), labels], rtol=1e-6)
