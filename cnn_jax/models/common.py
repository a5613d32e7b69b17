"""Building blocks shared by the architectures: setting broadcast, activations,
the pooling-or-strided-conv choice, conv -> BatchNorm -> activation, and the dense
classifier head.

The helpers create submodules in the calling module's ``@nn.compact`` scope, so their
parameters sit flat under the names they are given (``'conv1'``, ``'conv1_bn'``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnn_jax import layers


def _lecun_tanh(x):
  # LeCun et al. 1998, appendix A: f(a) = 1.7159 tanh(2a/3), so f(+-1) = +-1.
  return 1.7159 * jnp.tanh(2.0 / 3.0 * x)


# The names a model's ``activation`` field takes.
ACTIVATIONS = {'relu': nn.relu, 'tanh': jnp.tanh, 'lecun_tanh': _lecun_tanh,
               'gelu': nn.gelu, 'elu': nn.elu}


# The names a ``pool`` field takes (see :func:`downsample`).
POOLS = ('max', 'avg', 'conv', 'none')


def check_image_batch(model: str, x) -> None:
  """Raises ValueError, naming ``model``, unless ``x`` is an ``(N, H, W, C)`` batch."""
  if x.ndim != 4:
    raise ValueError(f'{model} expects a batch (N, H, W, C), got shape {x.shape}')


def per_block(value, n: int, name: str, blocks: str = 'conv blocks (len(features))') -> tuple:
  """Broadcasts a scalar setting to ``n`` blocks, or checks a per-block sequence.

  Args:
    value: one setting for every block, or a list/tuple of ``n`` settings.
    n: number of blocks.
    name: the field's name, for the message.
    blocks: what the blocks are, for the message.

  Returns:
    A tuple of ``n`` settings.

  Raises:
    ValueError: if a sequence has the wrong length.
  """
  if isinstance(value, (list, tuple)):
    if len(value) != n:
      raise ValueError(f'{name}={value!r} has {len(value)} entries but the model has {n} '
                       f'{blocks}; give one value or {n} values')
    return tuple(value)
  return (value,) * n


def activation(name: str) -> Callable:
  """Looks up an activation function by name."""
  if name not in ACTIVATIONS:
    raise ValueError(f'unknown activation={name!r}; choose one of {sorted(ACTIVATIONS)}')
  return ACTIVATIONS[name]


def downsample(x, pool: str, window: int, stride: int, padding: Any, *, act: Callable,
               dtype: Any, name: str):
  """A pooling layer, or the learned layer that replaces it in ablations.

  ``'conv'`` is the "all convolutional" replacement (Springenberg et al. 2015): a
  convolution with the pool's window, stride and padding and as many output channels
  as inputs, followed by ``act``. ``'none'`` drops the layer and its downsampling.

  Args:
    x: ``(N, *spatial, C)`` input.
    pool: ``'max'``, ``'avg'``, ``'conv'`` or ``'none'``.
    window: window (kernel) size, used on every spatial axis.
    stride: stride, used on every spatial axis.
    padding: padding of the pool or conv (see :func:`cnn_jax.ops.shapes.resolve_padding`).
    act: activation after the ``'conv'`` replacement.
    dtype: computation dtype of the ``'conv'`` replacement.
    name: submodule name, e.g. ``'pool1'``.

  Returns:
    The downsampled array (``x`` itself for ``'none'``).

  Raises:
    ValueError: for an unknown ``pool``, naming the layer.
  """
  nsp = x.ndim - 2
  window, stride = (window,) * nsp, (stride,) * nsp
  if pool == 'max':
    return layers.MaxPool(window, stride, padding, name=name)(x)
  if pool == 'avg':
    return layers.AvgPool(window, stride, padding, name=name)(x)
  if pool == 'conv':
    return act(layers.Conv(x.shape[-1], window, strides=stride, padding=padding, dtype=dtype,
                           name=name)(x))
  if pool == 'none':
    return x
  raise ValueError(f"{name}: pool must be 'max', 'avg' or 'none' (or 'conv', a learned "
                   f"strided convolution), got {pool!r}")


def conv_bn(x, features: int, kernel: int, *, strides: int = 1, padding: Any = None,
            train: bool, batch_norm: bool = True, act: Callable | None = nn.relu,
            dtype: Any = None, bn_momentum: float = 0.9, bn_epsilon: float = 1e-5,
            name: str):
  """Square conv -> optional BatchNorm -> optional activation.

  With BatchNorm the conv has no bias (the BatchNorm offset replaces it), as in the
  torchvision ResNet and GoogLeNet whose parameter counts the zoo reproduces. The
  default padding is PyTorch's symmetric ``kernel // 2``, so the receptive-field
  geometry (and the output size for any input) matches those references.

  Args:
    x: ``(N, H, W, C)`` or ``(N, W, C)`` input.
    features: output channels.
    kernel: kernel size on every spatial axis.
    strides: conv stride.
    padding: any padding ``layers.Conv`` takes; None for ``kernel // 2`` on each side.
    train: BatchNorm uses batch statistics (and updates ``batch_stats``) if True,
      the running averages if False.
    batch_norm: add BatchNorm after the conv.
    act: activation after the normalisation; None for none (a residual branch end).
    dtype: computation dtype.
    bn_momentum: BatchNorm running-average decay (PyTorch's momentum 0.1 is 0.9 here).
    bn_epsilon: BatchNorm epsilon.
    name: conv name; the BatchNorm is ``name + '_bn'``.

  Returns:
    The activated feature map.
  """
  x = layers.Conv(features, (kernel,) * (x.ndim - 2), strides=strides,
                  padding=kernel // 2 if padding is None else padding,
                  use_bias=not batch_norm, dtype=dtype, name=name)(x)
  if batch_norm:
    x = layers.BatchNorm(use_running_average=not train, momentum=bn_momentum,
                         epsilon=bn_epsilon, dtype=dtype, name=f'{name}_bn')(x)
  return act(x) if act is not None else x


def dense_head(x, hidden: Sequence[int], num_classes: int, *, act: Callable, dropout_rate: Any,
               train: bool, dtype: Any = None,
               names: Callable[[int], tuple[str, str]] = lambda i: (f'dense{i}', f'dropout{i}'),
               head: str = 'head'):
  """Flatten -> [Dense -> ``act`` -> Dropout] per hidden width -> Dense logits.

  The layer names are the caller's so that each architecture keeps the names of its
  reference (``fc6``/``fc7`` in AlexNet, ``f6`` and ``output`` in LeNet-5): checkpoints
  and the PyTorch mirror in ``experiments/torch_reference.py`` address parameters by
  them, and dropout keys are folded from them.

  Args:
    x: ``(N, ...)`` features; everything after the batch axis is flattened.
    hidden: widths of the hidden dense layers (may be empty).
    num_classes: width of the output layer.
    act: activation after each hidden dense layer.
    dropout_rate: dropout after each hidden layer, one value or one per layer.
    train: enables dropout (needs a ``'dropout'`` rng).
    dtype: computation dtype.
    names: ``i -> (dense name, dropout name)`` of hidden layer ``i``.
    head: the output layer's name.

  Returns:
    Logits ``(N, num_classes)`` in float32, whatever ``dtype`` (a softmax in bfloat16
    loses the small probabilities).

  Raises:
    ValueError: if a per-layer ``dropout_rate`` does not have one entry per hidden layer.
  """
  rates = per_block(dropout_rate, len(hidden), 'dropout_rate', 'hidden layers (len(hidden))')
  x = x.reshape(x.shape[0], -1)
  for i, (width, rate) in enumerate(zip(hidden, rates)):
    dense, dropout = names(i)
    x = act(layers.Dense(width, dtype=dtype, name=dense)(x))
    x = layers.Dropout(rate, name=dropout)(x, deterministic=not train)
  x = layers.Dense(num_classes, dtype=dtype, name=head)(x)
  return x.astype(jnp.float32)
