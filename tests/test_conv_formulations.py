"""conv.record_formulations: the record of which formulation each traced convolution chose."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.ops import conv2d

# `from cnn_jax.ops import conv` is the function; the module is what gets patched.
conv_module = sys.modules['cnn_jax.ops.conv']

# (x shape, kernel shape, stride, the CPU-only formulation the shapes select on CPU)
CASES = [((2, 12, 12, 1), (5, 5, 1, 6), 1, 'space_to_depth'),
         ((2, 12, 12, 1), (3, 3, 1, 6), 1, 'channel_widening'),
         ((2, 8, 8, 16), (3, 3, 16, 32), 2, 'input_grad_col2im')]


def _record(x_shape, w_shape, stride):
  rng = np.random.default_rng(0)
  x, w = (jnp.asarray(rng.standard_normal(s), jnp.float32) for s in (x_shape, w_shape))
  loss = lambda x, w: jnp.sum(conv2d(x, w, stride=stride, padding='SAME') ** 2)
  with conv_module.record_formulations() as names:
    jax.grad(loss, (0, 1))(x, w)
  return names


@pytest.mark.parametrize('x_shape,w_shape,stride,cpu_only', CASES)
def test_cpu_only_formulations_are_recorded_on_cpu_and_absent_off_it(
    monkeypatch, x_shape, w_shape, stride, cpu_only):
  names = _record(x_shape, w_shape, stride)
  assert cpu_only in names
  assert set(names) - {'fast_grad', 'input_grad_conv'} <= set(
      conv_module.CPU_ONLY_FORMULATIONS)
  monkeypatch.setattr(conv_module, '_on_cpu', lambda: False)
  names = _record(x_shape, w_shape, stride)
  assert not set(names) & set(conv_module.CPU_ONLY_FORMULATIONS)
  assert names == ['fast_grad', 'input_grad_conv']


def test_other_paths_and_nesting():
  x = jnp.ones((1, 5, 5, 4))
  with conv_module.record_formulations() as outer:
    conv2d(x, jnp.ones((5, 5, 4, 3)))  # the kernel covers the input: a matmul
    with conv_module.record_formulations() as inner:
      conv2d(x, jnp.ones((3, 3, 1, 4)), groups=4)  # grouped: XLA's own convolution
      conv2d(x, jnp.ones((3, 3, 4, 3)), fast_grad=False)
  assert outer == ['dense_matmul', 'xla', 'xla'] and inner == ['xla', 'xla']
  conv2d(x, jnp.ones((3, 3, 4, 3)))  # outside every block: recorded nowhere
  assert outer == ['dense_matmul', 'xla', 'xla']
  assert not conv_module._recorders  # pylint: disable=protected-access  (nothing left open)
