"""PyTorch versions of the registry's models, timed the way the benchmark times ours.

The optional side-by-side reference of ``python -m experiments.benchmark --torch``
(issue #7: our train step against "a PyTorch implementation of the same model on the
same CPU, measured side by side in one run"). torch is a benchmark-only extra
(``pip install -r requirements-bench.txt``), not a runtime or test dependency.

"The same model": :func:`build` reads the fields of the Flax module that
``cnn_jax.models.create(name, **kwargs)`` returns (presets applied) and builds the same
layers in the same order, with the same padding (XLA's ``'SAME'``, odd pixel at the
end, included), activations, pooling, dropout and BatchNorm settings. Submodules are
named like the Flax parameters (``conv0``, ``stage2_block0.conv1_bn``), so
:func:`load_flax_variables` copies a Flax model's variables in and the tests compare
logits. A field it cannot mirror raises ValueError. Supported: ``mlp``, ``simple_cnn``
(1-D and 2-D inputs) and its preset ``cnn1d``, ``lenet5`` and the ResNets (``resnet18``
to ``resnet152``, ``resnet20`` to ``resnet110``).

The timed train step mirrors ours: gather the batch from a per-epoch permutation of the
in-memory train split, scale uint8 to [0, 1] (and normalise if the config does),
forward, softmax cross-entropy (with the config's label smoothing), backward, the
config's optimizer (:func:`make_optimizer`). Differences that do not change the work
of a step:

* the optimizer runs at the config's peak ``learning_rate`` (a schedule is one scalar
  per step, not mirrored);
* BatchNorm's running variance averages PyTorch's unbiased batch variance, Flax's the
  biased one (the forward pass and the running mean agree);
* PyTorch flattens ``(C, H, W)``, Flax ``(H, W, C)``: :func:`load_flax_variables`
  permutes the rows of the first dense kernel after a flatten;
* our step also checks the loss and gradients for NaN/inf; this one does not.
"""

from __future__ import annotations

import functools
import itertools
import math
import os

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F
from flax import traverse_util
from torch import nn

from cnn_jax import benchmark, models
from cnn_jax import data as data_lib
from cnn_jax.models import lenet, mlp, resnet, simple_cnn
from cnn_jax.models.common import per_block
from cnn_jax.ops import shapes

FRAMEWORK = 'torch'

_ACTIVATIONS = {
    'relu': F.relu,
    'tanh': torch.tanh,
    'lecun_tanh': lambda x: 1.7159 * torch.tanh(2.0 / 3.0 * x),
    # Flax's nn.gelu defaults to the tanh approximation.
    'gelu': functools.partial(F.gelu, approximate='tanh'),
    'elu': F.elu,
}
_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d}
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
# Flax variable leaf -> torch tensor attribute.
_LEAVES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
           'var': 'running_var'}
# Config fields whose work the reference does not do; it refuses them (see check_case).
_AUGMENT_OFF = {'crop_padding': 0, 'flip': False, 'random_resized_crop': False,
                'image_size': 0}
_TRAIN_OFF = {'half_precision': False, 'ema_decay': 0.0, 'aux_loss_weight': 0.0,
              'eval_flip': False}


def default_num_threads() -> int:
  """The CPUs this process may run on: the size of XLA:CPU's intra-op thread pool.

  PyTorch's own default is the number of physical cores, which can be fewer; giving both
  frameworks the same CPUs is what makes the side-by-side numbers comparable.
  """
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def _activation(name: str):
  if name not in _ACTIVATIONS:
    raise ValueError(f'activation={name!r} has no PyTorch version here; use one of '
                     f'{sorted(_ACTIVATIONS)}')
  return _ACTIVATIONS[name]


def _dropout(rate: float) -> nn.Module:
  # Like our Dropout layer, a zero rate does no work at all.
  return nn.Dropout(rate) if rate else nn.Identity()


def _conv(c_in: int, c_out: int, kernel: int, stride: int, padding, sizes: tuple,
          bias: bool = True) -> tuple[nn.Module, tuple]:
  """A ConvNd padded exactly as :func:`cnn_jax.ops.conv` pads, and its output sizes.

  Args:
    c_in: input channels.
    c_out: output channels.
    kernel: kernel size on every spatial axis.
    stride: stride on every spatial axis.
    padding: any padding :func:`cnn_jax.ops.shapes.resolve_padding` takes.
    sizes: the input's spatial sizes.
    bias: add a bias.

  Returns:
    ``(module, out_sizes)``.
  """
  nsp = len(sizes)
  kernels, strides = (kernel,) * nsp, (stride,) * nsp
  pads = shapes.resolve_padding(padding, sizes, kernels, strides)
  shapes.check_fits('conv', sizes, sizes, kernels, pads)
  out = tuple((n + lo + hi - kernel) // stride + 1 for n, (lo, hi) in zip(sizes, pads))
  symmetric = all(lo == hi for lo, hi in pads)
  conv = _CONV[nsp](c_in, c_out, kernel, stride, bias=bias,
                    padding=tuple(lo for lo, _ in pads) if symmetric else 0)
  if not symmetric:
    # 'SAME' with an even total puts the odd pixel at the end, which torch's padding
    # argument cannot say; pad explicitly (F.pad lists the last axis first).
    flat = tuple(p for pair in reversed(pads) for p in pair)
    conv.register_forward_pre_hook(lambda _, args: (F.pad(args[0], flat),))
  return conv, out


def _downsample(pool: str, channels: int, window: int, stride: int, padding,
                sizes: tuple) -> tuple[nn.Module, tuple]:
  """:func:`cnn_jax.models.common.downsample`'s layer (apply it with :func:`_down`)."""
  nsp = len(sizes)
  if pool == 'none':
    return nn.Identity(), sizes
  if pool == 'conv':
    return _conv(channels, channels, window, stride, padding, sizes)
  if pool not in ('max', 'avg'):
    raise ValueError(f"pool={pool!r}; use 'max', 'avg', 'conv' or 'none'")
  pads = shapes.resolve_padding(padding, sizes, (window,) * nsp, (stride,) * nsp)
  if any(lo != hi for lo, hi in pads):
    raise ValueError(f'pooling padding {padding!r} is uneven ({pads}); PyTorch pools pad '
                     f'both sides alike')
  shapes.check_fits('pool', sizes, sizes, (window,) * nsp, pads, what='window')
  out = tuple((n + 2 * lo - window) // stride + 1 for n, (lo, _) in zip(sizes, pads))
  pad = tuple(lo for lo, _ in pads)
  if pool == 'max':
    return _MAX_POOL[nsp](window, stride, pad), out
  # Our avg_pool counts padded zeros in the divisor by default, as torch does.
  return _AVG_POOL[nsp](window, stride, pad, count_include_pad=True), out


def _down(layer: nn.Module, x, act):
  """Applies a :func:`_downsample` layer: the learned strided conv is followed by ``act``."""
  x = layer(x)
  return act(x) if isinstance(layer, (nn.Conv1d, nn.Conv2d)) else x


def _add_dense_layers(module: nn.Module, width: int, hidden, rates, names, num_classes: int,
                      head: str) -> None:
  """Adds the dense part of a model: Linear -> activation -> dropout per hidden width,
  then the output Linear, under the Flax model's layer names.

  Args:
    module: the model being built (its ``act`` is applied in :func:`_dense_forward`).
    width: the flattened features' width.
    hidden: the hidden layers' widths.
    rates: one dropout rate per hidden layer.
    names: ``i -> (linear name, dropout name)`` of hidden layer ``i``.
    num_classes: the output width.
    head: the output layer's name.

  Sets ``module.dense_layers`` (the name pairs), ``module.head_name`` and
  ``module.flattened`` (the first Linear, which reads the flattened features).
  """
  module.dense_layers = []
  for i, (out, rate) in enumerate(zip(hidden, rates)):
    linear, dropout = names(i)
    module.add_module(linear, nn.Linear(width, out))
    module.add_module(dropout, _dropout(rate))
    module.dense_layers.append((linear, dropout))
    width = out
  module.add_module(head, nn.Linear(width, num_classes))
  module.head_name = head
  module.flattened = module.dense_layers[0][0] if module.dense_layers else head


def _dense_forward(module: nn.Module, x):
  """The layers of :func:`_add_dense_layers` on flattened features ``x``."""
  for linear, dropout in module.dense_layers:
    x = getattr(module, dropout)(module.act(getattr(module, linear)(x)))
  return getattr(module, module.head_name)(x)


def _image_shape(name: str, input_shape: tuple) -> tuple[tuple, int]:
  if len(input_shape) != 3:
    raise ValueError(f'{name} expects images (H, W, C), got input shape {input_shape}')
  return tuple(input_shape[:2]), input_shape[2]


class MLP(nn.Module):
  """:class:`cnn_jax.models.mlp.MLP`: flatten, dense layers with dropout, dense output."""

  def __init__(self, m, input_shape: tuple):
    super().__init__()
    *sizes, channels = input_shape
    self.act = _activation(m.activation)
    rates = per_block(m.dropout_rate, len(m.hidden), 'dropout_rate',
                      'hidden layers (len(hidden))')
    self.flatten_shape = (channels, *sizes)
    width = math.prod(self.flatten_shape)
    self.input_dropout = _dropout(m.input_dropout_rate)
    _add_dense_layers(self, width, m.hidden, rates, lambda i: (f'dense{i}', f'dropout{i}'),
                      m.num_classes, 'head')

  def forward(self, x):
    return _dense_forward(self, self.input_dropout(x.flatten(1)))


class SimpleCNN(nn.Module):
  """:class:`cnn_jax.models.simple_cnn.SimpleCNN`: conv -> [BatchNorm] -> act -> pool ->
  dropout blocks, then dense layers; 1-D ``(N, C, W)`` or 2-D ``(N, C, H, W)`` inputs."""

  def __init__(self, m, input_shape: tuple):
    super().__init__()
    *sizes, channels = input_shape
    sizes = tuple(sizes)
    if len(sizes) not in (1, 2):
      raise ValueError(f'simple_cnn expects (H, W, C) or (W, C) inputs, got input shape '
                       f'{input_shape}')
    if m.head != 'dense':
      raise ValueError(f"the PyTorch mirror of simple_cnn has the dense head only; "
                       f"head={m.head!r} is not mirrored")
    self.act = _activation(m.activation)
    n = self.num_blocks = len(m.features)
    blocks = zip(m.features, per_block(m.kernel_size, n, 'kernel_size'),
                 per_block(m.strides, n, 'strides'), per_block(m.padding, n, 'padding'),
                 per_block(m.batch_norm, n, 'batch_norm'),
                 per_block(m.pool, n, 'pool'), per_block(m.pool_window, n, 'pool_window'),
                 per_block(m.dropout_rate, n, 'dropout_rate'))
    for i, (features, k, s, pad, bn, pool, window, rate) in enumerate(blocks):
      sizes = _add_conv_bn(self, f'conv{i}', channels, features, k, s, m, sizes, padding=pad,
                           batch_norm=bn)
      down, sizes = _downsample(pool, features, window, window, 'VALID', sizes)
      self.add_module(f'pool{i}', down)
      self.add_module(f'dropout{i}', _dropout(rate))
      channels = features
    self.flatten_shape = (channels, *sizes)
    _add_dense_layers(self, math.prod(self.flatten_shape), m.hidden,
                      [m.dense_dropout_rate] * len(m.hidden),
                      lambda i: (f'dense{i}', f'dense_dropout{i}'), m.num_classes, 'head')

  def forward(self, x):
    for i in range(self.num_blocks):
      x = self.act(getattr(self, f'conv{i}_bn')(getattr(self, f'conv{i}')(x)))
      x = getattr(self, f'dropout{i}')(_down(getattr(self, f'pool{i}'), x, self.act))
    return _dense_forward(self, x.flatten(1))


class LeNet5(nn.Module):
  """:class:`cnn_jax.models.lenet.LeNet5`: C1 -> S2 -> C3 -> S4 -> C5 -> F6 -> output,
  with C1's default padding of small inputs up to the paper's 32x32 field."""

  def __init__(self, m, input_shape: tuple):
    super().__init__()
    sizes, channels = _image_shape('lenet5', input_shape)
    if len(m.features) != 3:
      raise ValueError(f'features={m.features!r} must give the channels of C1, C3 and C5 '
                       f'(3 values)')
    self.act = _activation(m.activation)
    padding = m.c1_padding
    if padding is None:
      short = [max(lenet._FIELD - n, 0) for n in sizes]
      padding = tuple((d // 2, d - d // 2) for d in short)
    c1, c3, c5 = m.features
    k, window = m.kernel_size, m.pool_window
    self.c1, sizes = _conv(channels, c1, k, m.stem_stride, padding, sizes)
    self.s2, sizes = _downsample(m.pool, c1, window, window, 'VALID', sizes)
    self.c3, sizes = _conv(c1, c3, k, m.c3_stride, 'VALID', sizes)
    self.s4, sizes = _downsample(m.pool, c3, window, window, 'VALID', sizes)
    self.c5, sizes = _conv(c3, c5, k, 1, 'VALID', sizes)
    self.flatten_shape = (c5, *sizes)
    _add_dense_layers(self, math.prod(self.flatten_shape), m.hidden,
                      [m.dropout_rate] * len(m.hidden),
                      lambda i: (f'f{6 + i}', f'dropout{6 + i}'), m.num_classes, 'output')

  def forward(self, x):
    x = _down(self.s2, self.act(self.c1(x)), self.act)
    x = _down(self.s4, self.act(self.c3(x)), self.act)
    return _dense_forward(self, self.act(self.c5(x)).flatten(1))


def _add_conv_bn(parent: nn.Module, name: str, c_in: int, c_out: int, kernel: int,
                 stride: int, m, sizes: tuple, padding=None, batch_norm: bool = True) -> tuple:
  """:func:`cnn_jax.models.common.conv_bn`'s layers as ``name`` and ``name + '_bn'``.

  Without ``batch_norm`` the conv keeps its bias and ``name + '_bn'`` is an identity,
  so the caller's forward pass is the same either way. ``padding`` None is
  ``kernel // 2``, as in ``conv_bn``. Returns the output sizes.
  """
  padding = kernel // 2 if padding is None else padding
  conv, out_sizes = _conv(c_in, c_out, kernel, stride, padding, sizes, bias=not batch_norm)
  parent.add_module(name, conv)
  # Flax's momentum is the decay of the running average, PyTorch's its complement.
  parent.add_module(f'{name}_bn', _BATCH_NORM[len(sizes)](
      c_out, eps=m.bn_epsilon, momentum=1 - m.bn_momentum) if batch_norm else nn.Identity())
  return out_sizes


class ResidualBlock(nn.Module):
  """:class:`cnn_jax.models.resnet.ResidualBlock`: basic or bottleneck, A or B shortcut."""

  def __init__(self, c_in: int, features: int, stride: int, m, sizes: tuple):
    super().__init__()
    if m.block == 'basic':
      convs = [(features, 3, stride), (features, 3, 1)]
    else:
      s1, s3 = (stride, 1) if m.stride_in_1x1 else (1, stride)
      convs = [(features, 1, s1), (features, 3, s3), (4 * features, 1, 1)]
    self.num_convs = len(convs)
    channels, out_sizes = c_in, sizes
    for i, (c_out, kernel, s) in enumerate(convs, 1):
      out_sizes = _add_conv_bn(self, f'conv{i}', channels, c_out, kernel, s, m, out_sizes)
      channels = c_out
    self.out_channels, self.out_sizes = channels, out_sizes
    self.shortcut, self.stride, self.extra_channels = None, stride, channels - c_in
    if stride != 1 or c_in != channels:
      self.shortcut = m.shortcut
      if m.shortcut == 'B':
        _add_conv_bn(self, 'proj', c_in, channels, 1, stride, m, sizes)

  def forward(self, x):
    y = x
    for i in range(1, self.num_convs + 1):
      y = getattr(self, f'conv{i}_bn')(getattr(self, f'conv{i}')(y))
      if i < self.num_convs:
        y = F.relu(y)
    if self.shortcut == 'B':
      x = self.proj_bn(self.proj(x))
    elif self.shortcut == 'A':
      # Every stride-th pixel, and zero channels appended (as our option A).
      x = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra_channels))
    return F.relu(y + x)


class ResNet(nn.Module):
  """:class:`cnn_jax.models.resnet.ResNet`: stem, residual stages, global average pool,
  dropout, dense."""

  def __init__(self, m, input_shape: tuple):
    super().__init__()
    sizes, channels = _image_shape('resnet', input_shape)
    if m.block not in ('basic', 'bottleneck'):
      raise ValueError(f"block={m.block!r}; use 'basic' or 'bottleneck'")
    if m.shortcut not in ('A', 'B'):
      raise ValueError(f"shortcut={m.shortcut!r}; use 'A' (zero padding) or 'B' (projection)")
    if not len(m.stage_sizes) == len(m.stage_features) == len(m.stage_strides):
      raise ValueError(f'stage_sizes={m.stage_sizes!r}, stage_features={m.stage_features!r} '
                       f'and stage_strides={m.stage_strides!r} must have one entry per stage')
    sizes = _add_conv_bn(self, 'stem_conv', channels, m.stem_features, m.stem_kernel,
                         m.stem_stride, m, sizes)
    self.stem_pool, sizes = _downsample(m.stem_pool, m.stem_features, 3, 2, 1, sizes)
    channels = m.stem_features
    self.block_names = []
    for i, (size, features, stride) in enumerate(zip(m.stage_sizes, m.stage_features,
                                                     m.stage_strides)):
      for j in range(size):
        block = ResidualBlock(channels, features, stride if j == 0 else 1, m, sizes)
        self.block_names.append(f'stage{i + 1}_block{j}')
        self.add_module(self.block_names[-1], block)
        channels, sizes = block.out_channels, block.out_sizes
    self.dropout = _dropout(m.dropout_rate)
    self.head = nn.Linear(channels, m.num_classes)
    self.flattened = self.flatten_shape = None  # global pooling, no flatten

  def forward(self, x):
    x = F.relu(self.stem_conv_bn(self.stem_conv(x)))
    x = _down(self.stem_pool, x, F.relu)
    for name in self.block_names:
      x = getattr(self, name)(x)
    return self.head(self.dropout(x.mean((2, 3))))


_MODELS = {mlp.MLP: MLP, simple_cnn.SimpleCNN: SimpleCNN,
           lenet.LeNet5: LeNet5, resnet.ResNet: ResNet}


def supported() -> list[str]:
  """The registered model names that have a PyTorch version here."""
  return [name for name in models.names() if type(models.create(name)) in _MODELS]


def build(name: str, input_shape, **kwargs) -> nn.Module:
  """The PyTorch version of ``cnn_jax.models.create(name, **kwargs)``.

  Args:
    name: a registered model name (see :func:`supported`).
    input_shape: one input's shape without the batch axis, channels last as our models
      take it, e.g. ``(28, 28, 1)``; the torch model takes ``(N, C, H, W)``.
    **kwargs: the model's fields, exactly as ``models.create`` takes them (a config's
      ``model`` section without ``name``).

  Returns:
    A ``torch.nn.Module`` (float32, train mode) whose ``flattened`` attribute names the
    dense layer after a flatten (None if none) and ``flatten_shape`` the ``(C, *spatial)``
    shape flattened there.

  Raises:
    ValueError: for an unknown model or field (``models.create``'s message), a model
      without a PyTorch version, or a field value this reference does not mirror.
  """
  module = models.create(name, **kwargs)
  if type(module) not in _MODELS:
    raise ValueError(f'model {name!r} has no PyTorch reference; supported: '
                     f'{", ".join(supported())}')
  if module.dtype is not None:
    raise ValueError(f'{name}: dtype={module.dtype!r} is not mirrored; the PyTorch '
                     f'reference computes in float32')
  return _MODELS[type(module)](module, tuple(input_shape))


def _nchw_rows(kernel: np.ndarray, shape: tuple) -> np.ndarray:
  """A dense kernel's rows reordered from a (*spatial, C) flatten to a (C, *spatial) one."""
  channels, *spatial = shape
  nsp = len(spatial)
  rows = kernel.reshape(*spatial, channels, kernel.shape[-1])
  return rows.transpose(nsp, *range(nsp), nsp + 1).reshape(kernel.shape)


def load_flax_variables(model: nn.Module, variables) -> None:
  """Copies a Flax model's ``params`` (and ``batch_stats``) into its torch version.

  Args:
    model: from :func:`build` with the same name, fields and input shape.
    variables: the Flax variables, e.g. ``flax_model.init(key, x)``.

  Raises:
    ValueError: if a shape differs, or a torch parameter or buffer is left without a
      value (the two models do not have the same layers).
  """
  assigned = set()
  for collection in ('params', 'batch_stats'):
    for path, value in traverse_util.flatten_dict(dict(variables.get(collection, {}))).items():
      *module_path, leaf = path
      name = '.'.join(module_path)
      module, value = model.get_submodule(name), np.asarray(value, np.float32)
      if leaf == 'kernel' and isinstance(module, nn.Linear):
        value = (_nchw_rows(value, model.flatten_shape) if name == model.flattened
                 else value).T
      elif leaf == 'kernel':  # conv (*k, in, out) -> (out, in, *k)
        value = value.transpose(value.ndim - 1, value.ndim - 2, *range(value.ndim - 2))
      target = f'{name}.{_LEAVES[leaf]}'
      tensor = model.get_parameter(target) if collection == 'params' else model.get_buffer(
          target)
      if tuple(tensor.shape) != value.shape:
        raise ValueError(f'{"/".join(path)}: Flax shape {value.shape} (as torch) but torch '
                         f'{target} has {tuple(tensor.shape)}')
      with torch.no_grad():
        tensor.copy_(torch.tensor(value))
      assigned.add(target)
  missing = sorted(k for k in model.state_dict()
                   if k not in assigned and not k.endswith('num_batches_tracked'))
  if missing:
    raise ValueError(f'torch tensors without a Flax variable: {missing}')


def check_case(case: benchmark.Case, amp: bool = False) -> None:
  """Raises ValueError if the reference cannot do a case's work (before anything is timed).

  Args:
    case: a benchmark case.
    amp: the reference will run under bfloat16 autocast, which mirrors our
      ``half_precision`` (bfloat16 compute, float32 parameters).

  Raises:
    ValueError: for a model or field :func:`build` does not mirror, train-time
      augmentation, bfloat16 without ``amp``, EMA or auxiliary losses, or an unknown
      optimizer.
  """
  config = case.config
  kwargs = dict(config.model)
  build(kwargs.pop('name'), case.input_shape, **kwargs)
  augment = config.dataset.get('augment', ml_collections.ConfigDict())
  unsupported = [f'dataset.augment.{k}={augment.get(k, v)!r}' for k, v in _AUGMENT_OFF.items()
                 if augment.get(k, v) != v]
  unsupported += [f'{k}={config.get(k, v)!r}' for k, v in _TRAIN_OFF.items()
                  if config.get(k, v) != v and not (amp and k == 'half_precision')]
  if unsupported:
    raise ValueError(f'{case.name}: the PyTorch reference does not mirror '
                     f'{", ".join(unsupported)}; benchmark the bare model (--model) or a '
                     f'config without them')
  if config.optimizer.name not in ('sgd', 'adam', 'adamw'):
    raise ValueError(f'{case.name}: optimizer.name={config.optimizer.name!r} has no '
                     f'PyTorch version here')


def make_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
  """``config`` (an optimizer ConfigDict) as :mod:`cnn_jax.train.optim` reads it.

  ``sgd`` (momentum, nesterov), ``adam`` and ``adamw`` at the peak ``learning_rate``;
  weight decay only on kernels (2+ dims), as ``optim.decay_mask`` does: added to the
  gradient for SGD and Adam, decoupled for AdamW (both as in torch.optim).

  Args:
    model: the torch model.
    config: the optimizer ConfigDict.

  Returns:
    The optimizer.

  Raises:
    ValueError: for an unknown optimizer name.
  """
  params = list(model.parameters())
  wd = config.get('weight_decay', 0.0)
  groups = [{'params': [p for p in params if p.ndim > 1], 'weight_decay': wd},
            {'params': [p for p in params if p.ndim <= 1], 'weight_decay': 0.0}]
  lr = config.learning_rate
  if config.name == 'sgd':
    momentum = config.get('momentum', 0.9) or 0.0
    return torch.optim.SGD(groups, lr, momentum=momentum,
                           nesterov=bool(momentum and config.get('nesterov', False)))
  if config.name == 'adam':
    return torch.optim.Adam(groups, lr)
  if config.name == 'adamw':
    return torch.optim.AdamW(groups, lr)
  raise ValueError(f'optimizer.name={config.name!r} has no PyTorch version here')


def make_train_step(model: nn.Module, config, amp: bool = False):
  """The train step of ``config`` for ``model``: ``step(images, labels) -> (loss, acc)``.

  Args:
    model: the torch model, in train mode.
    config: the experiment ConfigDict (optimizer, label smoothing, gradient clipping).
    amp: forward pass and loss under bfloat16 autocast on the model's device.

  Returns:
    A function taking a float ``(N, C, ...)`` batch and int64 labels.
  """
  optimizer = make_optimizer(model, config.optimizer)
  device_type = next(model.parameters()).device.type
  clip = config.optimizer.get('grad_clip_norm', 0.0)
  smoothing = config.get('label_smoothing', 0.0)

  def step(images, labels):
    with torch.autocast(device_type, torch.bfloat16, enabled=amp):
      logits = model(images)
      loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
      nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    # Our step reports the batch accuracy too.
    return loss.detach(), (logits.argmax(-1) == labels).float().mean()

  return step


def conv2d_calls(x: np.ndarray, kernel: np.ndarray, dy: np.ndarray, padding: int):
  """PyTorch's ``conv2d`` on the same data as a channels-last ``ops.conv2d`` call.

  Args:
    x: ``(N, H, W, C_in)`` float32 input.
    kernel: ``(KH, KW, C_in, C_out)`` float32 kernel.
    dy: ``(N, H_out, W_out, C_out)`` float32 gradient of the output.
    padding: zeros on every side of each spatial axis.

  Returns:
    ``(forward, forward_backward)``: no-argument callables that run, on NCHW copies,
    the convolution alone, and the convolution with the gradients of the input and
    the kernel for ``dy`` (as a train step computes them). The latter returns
    ``(dx, dkernel)`` in PyTorch's layouts.
  """
  def nchw(a, axes):
    return torch.from_numpy(np.ascontiguousarray(a.transpose(axes)))

  tx = nchw(x, (0, 3, 1, 2)).requires_grad_()
  tk = nchw(kernel, (3, 2, 0, 1)).requires_grad_()
  tdy = nchw(dy, (0, 3, 1, 2))

  def forward():
    with torch.no_grad():
      return F.conv2d(tx, tk, padding=padding)

  def forward_backward():
    return torch.autograd.grad(F.conv2d(tx, tk, padding=padding), (tx, tk), tdy)

  return forward, forward_backward


def _input_fn(dataset_config, nsp: int, memory_format, device='cpu'):
  """Stored batch -> float model input: uint8 scaled to [0, 1], then normalised if set."""
  augment = data_lib.augment_config(dataset_config)
  mean = std = None
  if augment.normalize:  # one value per channel, or one for all
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device).view((-1,) + (1,) * nsp)
                 for v in (augment.mean, augment.std))

  def prepare(images):
    x = images.float()
    if images.dtype == torch.uint8:
      x = x.div_(255.0)
    if mean is not None:
      x = (x - mean) / std
    return x.contiguous(memory_format=memory_format)

  return prepare


def _permuted_batches(n: int, batch_size: int, generator):
  """Index batches of a fresh permutation per epoch, as the Trainer feeds its step."""
  for _ in itertools.count():
    perm = torch.randperm(n, generator=generator, device=generator.device)
    for b in range(n // batch_size):
      yield perm[b * batch_size:(b + 1) * batch_size]


def benchmark_case(case: benchmark.Case, batch_size: int, *, steps: int = 20,
                   repeats: int = 3, warmup_steps: int = 3, data: str = 'synthetic',
                   channels_last: bool = False, num_threads: int | None = None,
                   device: str = 'cpu', amp: bool = False, compile_model: bool = False
                   ) -> dict:
  """Train and eval images/s of the case's model in PyTorch, timed as ours are.

  Same data (:func:`cnn_jax.benchmark.case_splits`, NHWC moved to NCHW before timing),
  same protocol as :func:`cnn_jax.benchmark.benchmark_case`: ``warmup_steps`` untimed
  train steps, then the median of ``repeats`` windows of ``steps`` steps; eval: one
  untimed pass, then ``repeats`` passes over ``steps`` test batches (forward, summed
  loss, top-1 and top-5 hits, under ``torch.inference_mode``). PyTorch on the CPU is
  synchronous, so a window ends when its last step returns; on a GPU it ends with
  ``torch.cuda.synchronize``. The data is copied to ``device`` before timing.

  Args:
    case: a benchmark case (see :func:`check_case` for what is refused).
    batch_size: train and eval batch size.
    steps: steps per timed window.
    repeats: timed windows; the median is reported.
    warmup_steps: untimed train steps first.
    data: ``'synthetic'`` or ``'real'``.
    channels_last: run images and convolutions in ``torch.channels_last`` memory format.
    num_threads: ``torch.set_num_threads`` (process-wide); default
      :func:`default_num_threads`, the CPUs XLA uses.
    device: the torch device, e.g. ``'cuda'``.
    amp: forward passes under bfloat16 autocast (the mirror of ``half_precision``).
    compile_model: ``torch.compile`` the model (compiled during the warm-up steps; its
      errors are raised, the caller may retry without).

  Returns:
    ``{'framework', 'version', 'description', 'num_threads', 'channels_last', 'device',
    'amp', 'compile', 'params', 'train_images_per_sec', 'train_window_s',
    'eval_images_per_sec', 'eval_window_s'}``.

  Raises:
    ValueError: for what :func:`check_case` refuses, or ``channels_last`` on 1-D inputs.
  """
  check_case(case, amp=amp)
  nsp = len(case.input_shape) - 1
  if channels_last and nsp != 2:
    raise ValueError(f'{case.name}: channels_last needs 2-D images, got input shape '
                     f'{case.input_shape}')
  config = case.config
  num_threads = num_threads or default_num_threads()
  torch.set_num_threads(num_threads)
  torch.manual_seed(config.seed)
  kwargs = dict(config.model)
  model = build(kwargs.pop('name'), case.input_shape, **kwargs)
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  model = model.to(device=device, memory_format=memory_format)
  params = sum(p.numel() for p in model.parameters())
  if compile_model:
    model = torch.compile(model)
  prepare = _input_fn(config.dataset, nsp, memory_format, device)

  def to_torch(split):
    images, labels = split
    images = torch.from_numpy(np.moveaxis(images, -1, 1)).to(device)
    return (images.contiguous(memory_format=memory_format),
            torch.from_numpy(labels).long().to(device))

  def sync():
    if torch.device(device).type == 'cuda':
      torch.cuda.synchronize(device)

  splits = benchmark.case_splits(case, batch_size * steps, data)
  (train_x, train_y), (test_x, test_y) = to_torch(splits['train']), to_torch(splits['test'])
  step = make_train_step(model, config, amp)
  batches = _permuted_batches(len(train_y), batch_size,
                              torch.Generator(device).manual_seed(config.seed))

  def train_window(n):
    for _ in range(n):
      idx = next(batches)
      step(prepare(train_x.index_select(0, idx)), train_y.index_select(0, idx))
    sync()

  model.train()
  train_window(warmup_steps)
  train_s, train_windows = benchmark.median_window(lambda: train_window(steps), repeats)

  def evaluate():
    totals = torch.zeros(3, device=device)
    with torch.inference_mode(), torch.autocast(torch.device(device).type, torch.bfloat16,
                                                enabled=amp):
      for b in range(0, len(test_y), batch_size):
        x, y = prepare(test_x[b:b + batch_size]), test_y[b:b + batch_size]
        logits = model(x).float()
        top5 = logits.topk(min(5, logits.shape[-1]), -1).indices
        totals += torch.stack([F.cross_entropy(logits, y, reduction='sum'),
                               (logits.argmax(-1) == y).sum(),
                               (top5 == y[:, None]).any(-1).sum()])
    sync()
    return totals

  model.eval()
  evaluate()
  eval_s, eval_windows = benchmark.median_window(evaluate, repeats)
  layout = 'channels_last' if channels_last else 'NCHW'
  where = f'{num_threads} threads' if torch.device(device).type == 'cpu' else device
  extras = ''.join([', bf16 autocast' if amp else '', ', torch.compile' if compile_model else ''])
  return {
      'framework': FRAMEWORK, 'version': torch.__version__,
      'description': (f'PyTorch {torch.__version__} (experiments/torch_reference.py), '
                      f"{where}, {layout}{extras}, each config's optimizer at its "
                      f'peak learning rate'),
      'num_threads': num_threads, 'channels_last': channels_last, 'device': device,
      'amp': amp, 'compile': compile_model, 'params': params,
      'train_images_per_sec': batch_size * steps / train_s, 'train_window_s': train_windows,
      'eval_images_per_sec': batch_size * steps / eval_s, 'eval_window_s': eval_windows,
  }
