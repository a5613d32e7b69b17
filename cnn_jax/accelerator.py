"""The accelerator check: correctness, speed and time to accuracy on one device, in minutes.

  python -m experiments.accelerator_check --out DIR [--dry_run] [--budget_s 480]

GPU time is short, so one command does what a first session on a new device needs,
and writes ``results.json`` and ``results.md`` in ``DIR`` after every item, so a run
stopped from outside keeps what it finished. The parts, in order:

1. **Correctness** (:func:`check_ops`): every op of :mod:`cnn_jax.ops`, values and
   gradients (the custom VJP/JVP rules included), against ``jax.vjp`` of XLA's own op
   (``lax.conv_general_dilated``, ``lax.reduce_window``, ``jnp.convolve``) on the same
   backend, in float32 (``Precision.HIGHEST`` on both sides, so TF32 or bf16 passes do
   not blur the comparison) and bfloat16 (default precision). Dropout has no XLA
   twin; it is checked against its definition (kept values ``x / (1 - p)``, the
   gradient the same mask, the kept fraction).
2. **Formulations** (:func:`formulation_verdict`): which convolution formulation every
   traced call chose (:func:`cnn_jax.ops.conv.record_formulations`). On GPU/TPU none of
   the CPU-only ones (channel widening, space-to-depth, col2im) may run; on CPU the
   cases built to trigger them must show them, so the record is known to work.
3. **Training matches CPU** (:func:`training_match`): a few steps of a config's train
   step on the device and on ``jax.devices('cpu')`` from the same state and batches
   (learning rate 1e-3, where last-bit differences stay small); per-step losses and
   final parameters must agree within tolerance. On a CPU-only machine both runs are
   on the CPU (the part still runs; it then compares a run with itself).
4. **Speed**: ResNet-50 (224x224, bfloat16 compute, batch 256) and ResNet-20 (32x32,
   float32, batch 512) train images/s through :func:`cnn_jax.benchmark.benchmark_case`
   (the training loop's own step), the model FLOPs utilisation against the device's
   published peak (:data:`PEAK_TFLOPS`), and the same models in PyTorch when a
   reference is given (channels_last, bf16 autocast where we compute in bf16,
   ``torch.compile`` where it works, else eager), with the ratio.
5. **Time to accuracy**: configs trained by ``train_and_evaluate`` to their targets
   (the Fashion-MNIST 91% and 93% configs), data read without TensorFlow
   (``dataset.reader = 'files'``).

``--budget_s``: an item starts only when the time left exceeds its estimate
(:data:`ESTIMATE_S`, rough figures for an H100-class GPU); an item in flight is not
interrupted. What did not fit is recorded with the reason. ``--dry_run`` runs every
part at tiny sizes with no estimates (on the 2-core CPU machine about 45 s of CPU time).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import importlib.metadata
import math
import os
import subprocess
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from cnn_jax import benchmark, ops, provenance
from cnn_jax.ops.conv import CPU_ONLY_FORMULATIONS, record_formulations
from cnn_jax.train import sharding
from cnn_jax.train.trainer import Trainer

# Published dense (no 2:4 sparsity) peak TFLOP/s per chip, looked up by a lowercase
# substring of ``device_kind`` (first match wins, so the more specific names come
# first). 'bf16': bfloat16 tensor cores / MXU. 'f32': what float32 matmuls and
# convolutions run on at JAX's default precision: TF32 tensor cores on NVIDIA Ampere
# and later, one bfloat16 MXU pass on TPU. NVIDIA datasheets quote sparse figures with
# an asterisk; the dense figure is half of it.
PEAK_TFLOPS = (
    # https://www.nvidia.com/en-us/data-center/h200/ (BF16 1,979* / 1,671*; TF32 989* / 835*)
    {'match': 'h200 nvl', 'name': 'NVIDIA H200 NVL', 'bf16': 835.5, 'f32': 417.5,
     'source': 'https://www.nvidia.com/en-us/data-center/h200/'},
    {'match': 'h200', 'name': 'NVIDIA H200 SXM', 'bf16': 989.5, 'f32': 494.5,
     'source': 'https://www.nvidia.com/en-us/data-center/h200/'},
    # https://www.nvidia.com/en-us/data-center/h100/ (BF16 SXM 1,979*, NVL 1,671*, PCIe 1,513*)
    {'match': 'h100 nvl', 'name': 'NVIDIA H100 NVL', 'bf16': 835.5, 'f32': 417.5,
     'source': 'https://www.nvidia.com/en-us/data-center/h100/'},
    {'match': 'h100 pcie', 'name': 'NVIDIA H100 PCIe', 'bf16': 756.5, 'f32': 378.0,
     'source': 'https://www.nvidia.com/en-us/data-center/h100/'},
    {'match': 'h100', 'name': 'NVIDIA H100 SXM', 'bf16': 989.5, 'f32': 494.5,
     'source': 'https://www.nvidia.com/en-us/data-center/h100/'},
    # https://www.nvidia.com/en-us/data-center/a100/ (BF16 312, TF32 156; both form factors)
    {'match': 'a100', 'name': 'NVIDIA A100', 'bf16': 312.0, 'f32': 156.0,
     'source': 'https://www.nvidia.com/en-us/data-center/a100/'},
    # https://www.nvidia.com/en-us/data-center/l40s/ (BF16 362.05, TF32 183)
    {'match': 'l40s', 'name': 'NVIDIA L40S', 'bf16': 362.05, 'f32': 183.0,
     'source': 'https://www.nvidia.com/en-us/data-center/l40s/'},
    # https://www.nvidia.com/en-us/data-center/l4/ (BF16 242*, TF32 120*)
    {'match': 'l4', 'name': 'NVIDIA L4', 'bf16': 121.0, 'f32': 60.0,
     'source': 'https://www.nvidia.com/en-us/data-center/l4/'},
    # Volta has no bfloat16 or TF32 tensor cores (FP16 125 TFLOP/s, FP32 15.7): no MFU.
    {'match': 'v100', 'name': 'NVIDIA V100', 'bf16': None, 'f32': 15.7,
     'source': 'https://www.nvidia.com/en-us/data-center/v100/'},
    # https://cloud.google.com/tpu/docs/v4 (275), /v5e (197), /v5p (459), /v6e (918).
    {'match': 'tpu v4', 'name': 'TPU v4', 'bf16': 275.0, 'f32': 275.0,
     'source': 'https://cloud.google.com/tpu/docs/v4'},
    {'match': 'tpu v5 lite', 'name': 'TPU v5e', 'bf16': 197.0, 'f32': 197.0,
     'source': 'https://cloud.google.com/tpu/docs/v5e'},
    {'match': 'tpu v5', 'name': 'TPU v5p', 'bf16': 459.0, 'f32': 459.0,
     'source': 'https://cloud.google.com/tpu/docs/v5p'},
    {'match': 'tpu v6 lite', 'name': 'TPU v6e', 'bf16': 918.0, 'f32': 918.0,
     'source': 'https://cloud.google.com/tpu/docs/v6e'},
)

# Seconds an item is expected to take on an H100-class GPU (compile included); an item
# starts only with more than this left in the budget. Rough: set from the sizes, to be
# replaced by the first real run's numbers.
ESTIMATE_S = {'ops': 20, 'op': 2, 'training': 30, 'speed resnet50': 90, 'speed resnet20': 45,
              'torch resnet50': 120, 'torch resnet20': 60, 'time_to_accuracy': 45}

TOLERANCE = {'float32': 1e-4, 'bfloat16': 3e-2}
TRAINING_TOLERANCE = 1e-2
TRAINING_LEARNING_RATE = 1e-3
VERDICT = {True: 'all checks passed',
           False: 'A CHECK FAILED OR DID NOT RUN (see Errors and Skipped)'}


def peak_flops(device_kind: str) -> dict | None:
  """The :data:`PEAK_TFLOPS` entry whose ``match`` is in ``device_kind`` (any case)."""
  kind = device_kind.lower()
  return next((dict(e) for e in PEAK_TFLOPS if e['match'] in kind), None)


class Budget:
  """Wall-clock budget: an item starts only if more than its estimate is left.

  Args:
    seconds: the whole budget.
    clock: a monotonic clock (tests pass a fake one).
  """

  def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
    self.seconds, self.clock, self.start = seconds, clock, clock()

  def left(self) -> float:
    return self.seconds - (self.clock() - self.start)

  def refuse(self, estimate_s: float) -> str | None:
    """None if an item estimated at ``estimate_s`` may start, else why not."""
    left = self.left()
    if left <= 0 or left <= estimate_s:
      return (f'budget: {max(left, 0):.0f} s of {self.seconds:.0f} s left, item estimated '
              f'at {estimate_s:.0f} s')
    return None


# ---------------------------------------------------------------------------------------
# Correctness of the ops against XLA's own.


@dataclasses.dataclass(frozen=True)
class OpCase:
  """One op call and XLA's own version of it.

  Attributes:
    op: the op's name in :mod:`cnn_jax.ops`.
    name: what the case exercises.
    shapes: shapes of the differentiable arguments (all normal random).
    ours: ``f(*args, precision) -> y`` through :mod:`cnn_jax.ops`.
    ref: the same through XLA's op (``lax``/``jnp``); None for an analytic check.
  """
  op: str
  name: str
  shapes: tuple
  ours: Callable
  ref: Callable | None


def _lax_conv(x, w, *, stride=1, padding='VALID', dilation=1, groups=1, precision=None):
  nsp = w.ndim - 2
  letters = 'DHW'[-nsp:]
  dn = (f'N{letters}C', f'{letters}IO', f'N{letters}C')
  return lax.conv_general_dilated(
      x, w, (stride,) * nsp, padding if isinstance(padding, str) else [(padding,) * 2] * nsp,
      rhs_dilation=(dilation,) * nsp, dimension_numbers=dn, feature_group_count=groups,
      precision=precision)


def _conv_case(name, x_shape, w_shape, **kw) -> OpCase:
  op = {3: 'conv1d', 4: 'conv2d', 5: 'conv'}[len(x_shape)]
  fn = getattr(ops, op)
  return OpCase(op, name, (x_shape, w_shape),
                lambda x, w, precision: fn(x, w, precision=precision, **kw),
                lambda x, w, precision: _lax_conv(x, w, precision=precision, **kw))


def _pool_ref(x, reducer, window, stride, padding):
  init = -jnp.inf if reducer is lax.max else 0.0
  pads = [(0, 0)] + [(padding, padding)] * (x.ndim - 2) + [(0, 0)]
  return lax.reduce_window(x, np.array(init, x.dtype), reducer, (1, *window, 1),
                           (1, *stride, 1), pads)


def _avg_exclude_pad_ref(x, window, stride, padding):
  total = _pool_ref(x, lax.add, window, stride, padding)
  return total / _pool_ref(jnp.ones_like(x), lax.add, window, stride, padding)


def op_cases(small: bool = False) -> list[OpCase]:
  """The cases of :func:`check_ops`: each op, each formulation the shapes select.

  Args:
    small: tiny shapes (the dry run); the same formulations are selected.
  """
  n, s = (2, 12) if small else (8, 28)  # batch, image size
  h = s // 2
  return [
      _conv_case('1->6 5x5 SAME (space-to-depth on CPU)', (n, s, s, 1), (5, 5, 1, 6),
                 padding='SAME'),
      _conv_case('1->6 3x3 pad 1 (channel widening on CPU)', (n, s, s, 1), (3, 3, 1, 6),
                 padding=1),
      _conv_case('16->32 3x3 stride 2 SAME (col2im input gradient on CPU)',
                 (n, h, h, 16), (3, 3, 16, 32), stride=2, padding='SAME'),
      _conv_case('16->16 3x3 dilation 2 SAME', (n, h, h, 16), (3, 3, 16, 16), dilation=2,
                 padding='SAME'),
      _conv_case('32->64 1x1 stride 2 (projection shortcut)', (n, h, h, 32), (1, 1, 32, 64),
                 stride=2),
      _conv_case('3->64 7x7 stride 2 pad 3 (ResNet-50 stem)', (n, 2 * s, 2 * s, 3),
                 (7, 7, 3, 64), stride=2, padding=3),
      _conv_case('16->16 3x3 depthwise (groups=16)', (n, h, h, 16), (3, 3, 1, 16),
                 padding='SAME', groups=16),
      _conv_case('16->120 5x5 over a 5x5 input (dense matmul)', (n, 5, 5, 16),
                 (5, 5, 16, 120)),
      _conv_case('1-D 1->8 k5 stride 2', (n, 5 * s, 1), (5, 1, 8), stride=2),
      _conv_case('3-D 2->4 3x3x3 SAME', (n // 2 or 1, 6, 6, 6, 2), (3, 3, 3, 2, 4),
                 padding='SAME'),
      OpCase('convolve1d', 'full mode vs jnp.convolve', ((5 * s,), (7,)),
             lambda a, v, precision: ops.convolve1d(a, v),
             lambda a, v, precision: jnp.convolve(a, v, precision=precision)),
      OpCase('max_pool', '2x2 stride 2 (blocks, custom JVP)', ((n, h, h, 8),),
             lambda x, precision: ops.max_pool(x, (2, 2)),
             lambda x, precision: _pool_ref(x, lax.max, (2, 2), (2, 2), 0)),
      OpCase('max_pool', '3x3 stride 2 pad 1 (reduce_window)', ((n, h, h, 8),),
             lambda x, precision: ops.max_pool(x, (3, 3), stride=2, padding=1),
             lambda x, precision: _pool_ref(x, lax.max, (3, 3), (2, 2), 1)),
      OpCase('max_pool', '1x1 stride 2 (strided slice)', ((n, h, h, 8),),
             lambda x, precision: ops.max_pool(x, (1, 1), stride=2),
             lambda x, precision: _pool_ref(x, lax.max, (1, 1), (2, 2), 0)),
      OpCase('max_pool', '1-D window 2', ((n, 5 * s, 4),),
             lambda x, precision: ops.max_pool(x, (2,)),
             lambda x, precision: _pool_ref(x, lax.max, (2,), (2,), 0)),
      OpCase('avg_pool', '2x2 stride 2', ((n, h, h, 8),),
             lambda x, precision: ops.avg_pool(x, (2, 2)),
             lambda x, precision: _pool_ref(x, lax.add, (2, 2), (2, 2), 0) / 4),
      OpCase('avg_pool', '3x3 stride 1 pad 1, padding not counted', ((n, h, h, 8),),
             lambda x, precision: ops.avg_pool(x, (3, 3), stride=1, padding=1,
                                               count_include_pad=False),
             lambda x, precision: _avg_exclude_pad_ref(x, (3, 3), (1, 1), 1)),
      OpCase('global_avg_pool', 'over H x W', ((n, h, h, 8),),
             lambda x, precision: ops.global_avg_pool(x),
             lambda x, precision: _pool_ref(x, lax.add, (h, h), (1, 1), 0)[:, 0, 0] / h**2),
      OpCase('global_max_pool', 'over H x W', ((n, h, h, 8),),
             lambda x, precision: ops.global_max_pool(x),
             lambda x, precision: _pool_ref(x, lax.max, (h, h), (1, 1), 0)[:, 0, 0]),
      OpCase('dropout', 'rate 0.3 (against its definition)', ((n, h, h, 8),),
             lambda x, precision: ops.dropout(x, 0.3, jax.random.key(1)), None),
  ]


def _max_error(got, want) -> float:
  """max |got - want| relative to max |want| (float64 on the host)."""
  got, want = (np.asarray(a, np.float64) for a in (got, want))
  return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def check_ops(cases: Sequence[OpCase], dtype, seed: int = 0) -> list[dict]:
  """Values and gradients of op cases against their references, on the default backend.

  The gradients are vector-Jacobian products with a fixed random cotangent (in the
  output's dtype) with respect to every argument, so each VJP rule sees a dense
  cotangent. All cases run as one program per side (ours, XLA's): on a CPU that
  compiles in a fraction of the time of one program per case.

  Args:
    cases: from :func:`op_cases`.
    dtype: ``jnp.float32`` (both sides at ``Precision.HIGHEST``) or ``jnp.bfloat16``
      (default precision).
    seed: for the random arguments and cotangents.

  Returns:
    One row per case: ``{'op', 'case', 'dtype', 'value_error', 'grad_errors',
    'max_error', 'tolerance', 'ok', 'formulations'}`` (dropout adds
    ``'kept_fraction'``); errors are max absolute differences relative to the
    reference's largest magnitude, ``formulations`` counts what our convolutions chose.
  """
  dtype = jnp.dtype(dtype)
  precision = lax.Precision.HIGHEST if dtype == jnp.float32 else None
  # Drawn on the host: jax.random would compile its generator for every new shape.
  rng = np.random.default_rng(seed)
  args = [[jnp.asarray(rng.standard_normal(shape, np.float32), dtype) for shape in c.shapes]
          for c in cases]
  cotangents = [jnp.asarray(rng.standard_normal(
      jax.eval_shape(functools.partial(c.ours, precision=precision), *a).shape, np.float32),
      dtype) for c, a in zip(cases, args)]
  chosen = [[] for _ in cases]

  def side(fns):
    def values_and_grads(args, cotangents):
      out = []
      for i, (fn, a, ct) in enumerate(zip(fns, args, cotangents)):
        with record_formulations() as names:  # runs while tracing
          y, vjp = jax.vjp(functools.partial(fn, precision=precision), *a)
          out.append((y, vjp(ct)))
        chosen[i].extend(names)
      return out
    return values_and_grads

  ours = jax.jit(side([c.ours for c in cases]))(args, cotangents)
  with_ref = [i for i, c in enumerate(cases) if c.ref is not None]
  refs = jax.jit(side([cases[i].ref for i in with_ref]))(
      [args[i] for i in with_ref], [cotangents[i] for i in with_ref])
  refs = dict(zip(with_ref, refs))
  rows = []
  for i, case in enumerate(cases):
    (y, grads), extra = ours[i], {}
    if i in refs:
      y_ref, grads_ref = refs[i]
      value_error = _max_error(y, y_ref)
      grad_errors = [_max_error(g, r) for g, r in zip(grads, grads_ref)]
    else:  # dropout: y = mask * x / (1 - p), dy/dx = mask / (1 - p)
      (x,), (g,), rate = args[i], grads, 0.3
      kept = np.asarray(y) != 0
      scale = 1.0 / (1.0 - rate)
      value_error = _max_error(np.where(kept, np.asarray(x, np.float32) * scale, 0), y)
      grad_errors = [_max_error(g, np.where(kept, np.asarray(cotangents[i], np.float32)
                                            * scale, 0))]
      fraction = float(kept.mean())
      # The kept fraction is binomial: allow 5 standard deviations around 1 - p.
      sigma = math.sqrt(rate * (1 - rate) / kept.size)
      extra = {'kept_fraction': fraction,
               'kept_fraction_ok': abs(fraction - (1 - rate)) <= 5 * sigma}
    tolerance = TOLERANCE[dtype.name]
    worst = max([value_error, *grad_errors])
    rows.append({'op': case.op, 'case': case.name, 'dtype': dtype.name,
                 'value_error': value_error, 'grad_errors': grad_errors, 'max_error': worst,
                 'tolerance': tolerance,
                 'ok': worst <= tolerance and extra.get('kept_fraction_ok', True),
                 'formulations': dict(collections.Counter(chosen[i])), **extra})
  return rows


def formulation_verdict(results: dict, backend: str) -> dict:
  """Which convolution formulations ran in each part, and whether that is as it must be.

  Args:
    results: the run's results so far (rows with a ``formulations`` count).
    backend: ``jax.default_backend()``.

  Returns:
    ``{'backend', 'rule', 'per_part': {part: {name: count}}, 'cpu_only_seen', 'ok'}``.
  """
  per_part = {}
  for part in ('correctness', 'training', 'speed'):
    counts = collections.Counter()
    for row in results.get(part, []):
      counts.update(row.get('formulations', {}))
    if counts:
      per_part[part] = dict(counts)
  seen = sorted({n for c in per_part.values() for n in c} & set(CPU_ONLY_FORMULATIONS))
  if backend == 'cpu':
    rule = ('on CPU the correctness cases built for them must show every CPU-only '
            'formulation (so the record is known to see them)')
    shown = set(per_part.get('correctness', {}))
    ok = set(CPU_ONLY_FORMULATIONS) <= shown
  else:
    rule = f'on {backend} no CPU-only formulation may run'
    ok = not seen
  return {'backend': backend, 'rule': rule, 'per_part': per_part, 'cpu_only_seen': seen,
          'ok': ok}


# ---------------------------------------------------------------------------------------
# Training on the device against the CPU.


def training_match(name: str, config: ml_collections.ConfigDict, input_shape: Sequence[int],
                   steps: int, batch_size: int) -> dict:
  """A few train steps of ``config`` on the default device and on the CPU, compared.

  Both runs start from the same initial state (built on each side from the same seed)
  and see the same synthetic batches (:func:`cnn_jax.benchmark.case_splits`), at
  learning rate :data:`TRAINING_LEARNING_RATE`.

  Args:
    name: the config's name, recorded.
    config: an experiment config (its model, augmentation and optimizer are used).
    input_shape: one input's shape.
    steps: train steps.
    batch_size: per step.

  Returns:
    ``{'config', 'steps', 'batch_size', 'device', 'losses', 'cpu_losses',
    'max_loss_diff', 'param_rel_diff', 'tolerance', 'ok', 'formulations'}``:
    ``max_loss_diff`` relative to the CPU loss; ``param_rel_diff`` the L2 norm of the
    parameter difference over that of the CPU parameters.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.batch_size = config.eval_batch_size = batch_size
  config.steps_per_call = 1  # one loss per step
  config.log_every_steps = config.checkpoint_every_steps = 0
  config.optimizer.learning_rate = TRAINING_LEARNING_RATE
  config.dataset.eval_split = ''
  case = benchmark.Case('training', 'training', config, tuple(input_shape))
  splits = benchmark.case_splits(case, batch_size * steps)

  def run(devices):
    trainer = Trainer(config, mesh=sharding.make_mesh(devices), splits=splits)
    state = trainer.init_state()
    batches = trainer.batches(0)
    losses = []
    for _ in range(steps):
      state, metrics = trainer.train_step(state, next(batches))
      losses.append(float(metrics['loss']))
    params = [np.asarray(p, np.float64) for p in jax.tree.leaves(state.params)]
    return losses, params

  cpu = jax.devices('cpu')[:1]
  with record_formulations() as chosen:
    losses, params = run(jax.devices()[:1])
  with jax.default_device(cpu[0]):
    cpu_losses, cpu_params = run(cpu)
  loss_diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, cpu_losses))
  diff = math.sqrt(sum(float(np.sum((a - b) ** 2)) for a, b in zip(params, cpu_params)))
  norm = math.sqrt(sum(float(np.sum(b ** 2)) for b in cpu_params))
  param_diff = diff / norm
  return {'config': name, 'steps': steps, 'batch_size': batch_size,
          'device': str(jax.devices()[0]), 'losses': losses, 'cpu_losses': cpu_losses,
          'max_loss_diff': loss_diff, 'param_rel_diff': param_diff,
          'tolerance': TRAINING_TOLERANCE,
          'ok': max(loss_diff, param_diff) <= TRAINING_TOLERANCE,
          'formulations': dict(collections.Counter(chosen))}


# ---------------------------------------------------------------------------------------
# Speed and time to accuracy.


@dataclasses.dataclass(frozen=True)
class SpeedCase:
  """A model timed by :func:`measure_speed`.

  Attributes:
    model: registered model name.
    input_shape: one input's shape.
    batch_size: train batch size.
    bfloat16: compute in bfloat16 (``half_precision``), parameters in float32.
    num_classes: output size.
    overrides: model fields set on top of the preset (the dry run's shallow stand-ins).
  """
  model: str
  input_shape: tuple
  batch_size: int
  bfloat16: bool
  num_classes: int
  overrides: tuple = ()


def speed_cases(small: bool = False) -> list[SpeedCase]:
  """ResNet-50 (ImageNet size, bf16, batch 256) and ResNet-20 (CIFAR size, batch 512)."""
  if small:
    # Two stages of one narrow block: the same block types, dtypes and code paths,
    # compiled in seconds on a CPU (the full ResNet-50 takes minutes there).
    return [SpeedCase('resnet50', (32, 32, 3), 2, True, 10,
                      (('stage_sizes', (1, 1)), ('stage_features', (4, 8)),
                       ('stage_strides', (1, 2)), ('stem_features', 8))),
            SpeedCase('resnet20', (32, 32, 3), 4, False, 10,
                      (('stage_sizes', (1, 1)), ('stage_features', (8, 16)),
                       ('stage_strides', (1, 2)), ('stem_features', 8)))]
  return [SpeedCase('resnet50', (224, 224, 3), 256, True, 1000),
          SpeedCase('resnet20', (32, 32, 3), 512, False, 10)]


def _speed_benchmark_case(spec: SpeedCase, base: ml_collections.ConfigDict
                          ) -> benchmark.Case:
  case = benchmark.model_case(base, spec.model, spec.input_shape, spec.num_classes)
  case.config.half_precision = spec.bfloat16
  case.config.model.update(dict(spec.overrides))
  return case


def measure_speed(spec: SpeedCase, base: ml_collections.ConfigDict, *, steps: int,
                  repeats: int, warmup_steps: int, peak: dict | None) -> dict:
  """Our train step's images/s for one model, its FLOP/s and MFU.

  ``base`` gives the training settings the model is timed under (the schema's defaults).

  Returns:
    :func:`cnn_jax.benchmark.benchmark_case`'s record plus ``'dtype'``, ``'mfu'`` (None
    without a known peak for the dtype), ``'peak_tflops'`` and ``'formulations'``.
  """
  with record_formulations() as chosen:
    record = benchmark.benchmark_case(_speed_benchmark_case(spec, base), spec.batch_size,
                                      steps=steps, repeats=repeats,
                                      warmup_steps=warmup_steps)
  dtype = 'bf16' if spec.bfloat16 else 'f32'
  peak_tflops = peak.get(dtype) if peak else None
  record.update(dtype='bfloat16' if spec.bfloat16 else 'float32', peak_tflops=peak_tflops,
                model_overrides=dict(spec.overrides),
                mfu=record['train_flops_per_sec'] / (peak_tflops * 1e12) if peak_tflops
                else None, formulations=dict(collections.Counter(chosen)))
  return record


def measure_reference(reference: Callable[..., dict], spec: SpeedCase,
                      base: ml_collections.ConfigDict, *, steps: int, repeats: int,
                      warmup_steps: int, compile_model: bool) -> dict:
  """The reference framework's images/s for one model; ``torch.compile`` where it works.

  ``reference(case, batch_size, steps=, repeats=, warmup_steps=, amp=, compile_model=)`` is
  e.g. ``experiments.torch_reference.benchmark_case`` with its device and layout bound.
  A compiled run that raises is retried eagerly, and the error kept.
  """
  case = _speed_benchmark_case(spec, base)
  settings = dict(steps=steps, repeats=repeats, warmup_steps=warmup_steps,
                  amp=spec.bfloat16)
  if compile_model:
    try:
      return reference(case, spec.batch_size, compile_model=True, **settings)
    except Exception as e:  # pylint: disable=broad-except  (any compiler failure: go eager)
      error = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'[:300]
      record = reference(case, spec.batch_size, compile_model=False, **settings)
      return {**record, 'compile_error': error}
  return reference(case, spec.batch_size, compile_model=False, **settings)


def tta_config(config: ml_collections.ConfigDict, data_dir: str, small: bool
               ) -> ml_collections.ConfigDict:
  """A copy of a Fashion-MNIST config reading ``data_dir``'s IDX files without TFDS.

  Args:
    config: the experiment config.
    data_dir: folder of the IDX files.
    small: one epoch on 512 training and 256 test images, evaluated in one batch (the
      dry run).
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.dataset.reader = 'files'
  config.dataset.prepare_from_dir = data_dir
  if small:
    config.num_epochs = 1
    config.dataset.train_split, config.dataset.test_split = 'train[:512]', 'test[:256]'
    config.eval_batch_size = 256  # the run refuses a batch larger than its largest split
  return config


def time_to_accuracy(name: str, config: ml_collections.ConfigDict, target: float,
                     data_dir: str, small: bool) -> dict:
  """:func:`cnn_jax.benchmark.time_to_accuracy` of :func:`tta_config`'s copy of a config."""
  case = benchmark.Case(name, name, tta_config(config, data_dir, small), (28, 28, 1))
  return benchmark.time_to_accuracy(case, target, log=lambda _: None)


# ---------------------------------------------------------------------------------------
# The run.


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def _driver() -> str | None:
  """The NVIDIA driver version from nvidia-smi, where there is one."""
  try:
    out = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                         capture_output=True, text=True, timeout=30, check=True).stdout
  except (OSError, subprocess.SubprocessError):
    return None
  return out.strip().splitlines()[0] if out.strip() else None


def environment(command: str, dry_run: bool, budget_s: float) -> dict:
  """:func:`cnn_jax.provenance.environment` plus driver, platform and package versions."""
  device = jax.devices()[0]
  try:
    platform_version = device.client.platform_version
  except AttributeError:
    platform_version = None
  return {**provenance.environment(command), 'backend': jax.default_backend(),
          'device_count': jax.device_count(), 'driver': _driver(),
          'platform_version': platform_version,
          'versions': {p: _version(p) for p in ('jax', 'jaxlib', 'flax', 'optax',
                                                'orbax-checkpoint', 'numpy', 'torch')},
          'peak': peak_flops(device.device_kind), 'dry_run': dry_run, 'budget_s': budget_s}


def run(out: str, *, dry_run: bool = False, budget_s: float = 480.0, command: str = '',
        training_config: tuple[str, ml_collections.ConfigDict] | None = None,
        speed_base: ml_collections.ConfigDict | None = None,
        tta_configs: Sequence[tuple[str, ml_collections.ConfigDict, float]] = (),
        data_dir: str | None = None, reference: Callable[..., dict] | None = None,
        reference_missing: str = '', clock: Callable[[], float] = time.monotonic,
        log=print) -> dict:
  """Runs every part within the budget; writes ``results.json``/``results.md`` to ``out``.

  Args:
    out: the results folder (created); rewritten after every item.
    dry_run: tiny sizes everywhere, no estimates (a CPU test of every part).
    budget_s: the wall-clock budget (see :class:`Budget`).
    command: the command line, recorded.
    training_config: ``(name, config)`` of the training comparison (28x28x1 inputs);
      None skips that part.
    speed_base: the training settings the speed models are timed under (the
      schema's defaults, ``experiments/configs/default.py``); None skips the speed part.
    tta_configs: ``(name, config, target accuracy)`` per time-to-accuracy run.
    data_dir: the folder of the Fashion-MNIST IDX files; None or missing skips time to
      accuracy.
    reference: the PyTorch reference (see :func:`measure_reference`); None skips it.
    reference_missing: why there is no reference, recorded when it is None.
    clock: for the budget.
    log: progress lines.

  Returns:
    The results dict also written to ``out``; ``results['ok']`` is False when a
    correctness, formulation or training check failed, raised or was skipped (a
    training comparison without a config included). Items that raised are
    listed under ``'errors'``, items left out (budget, missing inputs) under
    ``'skipped'``.
  """
  t0 = time.perf_counter()
  budget = Budget(budget_s, clock)
  results = {'environment': environment(command, dry_run, budget_s), 'correctness': [],
             'training': [], 'speed': [], 'time_to_accuracy': [], 'skipped': [],
             'errors': []}
  peak = results['environment']['peak']
  estimate = (lambda key: 0.0) if dry_run else ESTIMATE_S.get

  def save():
    results['formulations'] = formulation_verdict(results, jax.default_backend())
    # A check that raised or did not fit the budget is not a pass.
    missing = [e for e in results['errors'] + results['skipped']
               if e['part'] in ('correctness', 'training')]
    results['ok'] = (all(r['ok'] for r in results['correctness'] + results['training'])
                     and results['formulations']['ok'] and not missing)
    results['wall_s'] = time.perf_counter() - t0
    provenance.write_results(out, results, format_results(results))

  def attempt(part: str, what: str, key: str, fn):
    reason = budget.refuse(estimate(key))
    if reason is not None:
      results['skipped'].append({'part': part, 'item': what, 'reason': reason})
      log(f'skipped {part} {what}: {reason}')
      return None
    try:
      return fn()
    except Exception as e:  # pylint: disable=broad-except  (record it, go on with the rest)
      error = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'[:500]
      results['errors'].append({'part': part, 'item': what, 'error': error})
      log(f'error in {part} {what}: {error}')
      return None

  cases = op_cases(small=dry_run)
  for dtype in (jnp.float32, jnp.bfloat16):
    name, errors = jnp.dtype(dtype).name, len(results['errors'])
    rows = attempt('correctness', f'every op, {name}', 'ops', functools.partial(
        check_ops, cases, dtype))
    if rows is None and len(results['errors']) > errors:
      # One case broke the shared program: case by case, to name it and keep the rest.
      rows = [attempt('correctness', f'{c.op} {c.name} {name}', 'op',
                      functools.partial(check_ops, [c], dtype)) for c in cases]
      rows = [r[0] for r in rows if r is not None]
    results['correctness'] += rows or []
    save()
  bad = [r for r in results['correctness'] if not r['ok']]
  log(f'correctness: {len(results["correctness"]) - len(bad)} of '
      f'{len(results["correctness"])} rows within tolerance')

  if training_config is None:
    results['skipped'].append({'part': 'training', 'item': '', 'reason': 'no config given'})
  else:
    steps, batch = (3, 16) if dry_run else (20, 128)
    row = attempt('training', training_config[0], 'training', functools.partial(
        training_match, *training_config, (28, 28, 1), steps, batch))
    if row is not None:
      results['training'].append(row)
      log(f'training: loss diff {row["max_loss_diff"]:.2e}, parameter diff '
          f'{row["param_rel_diff"]:.2e} ({"ok" if row["ok"] else "FAILED"})')
  save()

  timing = (dict(steps=1, repeats=1, warmup_steps=0) if dry_run else
            dict(steps=10, repeats=3, warmup_steps=3))
  if speed_base is None:
    results['skipped'].append({'part': 'speed', 'item': '',
                               'reason': 'no base config for the speed cases'})
  for spec in speed_cases(small=dry_run) if speed_base is not None else ():
    row = attempt('speed', spec.model, f'speed {spec.model}', functools.partial(
        measure_speed, spec, speed_base, peak=peak, **timing))
    if row is None:
      continue
    results['speed'].append(row)
    save()
    log(f'speed {spec.model}: {row["train_images_per_sec"]:,.0f} train img/s')
    if reference is None:
      continue
    ref = attempt('speed', f'{spec.model} reference', f'torch {spec.model}',
                  functools.partial(measure_reference, reference, spec, speed_base,
                                    compile_model=not dry_run, **timing))
    if ref is not None:
      row['reference'] = ref
      row['train_ratio'] = row['train_images_per_sec'] / ref['train_images_per_sec']
      save()
  if reference is None:
    results['skipped'].append({'part': 'speed', 'item': 'reference',
                               'reason': reference_missing or 'no reference given'})

  if tta_configs and (not data_dir or not os.path.isdir(data_dir)):
    results['skipped'].append({'part': 'time_to_accuracy', 'item': '',
                               'reason': f'no Fashion-MNIST IDX folder ({data_dir!r})'})
  elif tta_configs:
    for name, config, target in tta_configs:
      row = attempt('time_to_accuracy', name, 'time_to_accuracy', functools.partial(
          time_to_accuracy, name, config, target, data_dir, dry_run))
      if row is not None:
        results['time_to_accuracy'].append(row)
        save()
        log(f'time to accuracy {name}: {row["test_accuracy"]:.4f} in {row["wall_s"]:.1f} s')
  save()
  return results


# ---------------------------------------------------------------------------------------
# The report.


def _fmt(value, spec='.3g') -> str:
  return '-' if value is None else format(value, spec)


def _overrides(overrides: dict) -> str:
  return f' ({", ".join(f"{k}={v}" for k, v in overrides.items())})' if overrides else ''


def _counts(counts: dict) -> str:
  return ', '.join(f'{k} x{v}' for k, v in sorted(counts.items())) or '-'


def format_results(results: dict) -> str:
  """The results as markdown: a header, then one section per :data:`SECTIONS` entry."""
  env = results['environment']
  versions = ', '.join(f'{k} {v}' for k, v in env['versions'].items() if v)
  peak = env['peak']
  lines = [
      '# Accelerator check', '',
      f'`{env["command"]}`', '',
      f'* date: {env["date"]}',
      f'* device: {env["device_kind"]} ({env["backend"]}, {env["device_count"]} device(s): '
      f'{", ".join(env["devices"])})',
      f'* driver: {env["driver"] or "-"}; platform: {env["platform_version"] or "-"}',
      f'* host: {env["cpu_model"]}, {env["cpu_count"]} cores',
      f'* versions: python {env["python"]}, {versions}; git {env["git_commit"]}',
      '* peak: ' + (f'{peak["name"]}: {_fmt(peak["bf16"])} TFLOP/s bf16, '
                     f'{_fmt(peak["f32"])} TFLOP/s f32 at default precision, dense '
                     f'({peak["source"]})' if peak else
                     'no published peak for this device kind: MFU not computed'),
      f'* mode: {"dry run (tiny sizes)" if env["dry_run"] else "full"}; budget '
      f'{env["budget_s"]:.0f} s; wall {results.get("wall_s", 0):.1f} s',
      f'* verdict: {VERDICT[bool(results.get("ok"))]}', '',
  ]
  lines += ['## Correctness', '',
            'Max |ours - XLA| over max |XLA|, values and each gradient (x, kernel); float32 '
            'at Precision.HIGHEST on both sides, bfloat16 at default precision.', '',
            '| op | case | dtype | value error | gradient errors | tolerance | ok '
            '| formulations |', '|---|---|---|---|---|---|---|---|']
  for r in results['correctness']:
    lines.append(f'| {r["op"]} | {r["case"]} | {r["dtype"]} | {r["value_error"]:.2e} | '
                 f'{", ".join(f"{e:.2e}" for e in r["grad_errors"])} | '
                 f'{r["tolerance"]:.0e} | {"yes" if r["ok"] else "NO"} | '
                 f'{_counts(r["formulations"])} |')
  verdict = results.get('formulations', {})
  lines += ['', '## Formulations', '',
            f'Rule: {verdict.get("rule", "-")}. CPU-only formulations seen: '
            f'{", ".join(verdict.get("cpu_only_seen", [])) or "none"}. '
            f'{"OK" if verdict.get("ok") else "FAILED"}.', '',
            '| part | formulations traced |', '|---|---|']
  for part, counts in verdict.get('per_part', {}).items():
    lines.append(f'| {part} | {_counts(counts)} |')
  lines += ['', '## Training: device vs CPU', '',
            '| config | steps | batch | device | max loss diff | parameter diff | tolerance | '
            'ok |', '|---|---|---|---|---|---|---|---|']
  for r in results['training']:
    lines.append(f'| {r["config"]} | {r["steps"]} | {r["batch_size"]} | {r["device"]} | '
                 f'{r["max_loss_diff"]:.2e} | {r["param_rel_diff"]:.2e} | '
                 f'{r["tolerance"]:.0e} | {"yes" if r["ok"] else "NO"} |')
  lines += ['', '## Speed', '', f'{benchmark.FLOPS_NOTE}; MFU = train FLOP/s over the '
            f'peak for the compute dtype.', '',
            '| model | input | dtype | batch | compile s | train img/s | train TFLOP/s | MFU | '
            'reference img/s | reference | ours/reference |',
            '|---|---|---|---|---|---|---|---|---|---|---|']
  for r in results['speed']:
    ref = r.get('reference')
    lines.append(
        f'| {r["model"]}{_overrides(r["model_overrides"])} | '
        f'{"x".join(map(str, r["input_shape"]))} | {r["dtype"]} | '
        f'{r["batch_size"]} | {r["compile_s"]:.1f} | {r["train_images_per_sec"]:,.0f} | '
        f'{r["train_flops_per_sec"] / 1e12:.3g} | '
        f'{_fmt(r["mfu"] * 100 if r["mfu"] is not None else None, ".1f")}'
        f'{"%" if r["mfu"] is not None else ""} | '
        + (f'{ref["train_images_per_sec"]:,.0f} | {ref["description"]}'
           f'{" (compile failed: " + ref["compile_error"] + ")" if "compile_error" in ref else ""}'
           f' | {r["train_ratio"]:.2f} |' if ref else '- | - | - |'))
  lines += ['', '## Time to accuracy', '',
            '| config | target | test accuracy | reached | wall s | compile s | epochs | '
            'train img/s |', '|---|---|---|---|---|---|---|---|']
  for r in results['time_to_accuracy']:
    lines.append(f'| {r["name"]} | {r["target"]:.2f} | {r["test_accuracy"]:.4f} | '
                 f'{"yes" if r["reached"] else "no"} | {r["wall_s"]:.1f} | '
                 f'{r["compile_s"]:.1f} | {r["epochs"]} | '
                 f'{r["train_images_per_sec"]:,.0f} |')
  lines += ['', '## Skipped', '']
  lines += [f'* {s["part"]}{" " + s["item"] if s["item"] else ""}: {s["reason"]}'
            for s in results['skipped']] or ['Nothing.']
  lines += ['', '## Errors', '']
  lines += [f'* {e["part"]} {e["item"]}: {e["error"]}' for e in results['errors']] or [
      'None.']
  return '\n'.join(lines) + '\n'


SECTIONS = ('## Correctness', '## Formulations', '## Training: device vs CPU', '## Speed',
            '## Time to accuracy', '## Skipped', '## Errors')
