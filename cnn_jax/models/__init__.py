"""Architectures built from :mod:`cnn_jax.layers`, chosen by name.

``create('simple_cnn', features=(32, 64))`` returns a Flax module; the names are
what configs put in ``config.model.name``. Presets are ``functools.partial`` of a
module class (``resnet50`` is ``ResNet`` with ``stage_sizes=(3, 4, 6, 3)`` and
``block='bottleneck'``); keyword arguments override any field, a preset's too.
"""

from __future__ import annotations

import difflib
import functools
from typing import Callable

import flax.linen as nn

from cnn_jax.models import alexnet, resnet
from cnn_jax.models.cnn1d import CNN1D
from cnn_jax.models.googlenet import GoogLeNet
from cnn_jax.models.lenet import LeNet5
from cnn_jax.models.mlp import MLP
from cnn_jax.models.simple_cnn import SimpleCNN

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    'mlp': MLP,
    'simple_cnn': SimpleCNN,
    'cnn1d': CNN1D,
    'lenet5': LeNet5,
    'alexnet': alexnet.AlexNet,
    'alexnet_small': alexnet.AlexNetSmall,
    'googlenet': GoogLeNet,
    'resnet18': resnet.ResNet18,
    'resnet34': resnet.ResNet34,
    'resnet50': resnet.ResNet50,
    'resnet101': resnet.ResNet101,
    'resnet152': resnet.ResNet152,
    'resnet20': resnet.ResNet20,
    'resnet32': resnet.ResNet32,
    'resnet44': resnet.ResNet44,
    'resnet56': resnet.ResNet56,
    'resnet110': resnet.ResNet110,
}


def names() -> list[str]:
  """The registered model names, sorted."""
  return sorted(_REGISTRY)


def create(name: str, **kwargs) -> nn.Module:
  """Builds a registered model.

  Args:
    name: registry name, e.g. ``'simple_cnn'`` or ``'resnet50'``.
    **kwargs: the module's fields (for a preset, overriding its settings).

  Returns:
    The Flax module.

  Raises:
    ValueError: for an unknown name (listing the registered ones) or an unknown field.
  """
  if name not in _REGISTRY:
    close = difflib.get_close_matches(name, names(), n=3)
    hint = f' (did you mean {", ".join(close)}?)' if close else ''
    raise ValueError(f'unknown model {name!r}{hint}; registered models: {", ".join(names())}')
  cls = _REGISTRY[name]
  # A preset's fields are those of the class it wraps.
  target = cls.func if isinstance(cls, functools.partial) else cls
  fields = set(getattr(target, '__dataclass_fields__', {})) - {'parent', 'name'}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f'model {name!r} has no field(s) {unknown}; its fields are '
                     f'{sorted(fields)}')
  return cls(**kwargs)
