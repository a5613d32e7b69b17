"""Architectures built from :mod:`cnn_jax.layers`, chosen by name.

``create('simple_cnn', features=(32, 64))`` returns a Flax module; the names are
what configs put in ``config.model.name``.
"""

from __future__ import annotations

import difflib
from typing import Callable

import flax.linen as nn

from cnn_jax.models.simple_cnn import SimpleCNN

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    'simple_cnn': SimpleCNN,
}


def names() -> list[str]:
  """The registered model names, sorted."""
  return sorted(_REGISTRY)


def create(name: str, **kwargs) -> nn.Module:
  """Builds a registered model.

  Args:
    name: registry name, e.g. ``'simple_cnn'``.
    **kwargs: the module's fields.

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
  fields = set(getattr(cls, '__dataclass_fields__', {})) - {'parent', 'name'}
  unknown = sorted(set(kwargs) - fields)
  if unknown:
    raise ValueError(f'model {name!r} has no field(s) {unknown}; its fields are '
                     f'{sorted(fields)}')
  return cls(**kwargs)
