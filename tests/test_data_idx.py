"""IDX reading: tiny files written here, and the real Debian Fashion-MNIST when installed."""

import gzip
import os
import struct
import tracemalloc

import numpy as np
import pytest
from idx_files import write_idx, write_split

from cnn_jax.data import idx


@pytest.mark.parametrize('gz', [True, False])
def test_roundtrip(tmp_path, gz):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
  labels = np.array([0, 9, 3, 3, 1], np.uint8)
  write_split(tmp_path, 't10k', images, labels, gz=gz)
  got_x, got_y = idx.load_split(str(tmp_path), 'test')
  np.testing.assert_array_equal(got_x[..., 0], images)
  np.testing.assert_array_equal(got_y, labels)
  assert got_x.shape == (5, 4, 3, 1) and got_y.dtype == np.int32


def test_truncated_file(tmp_path):
  path = tmp_path / 'x-idx3-ubyte'
  write_idx(path, np.zeros((4, 2, 2), np.uint8))
  path.write_bytes(path.read_bytes()[:-3])
  with pytest.raises(idx.IdxFormatError, match=r'\(4, 2, 2\).*truncated'):
    idx.read_idx(str(path))


def test_truncated_gzip(tmp_path):
  path = tmp_path / 'x-idx3-ubyte.gz'
  write_idx(path, np.zeros((64, 8, 8), np.uint8))
  path.write_bytes(path.read_bytes()[:30])
  with pytest.raises(idx.IdxFormatError, match='corrupt or truncated'):
    idx.read_idx(str(path))


def test_bad_magic_and_rank(tmp_path):
  path = tmp_path / 'bad'
  write_idx(path, np.zeros((2, 2), np.uint8), magic_type=0x0D)  # 0x0D is float32 IDX
  with pytest.raises(idx.IdxFormatError, match='bad magic number 0x00000d02'):
    idx.read_idx(str(path))
  write_idx(path, np.zeros((2, 2), np.uint8))
  with pytest.raises(idx.IdxFormatError, match='declares 2 dimensions, expected 3'):
    idx.read_idx(str(path), expected_ndim=3)


def test_dims_whose_product_overflows_int64_are_refused(tmp_path):
  # 2**31 * 2**31 * 4 = 2**64: numpy's int64 product wraps to 0, which "matched" an empty
  # payload. The true size is far beyond any limit and must be refused before reading.
  path = tmp_path / 'x-idx3-ubyte'
  path.write_bytes(struct.pack('>HBB3I', 0, 0x08, 3, 2**31, 2**31, 4))
  with pytest.raises(idx.IdxFormatError, match=r'\(2147483648, 2147483648, 4\) '
                     r'\(18446744073709551616 bytes\).*limit of 1073741824'):
    idx.read_idx(str(path))


def test_payload_above_the_limit_is_refused_from_the_header(tmp_path):
  path = tmp_path / 'x-idx3-ubyte.gz'
  write_idx(path, np.zeros((2, 32, 32), np.uint8))  # 2048 bytes of data
  with pytest.raises(idx.IdxFormatError, match=r'\(2, 32, 32\) \(2048 bytes\).*limit of '
                                               r'1000 bytes'):
    idx.read_idx(str(path), max_bytes=1000)
  assert idx.read_idx(str(path), max_bytes=2048).shape == (2, 32, 32)


def test_gzip_is_not_inflated_past_the_declared_size(tmp_path):
  # A small .gz whose header declares 4 bytes but which inflates to 32 MiB: reading must
  # stop right after the declared bytes, so memory stays far below the inflated size.
  path = tmp_path / 'x-idx3-ubyte.gz'
  with gzip.open(path, 'wb') as f:
    f.write(struct.pack('>HBB3I', 0, 0x08, 3, 1, 2, 2))
    for _ in range(32):
      f.write(bytes(1 << 20))
  assert path.stat().st_size < 100_000
  tracemalloc.start()
  try:
    with pytest.raises(idx.IdxFormatError) as error:
      idx.read_idx(str(path))
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert peak < 4 << 20, f'{peak} bytes allocated'
  assert 'more data than its header declares' in str(error.value)


def test_mismatched_counts_and_labels(tmp_path):
  write_split(tmp_path, 'train', np.zeros((3, 2, 2)), np.zeros(4))
  with pytest.raises(idx.IdxFormatError, match='3 images but .* 4 labels'):
    idx.load_split(str(tmp_path), 'train')
  write_split(tmp_path, 'train', np.zeros((2, 2, 2)), np.array([1, 10]))
  with pytest.raises(idx.IdxFormatError, match=r'label 10 outside \[0, 10\)'):
    idx.load_split(str(tmp_path), 'train')


def test_missing_files_say_how_to_install(tmp_path):
  with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
    idx.load_split(str(tmp_path), 'train')


@pytest.mark.skipif(not os.path.isdir(idx.DEBIAN_FASHION_MNIST_DIR),
                    reason='Debian package dataset-fashion-mnist not installed')
def test_real_fashion_mnist():
  for split, count in (('train', 60000), ('test', 10000)):
    images, labels = idx.load_split(idx.DEBIAN_FASHION_MNIST_DIR, split)
    assert images.shape == (count, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (count,)
    # Balanced classes: exactly count / 10 examples of each of the 10 labels.
    np.testing.assert_array_equal(np.bincount(labels), [count // 10] * 10)
    assert images.min() == 0 and images.max() == 255
