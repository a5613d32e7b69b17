"""Writes ``tests/golden_logits.npz``: every zoo model's logits from the numpy references.

Run from the repository root when an architecture's intended function changes (never to
make a failing test pass)::

    python tests/make_golden.py

For each entry of :data:`GOLDEN` (every registered model at a tiny width, plus
BatchNorm and grouping variants), the inputs and the variables are rebuilt from
:func:`golden_array`, a closed-form function of each array's name, and the logits come
from the float64 numpy forward passes in ``tests/references.py``. JAX only traces the
model for its parameter names and shapes (``jax.eval_shape``); no cnn_jax op computes a
value here. The file keeps those names and shapes beside the logits, so
``tests/test_zoo.py`` can tell a renamed or reshaped parameter from a wrong value.
"""

from __future__ import annotations

import json
import math
import os
import sys
import zlib

import numpy as np

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden_logits.npz')
BATCH = 2

_RESNET = dict(stage_features=(4, 8, 16, 32), stem_features=4, num_classes=10)
_CIFAR = dict(stage_features=(4, 8, 16), stem_features=4)
_ONE = dict(stage_sizes=(1, 1, 1, 1))
_ONE_CIFAR = dict(stage_sizes=(1, 1, 1))
# Dropout everywhere it exists: evaluation must switch it off.
GOLDEN = {
    # key: (registry name, fields, input shape (no batch))
    'mlp': ('mlp', dict(hidden=(16, 8), dropout_rate=0.5, activation='elu'), (6, 6, 1)),
    'simple_cnn': ('simple_cnn', dict(features=(4, 6), hidden=(8,), batch_norm=(True, False),
                                      pool=('max', 'avg'), dropout_rate=0.5), (12, 12, 1)),
    'cnn1d': ('cnn1d', dict(features=(4, 4, 4)), (40, 1)),
    'lenet5': ('lenet5', dict(features=(2, 4, 8), hidden=(8,), dropout_rate=0.5), (28, 28, 1)),
    'alexnet': ('alexnet', dict(features=(4, 8, 8, 8, 8), groups=(1, 2, 1, 2, 2),
                                hidden=(16, 16), num_classes=10), (63, 63, 3)),
    'alexnet_small': ('alexnet_small', dict(features=(4, 8, 8, 8, 8), hidden=(16, 16)),
                      (32, 32, 3)),
    'googlenet': ('googlenet', dict(width=1 / 16, num_classes=10), (32, 32, 3)),
    'googlenet_bn': ('googlenet', dict(width=1 / 16, num_classes=10, batch_norm=True,
                                       branch3_kernel=3), (32, 32, 3)),
    'resnet18': ('resnet18', dict(_RESNET, dropout_rate=0.5), (32, 32, 3)),
    'resnet34': ('resnet34', dict(_RESNET, **_ONE), (32, 32, 3)),
    'resnet50': ('resnet50', dict(_RESNET, **_ONE), (32, 32, 3)),
    'resnet101': ('resnet101', dict(_RESNET, stage_sizes=(1, 2, 1, 1)), (32, 32, 3)),
    'resnet152': ('resnet152', dict(_RESNET, stride_in_1x1=True, **_ONE), (32, 32, 3)),
    'resnet20': ('resnet20', _CIFAR, (16, 16, 3)),
    'resnet32': ('resnet32', dict(_CIFAR, **_ONE_CIFAR), (16, 16, 3)),
    'resnet44': ('resnet44', dict(_CIFAR, stem_pool='max', **_ONE_CIFAR), (16, 16, 3)),
    'resnet56': ('resnet56', dict(_CIFAR, stage_strides=(1, 3, 2), **_ONE_CIFAR), (16, 16, 3)),
    'resnet110': ('resnet110', dict(_CIFAR, shortcut='B', **_ONE_CIFAR), (16, 16, 3)),
}


def golden_array(name: str, shape) -> np.ndarray:
  """A float32 array that is a closed-form function of its name and shape.

  Uniform-looking values from the fractional part of a scaled sine (the same on every
  machine and numpy version, unlike a random generator's stream), shifted by a CRC of
  the name so that no two arrays are equal. Kernels get variance ``1 / fan_in`` so
  activations keep their scale through the depth; BatchNorm statistics and scales are
  away from their initial values so that a skipped normalisation shows; inputs and
  biases are in [-1, 1) and [-0.1, 0.1).

  Args:
    name: ``'input'`` or a variable's path, e.g. ``'params/conv1/kernel'``.
    shape: the array's shape.

  Returns:
    The array.
  """
  t = np.arange(math.prod(shape), dtype=np.float64)
  u = np.sin(t * 12.9898 + (zlib.crc32(name.encode()) % 100003) * 78.233) * 43758.5453
  u = (u - np.floor(u)).reshape(shape)  # in [0, 1)
  leaf = name.rsplit('/', 1)[-1]
  if leaf in ('scale', 'var'):
    values = 0.5 + u
  elif leaf in ('bias', 'mean'):
    values = 0.2 * u - 0.1
  elif leaf == 'kernel':
    values = (2 * u - 1) * math.sqrt(3 / math.prod(shape[:-1]))
  else:
    values = 2 * u - 1
  return values.astype(np.float32)


def golden_variables(shapes: dict) -> dict:
  """``golden_array`` values for nested ``{collection: {layer: {name: shape}}}``."""
  def fill(tree, prefix):
    if isinstance(tree, dict):
      return {k: fill(v, f'{prefix}/{k}' if prefix else k) for k, v in tree.items()}
    return golden_array(prefix, tuple(tree))
  return fill(shapes, '')


def variable_shapes(model, input_shape) -> dict:
  """The model's variable shapes as nested dicts of tuples (traced, not computed)."""
  import jax
  import jax.numpy as jnp
  from flax.core import unfreeze
  traced = jax.eval_shape(model.init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
  return jax.tree.map(lambda s: tuple(s.shape), unfreeze(traced))


def _reference_logits(model_name, model, variables, x):
  """The numpy forward pass for one entry; ``model`` supplies the preset's settings."""
  import references as ref
  p, s = variables['params'], variables.get('batch_stats', {})
  if model_name == 'mlp':
    return ref.mlp_ref(p, x, model.hidden, model.activation)
  if model_name in ('simple_cnn', 'cnn1d'):
    n = len(model.features)
    each = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * n
    return ref.simple_cnn_ref(p, s, x, n, each(model.kernel_size), each(model.strides),
                              each(model.padding), each(model.pool),
                              each(model.pool_window), model.hidden, model.activation)
  if model_name == 'lenet5':
    return ref.lenet5_ref(p, x, model.hidden, model.activation, model.pool)
  if model_name.startswith('alexnet'):
    groups = model.groups if isinstance(model.groups, tuple) else (model.groups,) * 5
    return ref.alexnet_ref(p, x, groups, model.stem_stride, model.stem_padding, model.hidden)
  if model_name == 'googlenet':
    blocks = ('3a', '3b', '4a', '4b', '4c', '4d', '4e', '5a', '5b')
    return ref.googlenet_ref(p, s, x, blocks, model.bn_epsilon)
  return ref.resnet_ref(p, s, x, model.stage_sizes, model.stage_strides, model.block,
                        model.shortcut, model.stem_stride, model.stem_pool,
                        model.stride_in_1x1, model.bn_epsilon)


def main() -> None:
  # Run as a script, only tests/ is on the path; cnn_jax is in the repository root.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from cnn_jax import models
  arrays, meta = {}, {}
  for key, (model_name, fields, input_shape) in GOLDEN.items():
    model = models.create(model_name, **fields)
    shapes = variable_shapes(model, input_shape)
    x = golden_array('input', (BATCH, *input_shape))
    logits = _reference_logits(model_name, model, golden_variables(shapes), x)
    arrays[key] = logits.astype(np.float32)
    meta[key] = dict(model=model_name, fields=fields, input_shape=input_shape, shapes=shapes)
    print(f'{key}: logits {logits.shape}, |logits| max {np.abs(logits).max():.3f}')
  np.savez_compressed(PATH, meta=json.dumps(meta), **arrays)
  print(f'wrote {PATH} ({os.path.getsize(PATH)} bytes)')


if __name__ == '__main__':
  main()
