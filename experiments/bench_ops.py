"""Times the ops' hot paths against the plain XLA formulation they replace.

  python -m experiments.bench_ops [--batch 256] [--repeats 20]

Prints markdown tables: median milliseconds of a jitted forward+backward, ours vs the
reference, after a warm-up call, with ``block_until_ready``. Convolution gradients are
timed both in a standalone ``jit`` and per iteration of a ``lax.scan`` (how a
multi-step call runs them), with our custom VJP and with XLA's own gradients.
"""

import argparse
import platform

import jax
import jax.numpy as jnp
from jax import lax

from cnn_jax import ops
from cnn_jax.benchmark import median_window


def _median_ms(fn, x, repeats):
  jax.block_until_ready(fn(x))  # compile and warm up
  median_s, _ = median_window(lambda: jax.block_until_ready(fn(x)), repeats)
  return median_s * 1e3


def _reduce_window_max_pool(x):
  # What nn.max_pool does; its gradient lowers to select_and_scatter.
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID')


def _conv_grads(fast_grad: bool, scan_length: int):
  """Gradients of a 3x3 SAME conv w.r.t. input and kernel; scanned when length > 1."""
  def grads(x, kernel):
    return jax.grad(lambda x, k: jnp.sum(jnp.sin(ops.conv2d(x, k, padding='SAME',
                                                            fast_grad=fast_grad))),
                    (0, 1))(x, kernel)
  if scan_length == 1:
    return jax.jit(lambda args: grads(*args))

  def scanned(args):
    def body(carry, _):
      dx, dk = grads(*carry)
      # Feed the gradients back so no iteration can be hoisted out of the loop.
      return (carry[0] + 1e-3 * dx, carry[1] + 1e-3 * dk), None
    return lax.scan(body, args, None, length=scan_length)[0]
  return jax.jit(scanned)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--repeats', type=int, default=20)
  args = parser.parse_args()
  cases = [('max_pool 2x2/2, 28x28x32', (args.batch, 28, 28, 32)),
           ('max_pool 2x2/2, 14x14x64', (args.batch, 14, 14, 64))]
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}, {platform.processor() or platform.machine()}, '
        f'batch {args.batch}, median of {args.repeats}')
  print('| op (forward + backward) | ours ms | reduce_window ms | speed-up |')
  print('|---|---|---|---|')
  for name, shape in cases:
    x = jax.random.normal(jax.random.key(0), shape)
    ours = jax.jit(jax.grad(lambda x: jnp.sum(ops.max_pool(x, (2, 2)) ** 2)))
    ref = jax.jit(jax.grad(lambda x: jnp.sum(_reduce_window_max_pool(x) ** 2)))
    t_ours = _median_ms(ours, x, repeats=args.repeats)
    t_ref = _median_ms(ref, x, repeats=args.repeats)
    print(f'| {name} | {t_ours:.2f} | {t_ref:.2f} | {t_ref / t_ours:.1f}x |')

  scan = 10
  print('\n| conv2d 3x3 SAME, grads of input and kernel | custom VJP ms | XLA grads ms | '
        'speed-up |')
  print('|---|---|---|---|')
  for size, c_in, c_out in ((28, 1, 32), (14, 32, 64), (14, 16, 32)):
    inputs = (jax.random.normal(jax.random.key(0), (args.batch, size, size, c_in)),
              jax.random.normal(jax.random.key(1), (3, 3, c_in, c_out)))
    for where, length in (('jit', 1), (f'lax.scan, per step of {scan}', scan)):
      # XLA's scanned gradients take seconds per call: a few repeats tell the story.
      repeats = args.repeats if length == 1 else min(args.repeats, 3)
      t = [_median_ms(_conv_grads(fast, length), inputs, repeats) / length
           for fast in (True, False)]
      print(f'| {size}x{size}, {c_in}->{c_out}, {where} | {t[0]:.2f} | {t[1]:.2f} | '
            f'{t[1] / t[0]:.1f}x |')


if __name__ == '__main__':
  main()
