"""Times the ops' hot paths against the plain XLA formulation they replace.

  python -m experiments.bench_ops [--batch 256] [--repeats 20]
  python -m experiments.bench_ops --tables torch --batch 128   # needs requirements-bench.txt

Prints markdown tables: median milliseconds of a jitted forward+backward, ours vs the
reference, after a warm-up call, with ``block_until_ready``. Convolution gradients are
timed both in a standalone ``jit`` and per iteration of a ``lax.scan`` (how a
multi-step call runs them), with our custom VJP and with XLA's own gradients. The
``torch`` table times ResNet-20's 3x3 convolutions against PyTorch's ``conv2d`` on the
same CPUs, with a large matmul as the yardstick of each framework's arithmetic.
"""

import argparse
import platform

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_jax import ops
from cnn_jax.benchmark import median_window
from experiments import cli


def _median_ms(fn, x, repeats):
  return _median_call_ms(lambda: jax.block_until_ready(fn(x)), repeats)


def _median_call_ms(call, repeats):
  call()  # compile and warm up
  median_s, _ = median_window(call, repeats)
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


def _pool_table(batch, repeats):
  cases = [('max_pool 2x2/2, 28x28x32', (batch, 28, 28, 32)),
           ('max_pool 2x2/2, 14x14x64', (batch, 14, 14, 64))]
  print('| op (forward + backward) | ours ms | reduce_window ms | speed-up |')
  print('|---|---|---|---|')
  for name, shape in cases:
    x = jax.random.normal(jax.random.key(0), shape)
    ours = jax.jit(jax.grad(lambda x: jnp.sum(ops.max_pool(x, (2, 2)) ** 2)))
    ref = jax.jit(jax.grad(lambda x: jnp.sum(_reduce_window_max_pool(x) ** 2)))
    t_ours = _median_ms(ours, x, repeats=repeats)
    t_ref = _median_ms(ref, x, repeats=repeats)
    print(f'| {name} | {t_ours:.2f} | {t_ref:.2f} | {t_ref / t_ours:.1f}x |')


def _conv_grads_table(batch, repeats):
  scan = 10
  print('| conv2d 3x3 SAME, grads of input and kernel | custom VJP ms | XLA grads ms | '
        'speed-up |')
  print('|---|---|---|---|')
  for size, c_in, c_out in ((28, 1, 32), (14, 32, 64), (14, 16, 32)):
    inputs = (jax.random.normal(jax.random.key(0), (batch, size, size, c_in)),
              jax.random.normal(jax.random.key(1), (3, 3, c_in, c_out)))
    for where, length in (('jit', 1), (f'lax.scan, per step of {scan}', scan)):
      # XLA's scanned gradients take seconds per call: a few repeats tell the story.
      n = repeats if length == 1 else min(repeats, 3)
      t = [_median_ms(_conv_grads(fast, length), inputs, n) / length
           for fast in (True, False)]
      print(f'| {size}x{size}, {c_in}->{c_out}, {where} | {t[0]:.2f} | {t[1]:.2f} | '
            f'{t[1] / t[0]:.1f}x |')


def _conv_forward_and_grads(x, kernel, dy):
  """The forward conv and the VJP of both arguments, as a train step needs them."""
  y, vjp = jax.vjp(lambda x, k: ops.conv2d(x, k, padding='SAME'), x, kernel)
  return y, vjp(dy)


def _torch_table(batch, repeats):
  torch_reference = cli.load_torch_reference()
  torch = torch_reference.torch
  threads = torch_reference.default_num_threads()
  torch.set_num_threads(threads)
  print(f'PyTorch {torch.__version__}, {threads} threads, NCHW\n')
  print('| 3x3 SAME conv (ResNet-20 stage) | ours fwd ms | PyTorch fwd ms | '
        'ours fwd+grads ms | PyTorch fwd+grads ms | ours/PyTorch speed, fwd+grads |')
  print('|---|---|---|---|---|---|')
  forward = jax.jit(lambda x, k: ops.conv2d(x, k, padding='SAME'))
  forward_and_grads = jax.jit(_conv_forward_and_grads)
  rng = np.random.default_rng(0)
  for size, channels in ((32, 16), (16, 32), (8, 64), (28, 16), (14, 32), (7, 64)):
    x = rng.standard_normal((batch, size, size, channels), np.float32)
    kernel = rng.standard_normal((3, 3, channels, channels), np.float32) / 10
    dy = rng.standard_normal(x.shape[:-1] + (channels,), np.float32)
    t_fwd, t_all = (_median_call_ms(lambda: jax.block_until_ready(f(*a)), repeats)
                    for f, a in ((forward, (x, kernel)), (forward_and_grads, (x, kernel, dy))))
    ref_fwd, ref_all = (_median_call_ms(f, repeats)
                        for f in torch_reference.conv2d_calls(x, kernel, dy, padding=1))
    print(f'| {size}x{size}, {channels}->{channels} | {t_fwd:.2f} | {ref_fwd:.2f} | '
          f'{t_all:.2f} | {ref_all:.2f} | {ref_all / t_all:.2f}x |')
  n = 2048
  a, b = (rng.standard_normal((n, n), np.float32) for _ in range(2))
  matmul = jax.jit(jnp.matmul)
  t = _median_call_ms(lambda: jax.block_until_ready(matmul(a, b)), repeats)
  ta, tb = torch.from_numpy(a), torch.from_numpy(b)
  ref = _median_call_ms(lambda: ta @ tb, repeats)
  gflop = 2 * n ** 3 / 1e9
  print(f'\nmatmul {n}x{n}x{n}: ours {t:.1f} ms ({gflop / t * 1e3:.0f} GFLOP/s), '
        f'PyTorch {ref:.1f} ms ({gflop / ref * 1e3:.0f} GFLOP/s)')


_TABLES = {'pool': _pool_table, 'conv_grads': _conv_grads_table, 'torch': _torch_table}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--repeats', type=int, default=20)
  parser.add_argument('--tables', default='pool,conv_grads',
                      help=f'comma list of tables to print, from {",".join(_TABLES)}')
  args = parser.parse_args()
  tables = args.tables.split(',')
  unknown = sorted(set(tables) - set(_TABLES))
  if unknown:
    parser.error(f'unknown --tables {unknown}; choose from {list(_TABLES)}')
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}, '
        f'{platform.processor() or platform.machine()}, batch {args.batch}, '
        f'median of {args.repeats}\n')
  for name in tables:
    _TABLES[name](args.batch, args.repeats)
    print()


if __name__ == '__main__':
  main()
