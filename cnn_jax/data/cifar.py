"""Reading the CIFAR-10/100 archives, python or binary version, with checks.

Accepts what https://www.cs.toronto.edu/~kriz/cifar.html distributes, either still packed
(``cifar-10-python.tar.gz``, ``cifar-10-binary.tar.gz``, ``cifar-100-python.tar.gz``,
``cifar-100-binary.tar.gz``) or extracted (``cifar-10-batches-py/`` etc.). The python
version is a pickle per batch; it is read with an unpickler that only builds plain
containers and numpy arrays, so a tampered file cannot run code. Sizes are bounded by the
published split sizes before anything is read or copied, so a crafted file cannot claim
more memory than the real dataset needs.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from cnn_jax.data import bounded, catalog

_IMAGE_BYTES = 32 * 32 * 3
# Bounds on a member's size. Per example: the pixels plus labels, a file name and pickle
# framing (the real files need < 3200 bytes), doubled because Python 3 re-pickles bytes
# with protocol 2 as UTF-8 text, two bytes for each value >= 128. Meta files hold only
# name lists (the real ones are < 2 KB).
_MAX_BYTES_PER_EXAMPLE = 8192
_MAX_META_BYTES = 1 << 20


class CifarFormatError(ValueError):
  """A CIFAR file is missing from its archive, truncated or not in the CIFAR format."""


@dataclasses.dataclass(frozen=True)
class _Layout:
  archive: str
  folder: str
  split_files: dict[str, tuple[str, ...]]
  meta_files: tuple[str, ...]


_BATCHES = tuple(f'data_batch_{i}' for i in range(1, 6))
_LAYOUTS = {
    'cifar10': {
        'python': _Layout('cifar-10-python.tar.gz', 'cifar-10-batches-py',
                          {'train': _BATCHES, 'test': ('test_batch',)}, ('batches.meta',)),
        'binary': _Layout('cifar-10-binary.tar.gz', 'cifar-10-batches-bin',
                          {'train': tuple(b + '.bin' for b in _BATCHES),
                           'test': ('test_batch.bin',)}, ('batches.meta.txt',)),
    },
    'cifar100': {
        'python': _Layout('cifar-100-python.tar.gz', 'cifar-100-python',
                          {'train': ('train',), 'test': ('test',)}, ('meta',)),
        'binary': _Layout('cifar-100-binary.tar.gz', 'cifar-100-binary',
                          {'train': ('train.bin',), 'test': ('test.bin',)},
                          ('coarse_label_names.txt', 'fine_label_names.txt')),
    },
}
# TFDS feature name -> key in the python batches / name-list key in the python meta file.
_PY_LABELS = {'cifar10': {'label': b'labels'},
              'cifar100': {'label': b'fine_labels', 'coarse_label': b'coarse_labels'}}
_PY_NAMES = {'cifar10': {'label': b'label_names'},
             'cifar100': {'label': b'fine_label_names', 'coarse_label': b'coarse_label_names'}}
# The binary records start with their label bytes in this order, then 3072 pixel bytes.
_BIN_LABELS = {'cifar10': ('label',), 'cifar100': ('coarse_label', 'label')}
_BIN_NAMES = {'batches.meta.txt': 'label', 'fine_label_names.txt': 'label',
              'coarse_label_names.txt': 'coarse_label'}
_NUM_CLASSES = {'cifar10': {'label': 10}, 'cifar100': {'label': 100, 'coarse_label': 20}}

# What a CIFAR python batch legitimately needs to unpickle: numpy arrays and their dtype,
# and _codecs.encode, with which Python 3 writes bytes in pickle protocol 2 (re-pickled
# copies of the batches).
_SAFE_GLOBALS = {('numpy', 'ndarray'), ('numpy', 'dtype'),
                 ('numpy.core.multiarray', '_reconstruct'),
                 ('numpy._core.multiarray', '_reconstruct'), ('_codecs', 'encode')}


class _RestrictedUnpickler(pickle.Unpickler):

  def find_class(self, module, name):
    if (module, name) in _SAFE_GLOBALS:
      return super().find_class(module, name)
    raise pickle.UnpicklingError(f'refusing to load {module}.{name}: a CIFAR batch holds '
                                 f'only lists, bytes and numpy arrays')


@dataclasses.dataclass
class CifarData:
  """The examples of a CIFAR dataset read from local files.

  Attributes:
    splits: ``{'train' | 'test': {feature: array}}`` with uint8 ``(N, 32, 32, 3)``
      ``'image'``, int64 labels (``'label'``, plus ``'coarse_label'`` for CIFAR-100) and
      TFDS-style ``'id'`` strings (``'train_00000'``, ...).
    label_names: class names per label feature, from the archive's meta file.
    files: the files read, in order.
  """
  splits: dict[str, dict[str, np.ndarray]]
  label_names: dict[str, list[str]]
  files: list[str]


def read(name: str, directory: str) -> CifarData:
  """Reads CIFAR-10 or CIFAR-100 from an archive or extracted folder in ``directory``.

  Args:
    name: ``'cifar10'`` or ``'cifar100'``.
    directory: folder holding a CIFAR archive, its extracted folder, or the extracted
      folder itself.

  Returns:
    The verified examples, see :class:`CifarData`. Label ranges and split sizes are
    checked by the caller against the TFDS features and published sizes.

  Raises:
    FileNotFoundError: if no archive or folder of either version is found.
    CifarFormatError: for missing members, truncated archives or records, contents
      that are not CIFAR batches, files or counts beyond what the published splits
      need, or too little memory to hold them.
  """
  try:
    return _read(name, directory)
  except MemoryError as e:
    raise CifarFormatError(f'{directory}: out of memory reading {name} ({e}); the files '
                           f'hold more than CIFAR or this machine has too little memory'
                           ) from e


def _read(name: str, directory: str) -> CifarData:
  published = catalog.get(name).split_sizes
  for version, layout in _LAYOUTS[name].items():
    limits = dict.fromkeys(layout.meta_files, _MAX_META_BYTES)
    for split, split_members in layout.split_files.items():
      limits.update(dict.fromkeys(split_members,
                                  published[split] * _MAX_BYTES_PER_EXAMPLE))
    archive = os.path.join(directory, layout.archive)
    if os.path.isfile(archive):
      files = [archive]
      where = {m: f'{archive} ({layout.folder}/{m})' for m in limits}
      blobs = _read_archive(archive, layout.folder, limits)
      break
    folder = next((d for d in (os.path.join(directory, layout.folder), directory)
                   if all(os.path.isfile(os.path.join(d, m)) for m in limits)), None)
    if folder:
      files = [os.path.join(folder, m) for m in limits]
      where = dict(zip(limits, files))
      blobs = {m: _read_file(where[m], limits[m]) for m in limits}
      break
  else:
    searched = [p for layout in _LAYOUTS[name].values()
                for p in (layout.archive, layout.folder + '/')]
    raise FileNotFoundError(f'no {name} archive or extracted folder in {directory}: looked '
                            f'for {", ".join(searched)}')
  splits = {split: _read_split(name, version, split, [(blobs[m], where[m]) for m in ms],
                               published[split])
            for split, ms in layout.split_files.items()}
  if version == 'python':
    what = where[layout.meta_files[0]]
    meta = _unpickle(blobs[layout.meta_files[0]], what)
    label_names = {key: _names(name, key, meta.get(field) if isinstance(meta, dict)
                               else None, what, field.decode())
                   for key, field in _PY_NAMES[name].items()}
  else:
    label_names = {_BIN_NAMES[m]: _names(name, _BIN_NAMES[m], _lines(blobs[m], where[m]),
                                         where[m], 'names')
                   for m in layout.meta_files}
  return CifarData(splits, label_names, files)


def _read_split(name: str, version: str, split: str, parts: list[tuple[bytes, str]],
                limit: int) -> dict[str, np.ndarray]:
  """Parses the files of one split, at most ``limit`` examples in all."""
  parse = _parse_python if version == 'python' else _parse_binary
  arrays, count = [], 0
  for data, what in parts:
    arrays.append(parse(name, data, what))
    count += len(arrays[-1]['image'])
    if count > limit:
      raise CifarFormatError(f'{what}: the {split} split reaches {count} examples, more '
                             f'than the {limit} of the published {name} {split} split; '
                             f'the files are corrupt or not {name}')
  out = {key: np.concatenate([a[key] for a in arrays]) for key in arrays[0]}
  out['id'] = np.array([f'{split}_{i:05d}' for i in range(count)])
  return out


def _read_file(path: str, limit: int) -> bytes:
  with open(path, 'rb') as f:
    data = bounded.read_at_most(f, limit)
  if len(data) > limit:
    raise CifarFormatError(f'{path}: larger than the {limit} bytes this CIFAR file can '
                           f'need; it is corrupt or not a CIFAR file')
  return data


def _read_archive(path: str, folder: str, limits: dict[str, int]) -> dict[str, bytes]:
  """Reads the members named in ``limits`` from ``folder/`` in a tar.gz, each bounded."""
  members = tuple(limits)
  wanted = {f'{folder}/{m}': m for m in members}
  blobs = {}
  try:
    with tarfile.open(path, 'r:gz') as tar:
      for info in tar:
        if info.name in wanted and info.isfile():
          member = wanted[info.name]
          # The header's size is what extractfile reads: check it before inflating.
          if info.size > limits[member]:
            raise CifarFormatError(
                f'{path} ({info.name}) declares {info.size} bytes, more than the '
                f'{limits[member]} bytes this CIFAR file can need; the archive is corrupt '
                f'or not a CIFAR archive')
          blobs[member] = tar.extractfile(info).read()
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    raise CifarFormatError(f'{path}: cannot be read ({e}); the archive is corrupt or '
                           f'truncated, download it again') from e
  missing = sorted(set(members) - set(blobs))
  if missing:
    raise CifarFormatError(f'{path}: {folder}/{missing[0]} missing from the archive '
                           f'({len(missing)} of {len(members)} files missing)')
  return blobs


def _unpickle(data: bytes, what: str) -> dict:
  try:
    # The batches were pickled by Python 2: keys and strings are bytes.
    return _RestrictedUnpickler(io.BytesIO(data), encoding='bytes').load()
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
    raise CifarFormatError(f'{what}: not a CIFAR python batch ({e})') from e


def _parse_python(name: str, data: bytes, what: str) -> dict[str, np.ndarray]:
  batch = _unpickle(data, what)
  if not isinstance(batch, dict) or b'data' not in batch:
    raise CifarFormatError(f'{what}: not a CIFAR python batch (no data array)')
  pixels = batch[b'data']
  if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2
      or pixels.shape[1] != _IMAGE_BYTES):
    raise CifarFormatError(f'{what}: data must be uint8 (N, {_IMAGE_BYTES}), got '
                           f'{getattr(pixels, "dtype", type(pixels))} '
                           f'{getattr(pixels, "shape", "")}')
  _check_backed(pixels, len(data), what, 'data')
  out = {'image': _to_nhwc(pixels)}
  for key, field in _PY_LABELS[name].items():
    value = batch.get(field, [])
    if isinstance(value, np.ndarray):
      _check_backed(value, len(data), what, field.decode())
    try:
      labels = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as e:  # ragged or out-of-range ints
      raise CifarFormatError(f'{what}: {field.decode()} labels must be integers ({e})'
                             ) from e
    if labels.size and labels.dtype.kind not in 'iu':
      raise CifarFormatError(f'{what}: {field.decode()} labels must be integers, got '
                             f'{labels.dtype} values')
    if labels.shape != (len(pixels),):
      raise CifarFormatError(f'{what}: {len(pixels)} images but {labels.size} '
                             f'{field.decode()}')
    out[key] = labels.astype(np.int64)
  return out


def _check_backed(array: np.ndarray, available: int, what: str, field: str) -> None:
  """Refuses an array that is not a plain copy of bytes stored in the file.

  ``numpy.ndarray`` must be allow-listed for the real batches, but a pickle can also
  call it with zero or overlapping strides: a few bytes then look like gigabytes, which
  the first copy (concatenate) really allocates.
  """
  contiguous = array.flags.c_contiguous or array.flags.f_contiguous
  if array.nbytes > available or not contiguous:
    raise CifarFormatError(
        f'{what}: the {field} array {array.shape} (strides {array.strides}) is not backed '
        f'by the bytes of the file ({available}); the file is corrupt or crafted')


def _parse_binary(name: str, data: bytes, what: str) -> dict[str, np.ndarray]:
  label_keys = _BIN_LABELS[name]
  record = len(label_keys) + _IMAGE_BYTES
  if not data or len(data) % record:
    raise CifarFormatError(f'{what}: {len(data)} bytes is not a whole number of '
                           f'{record}-byte records; the file is truncated or corrupt')
  rows = np.frombuffer(data, np.uint8).reshape(-1, record)
  out = {'image': _to_nhwc(rows[:, len(label_keys):])}
  for i, key in enumerate(label_keys):
    out[key] = rows[:, i].astype(np.int64)
  return out


def _to_nhwc(pixels: np.ndarray) -> np.ndarray:
  # Each row is the 1024 red, then 1024 green, then 1024 blue values, row-major.
  return pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _lines(data: bytes, what: str) -> list[str]:
  """The non-blank lines of a binary version's name list."""
  try:
    return [n for n in data.decode().splitlines() if n.strip()]
  except UnicodeDecodeError as e:
    raise CifarFormatError(f'{what}: not UTF-8 text ({e})') from e


def _names(name: str, key: str, names, what: str, field: str) -> list[str]:
  """Checks a list of class names read from a meta file and returns it as strings."""
  expected = _NUM_CLASSES[name][key]
  if (not isinstance(names, list) or len(names) != expected
      or not all(isinstance(n, (bytes, str)) for n in names)):
    got = f'{len(names)} entries' if isinstance(names, list) else type(names).__name__
    raise CifarFormatError(f'{what}: {field} must be a list of {expected} names '
                           f'(strings), got {got}')
  try:
    return [n.decode() if isinstance(n, bytes) else n for n in names]
  except UnicodeDecodeError as e:
    raise CifarFormatError(f'{what}: {field} are not UTF-8 text ({e})') from e
