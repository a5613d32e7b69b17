"""Config files and command-line overrides, with errors that say what to type instead."""

from __future__ import annotations

import ast
import difflib
import os
import runpy

import ml_collections


def _call_in_file(spec: str, name: str):
  """Calls function ``name`` of the config file ``path[:arg]`` (with ``arg`` if given).

  Returns:
    What it returns, or None if the file defines no such function.
  """
  path, _, arg = spec.partition(':')
  function = runpy.run_path(path).get(name)
  if function is None:
    return None
  return function(arg) if arg else function()


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads ``path[:arg]`` the way ``config_flags.DEFINE_config_file`` does.

  Args:
    spec: a config file path, optionally followed by ``:arg`` passed to ``get_config``.

  Returns:
    The ConfigDict.

  Raises:
    ValueError: if the file defines no ``get_config``.
  """
  config = _call_in_file(spec, 'get_config')
  if config is None:
    raise ValueError(f'{spec.partition(":")[0]} defines no get_config()')
  return config


def config_name(spec: str) -> str:
  """The config file's name without folder and extension, e.g. ``'lenet5_fashion_mnist'``.

  Args:
    spec: a config file path, optionally followed by ``:arg``.
  """
  return os.path.splitext(os.path.basename(spec.partition(':')[0]))[0]


def load_sweep(spec: str) -> dict:
  """The sweep axes of a config file's optional ``get_sweep()`` (big_vision style).

  Args:
    spec: a config file path, optionally followed by ``:arg``, passed to ``get_sweep``
      as to ``get_config``.

  Returns:
    ``{dotted_key: [values, ...]}`` in the file's order; empty if the file defines no
    ``get_sweep``.
  """
  return dict(_call_in_file(spec, 'get_sweep') or {})


def load_study(spec: str) -> dict:
  """The grid of a study's config file, its ``get_study()`` (see :mod:`cnn_jax.studies`).

  Args:
    spec: a config file path, optionally followed by ``:arg``.

  Returns:
    The dict ``get_study`` returns.

  Raises:
    ValueError: if the file defines no ``get_study``.
  """
  grid = _call_in_file(spec, 'get_study')
  if grid is None:
    raise ValueError(f'{spec.partition(":")[0]} defines no get_study()')
  return dict(grid)


def _field_paths(config, prefix: str = '') -> list[str]:
  paths = []
  for key, value in config.items():
    paths.append(prefix + key)
    if isinstance(value, ml_collections.ConfigDict):
      paths += _field_paths(value, f'{prefix}{key}.')
  return paths


def get_field(config, key: str):
  """The value at a dotted path of a ConfigDict, e.g. ``'model.dropout_rate'``."""
  for part in key.split('.'):
    config = config[part]
  return config


def unknown_override_error(config, key: str) -> str | None:
  """Describes why ``key`` (e.g. ``'model.dropout_rat'``) is not a field of ``config``.

  Args:
    config: the ConfigDict.
    key: dotted field path.

  Returns:
    An error message naming the field and the closest valid names, or None if the
    field exists.
  """
  paths = _field_paths(config)
  if key in paths:
    return None
  close = difflib.get_close_matches(key, paths, n=3, cutoff=0.6)
  parent = key.rpartition('.')[0]
  siblings = [p for p in paths if p.rpartition('.')[0] == parent]
  hint = f' Did you mean: {", ".join(close)}?' if close else ''
  return (f'unknown config field {key!r}.{hint} Fields at that level: '
          f'{", ".join(sorted(siblings)) or "(none)"}')


def parse_literal(text: str):
  """A Python literal (``10``, ``0.5``, ``True``, ``(1, 2)``), else the text itself.

  A bare word is a string, as ``config_flags`` reads it.
  """
  try:
    return ast.literal_eval(text)
  except (SyntaxError, ValueError):
    return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict
                    ) -> ml_collections.ConfigDict:
  """A copy of ``config`` with dotted-key overrides (``{'model.dropout_rate': 0.3}``).

  The one override parser of train, sweep and reproduce: each field keeps its type
  (an int becomes a float for a float field; a list a tuple).

  Args:
    config: the base config (not modified).
    overrides: dotted field -> value.

  Returns:
    The new ConfigDict.

  Raises:
    ValueError: for a field the config does not have (naming the closest ones), or a
      value the field's type cannot take.
  """
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in overrides.items():
    error = unknown_override_error(config, key)
    if error:
      raise ValueError(error)
    try:
      config.update_from_flattened_dict({key: value})
    except TypeError as e:  # ml_collections keeps each field's type
      raise ValueError(f'{key}={value!r}: {e}') from None
  return config


def check_overrides(argv: list[str], flag: str, default_spec: str) -> None:
  """Raises a one-line error if a ``--flag.a.b=value`` override cannot apply.

  ml_collections would raise an AttributeError deep inside flag parsing for a field
  that does not exist, and an int parse error for a tuple given to a one-value field
  (``--config.model.strides=(1,2,2)``): a flag is parsed as the field's current type.
  Checking first gives the user one line naming the field and what to do instead.

  Args:
    argv: the command line (``sys.argv``).
    flag: the config flag's name (``'config'``).
    default_spec: the flag's default config file.

  Raises:
    ValueError: for an unknown field, or a sequence given to a one-value field.
  """
  spec = default_spec
  overrides = []
  args = argv[1:]
  for i, arg in enumerate(args):
    name, eq, value = arg.lstrip('-').partition('=')
    if name == flag:
      # absl accepts both --config=path and --config path.
      spec = value if eq else (args[i + 1] if i + 1 < len(args) else spec)
    elif name.startswith(flag + '.'):
      overrides.append((name[len(flag) + 1:], value))
  if not overrides:
    return
  config = load_config(spec)
  for key, value in overrides:
    error = unknown_override_error(config, key)
    if error:
      raise ValueError(f'{error} (config file: {spec})')
    current = get_field(config, key)
    if value.strip()[:1] in ('(', '[') and not isinstance(current, (list, tuple)):
      raise ValueError(
          f'--{flag}.{key}={value}: {key} holds one value ({current!r}) in {spec}, '
          f'and a flag keeps the type of the value it replaces. Set a sequence in a '
          f'config file that builds on this one (config.{key} = {value}) and pass that '
          f'file to --{flag}.')
