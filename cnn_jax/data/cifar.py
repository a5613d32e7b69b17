"""Reading the CIFAR-10/100 archives, python or binary version, with checks.

Accepts what https://www.cs.toronto.edu/~kriz/cifar.html distributes, either still packed
(``cifar-10-python.tar.gz``, ``cifar-10-binary.tar.gz``, ``cifar-100-python.tar.gz``,
``cifar-100-binary.tar.gz``) or extracted (``cifar-10-batches-py/`` etc.). The python
version is a pickle per batch; it is read with an unpickler that only builds plain
containers and numpy arrays, so a tampered file cannot run code.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

_IMAGE_BYTES = 32 * 32 * 3


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
    CifarFormatError: for missing members, truncated archives or records, or contents
      that are not CIFAR batches.
  """
  for version, layout in _LAYOUTS[name].items():
    members = layout.meta_files + sum(layout.split_files.values(), ())
    archive = os.path.join(directory, layout.archive)
    if os.path.isfile(archive):
      files, blobs = [archive], _read_archive(archive, layout.folder, members)
      break
    folder = next((d for d in (os.path.join(directory, layout.folder), directory)
                   if all(os.path.isfile(os.path.join(d, m)) for m in members)), None)
    if folder:
      files = [os.path.join(folder, m) for m in members]
      blobs = {m: _read_bytes(f) for m, f in zip(members, files)}
      break
  else:
    searched = [p for layout in _LAYOUTS[name].values()
                for p in (layout.archive, layout.folder + '/')]
    raise FileNotFoundError(f'no {name} archive or extracted folder in {directory}: looked '
                            f'for {", ".join(searched)}')
  parse = _parse_python if version == 'python' else _parse_binary
  splits = {}
  for split, split_members in layout.split_files.items():
    parts = [parse(name, blobs[m], m) for m in split_members]
    arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    arrays['id'] = np.array([f'{split}_{i:05d}' for i in range(len(arrays['image']))])
    splits[split] = arrays
  if version == 'python':
    meta = _unpickle(blobs[layout.meta_files[0]], layout.meta_files[0])
    label_names = {key: [_text(n) for n in meta[field]]
                   for key, field in _PY_NAMES[name].items()}
  else:
    label_names = {_BIN_NAMES[m]: [n for n in _text(blobs[m]).splitlines() if n.strip()]
                   for m in layout.meta_files}
  return CifarData(splits, label_names, files)


def _read_bytes(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read()


def _read_archive(path: str, folder: str, members: tuple[str, ...]) -> dict[str, bytes]:
  wanted = {f'{folder}/{m}': m for m in members}
  blobs = {}
  try:
    with tarfile.open(path, 'r:gz') as tar:
      for info in tar:
        if info.name in wanted and info.isfile():
          blobs[wanted[info.name]] = tar.extractfile(info).read()
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
  out = {'image': _to_nhwc(pixels)}
  for key, field in _PY_LABELS[name].items():
    labels = np.asarray(batch.get(field, []), np.int64)
    if labels.shape != (len(pixels),):
      raise CifarFormatError(f'{what}: {len(pixels)} images but {labels.size} '
                             f'{field.decode()}')
    out[key] = labels
  return out


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


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)
