"""Times the ops' hot paths against the plain XLA formulation they replace.

  python -m experiments.bench_ops [--batch 256] [--repeats 20]

Prints a markdown table: median milliseconds of a jitted forward+backward, ours vs the
reference, after a warm-up call, with ``block_until_ready``.
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


if __name__ == '__main__':
  main()
