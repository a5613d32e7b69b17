"""Preparing TFDS datasets from local files, and loading them back, offline.

Source files are written here from their format definitions (IDX, CIFAR python and
binary); the real Debian Fashion-MNIST is prepared once per module where installed.
"""

import contextlib
import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from idx_files import cifar_rows, write_cifar100_binary, write_split

from cnn_jax import data
from cnn_jax.data import __main__ as cli
from cnn_jax.data import catalog, cifar, idx, tfds_data
from experiments.configs import fashion_mnist_cnn


def dataset_config(**overrides):
  config = fashion_mnist_cnn.get_config().dataset
  config.prepare_from_dir = ''
  config.update(overrides)
  return config


def as_multiset(images, labels):
  """Examples as a sorted list of (image bytes, label): order-free comparison.

  TFDS stores examples in an order of its own (a hash of their keys), so prepared data
  equals the source as a multiset, not as a sequence.
  """
  return sorted((np.asarray(x).tobytes(), int(y)) for x, y in zip(images, labels))


@pytest.fixture(scope='module')
def tiny_mnist(tmp_path_factory):
  """12 train / 5 test MNIST-shaped examples as IDX files, prepared as TFDS 'mnist'."""
  source = tmp_path_factory.mktemp('idx')
  rng = np.random.default_rng(0)
  arrays = {}
  for split, prefix, n in (('train', 'train', 12), ('test', 't10k', 5)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    write_split(source, prefix, images, labels, gz=split == 'train')  # both variants
    arrays[split] = images[..., None], labels
  data_dir = tmp_path_factory.mktemp('tfds')
  tfds_data.prepare('mnist', data_dir=str(data_dir), from_dir=str(source),
                    verify_counts=False)
  return source, str(data_dir), arrays


def test_prepare_then_load_round_trips(tiny_mnist):
  _, data_dir, arrays = tiny_mnist
  splits = data.load(dataset_config(name='mnist', data_dir=data_dir))
  assert set(splits) == {'train', 'test'}
  for split, (images, labels) in splits.items():
    n = len(arrays[split][1])
    assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int32
    assert as_multiset(images, labels) == as_multiset(*arrays[split])


def test_load_order_is_the_same_every_time(tiny_mnist):
  config = dataset_config(name='mnist', data_dir=tiny_mnist[1])
  first, second = data.load(config), data.load(config)
  for split in first:
    np.testing.assert_array_equal(first[split][0], second[split][0])
    np.testing.assert_array_equal(first[split][1], second[split][1])


def test_decoded_cache_is_used_and_a_broken_one_is_rebuilt(tiny_mnist, tmp_path):
  _, data_dir, arrays = tiny_mnist
  builder = tfds_data.builder('mnist', data_dir)
  cache_dir = os.path.join(builder.data_dir, tfds_data.DECODED_DIR)
  want = tfds_data.read_split(builder, 'train[:7]')  # decodes (or reads a cache)
  cache = os.path.join(cache_dir, 'train__7_.npz')
  assert os.path.exists(cache)
  # Poison the cache with recognisable values: the next read must come from it.
  np.savez(cache, inputs=want[0] * 0 + 7, labels=want[1])
  assert (tfds_data.read_split(builder, 'train[:7]')[0] == 7).all()
  with open(cache, 'wb') as f:
    f.write(b'not a zip file')
  got = tfds_data.read_split(builder, 'train[:7]')
  np.testing.assert_array_equal(got[0], want[0])
  np.testing.assert_array_equal(got[1], want[1])
  assert set(as_multiset(*got)) <= set(as_multiset(*arrays['train']))
  with np.load(cache) as rebuilt:  # rewritten from the decoded examples
    np.testing.assert_array_equal(rebuilt['inputs'], want[0])


def npy_bytes(array=None, header_shape=None):
  """A .npy file: ``array`` in full, or only a uint8 header declaring ``header_shape``."""
  f = io.BytesIO()
  if array is not None:
    np.lib.format.write_array(f, array)
  else:
    np.lib.format.write_array_header_1_0(
        f, {'descr': '|u1', 'fortran_order': False, 'shape': header_shape})
  return f.getvalue()


@pytest.mark.parametrize('tamper', ['shape', 'count', 'dtype', 'labels', 'huge_header'])
def test_decoded_cache_that_does_not_fit_the_split_is_rebuilt(tiny_mnist, tamper, caplog):
  builder = tfds_data.builder('mnist', tiny_mnist[1])
  want = tfds_data.read_split(builder, 'train[:5]')
  cache = os.path.join(builder.data_dir, tfds_data.DECODED_DIR, 'train__5_.npz')
  x, y = want
  bad = {'shape': (x[:, :27], y), 'count': (x[:4], y[:4]),
         'dtype': (x.astype(np.float32), y), 'labels': (x, np.full_like(y, 12345))}
  if tamper == 'huge_header':  # 784 TB declared: must be refused before it is allocated
    with zipfile.ZipFile(cache, 'w') as archive:
      archive.writestr('inputs.npy', npy_bytes(header_shape=(10**12, 28, 28, 1)))
      archive.writestr('labels.npy', npy_bytes(y))
  else:
    np.savez(cache, inputs=bad[tamper][0], labels=bad[tamper][1])
  got = tfds_data.read_split(builder, 'train[:5]')
  for g, w in zip(got, want):
    assert g.dtype == w.dtype
    np.testing.assert_array_equal(g, w)
  assert 'ignoring the decoded cache' in caplog.text
  with np.load(cache) as rebuilt:
    np.testing.assert_array_equal(rebuilt['inputs'], x)
    np.testing.assert_array_equal(rebuilt['labels'], y)


def test_decoded_cache_is_written_through_an_unpredictable_temporary_file(tiny_mnist,
                                                                          tmp_path):
  builder = tfds_data.builder('mnist', tiny_mnist[1])
  cache_dir = os.path.join(builder.data_dir, tfds_data.DECODED_DIR)
  os.makedirs(cache_dir, exist_ok=True)
  # Someone who can guess the temporary name plants a link to a file of the user's.
  victim = tmp_path / 'victim.txt'
  victim.write_text('precious')
  guessed = os.path.join(cache_dir, f'train_2_5_.npz.{os.getpid()}.tmp.npz')
  os.symlink(victim, guessed)
  try:
    inputs, labels = tfds_data.read_split(builder, 'train[2:5]')
    assert victim.read_text() == 'precious'
    cache = os.path.join(cache_dir, 'train_2_5_.npz')
    assert not os.path.islink(cache)
    # Readable by whoever can read the prepared data (mkstemp alone would make it 0600).
    assert os.stat(cache).st_mode & 0o777 == os.stat(builder.data_dir).st_mode & 0o666
    with np.load(cache) as stored:
      np.testing.assert_array_equal(stored['inputs'], inputs)
      np.testing.assert_array_equal(stored['labels'], labels)
  finally:
    if os.path.lexists(guessed):
      os.unlink(guessed)


def test_failed_cache_write_leaves_no_temporary_file(tiny_mnist, monkeypatch, caplog):
  builder = tfds_data.builder('mnist', tiny_mnist[1])
  cache_dir = os.path.join(builder.data_dir, tfds_data.DECODED_DIR)
  os.makedirs(cache_dir, exist_ok=True)
  before = set(os.listdir(cache_dir))

  def disk_full(file, **arrays):  # writes a little, then the disk is full
    with (open(file, 'wb') if isinstance(file, str) else contextlib.nullcontext(file)) as f:
      f.write(b'PK partial')
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(np, 'savez', disk_full)
  inputs, labels = tfds_data.read_split(builder, 'train[1:4]')
  assert inputs.shape == (3, 28, 28, 1) and labels.shape == (3,)
  assert 'No space left on device' in caplog.text
  assert set(os.listdir(cache_dir)) == before


def test_prepared_data_is_the_registered_tfds_dataset(tiny_mnist):
  source, data_dir, arrays = tiny_mnist
  builder = tfds.builder('mnist', data_dir=data_dir)
  assert builder.is_prepared()
  assert builder.version == tfds.builder_cls('mnist').VERSION  # TFDS's own definition
  assert builder.info.supervised_keys == ('image', 'label')
  assert builder.info.splits['train'].num_examples == 12
  plain = tfds.data_source('mnist', split='test', data_dir=data_dir, download=False)
  examples = [plain[i] for i in range(len(plain))]
  assert as_multiset([e['image'] for e in examples], [e['label'] for e in examples]) == \
      as_multiset(*arrays['test'])
  # The sha256 of every file read, computed here with hashlib.
  expected = {}
  for name in os.listdir(source):
    path = os.path.abspath(os.path.join(source, name))
    with open(path, 'rb') as f:
      expected[path] = hashlib.sha256(f.read()).hexdigest()
  assert data.sources(builder) == expected


def test_split_slices_partition_the_split(tiny_mnist):
  config = dataset_config(name='mnist', data_dir=tiny_mnist[1], train_split='train[:75%]',
                          eval_split='train[75%:]')
  splits = data.load(config)
  assert len(splits['train'][1]) == 9 and len(splits['eval'][1]) == 3
  merged = [np.concatenate(parts) for parts in zip(splits['train'], splits['eval'])]
  assert as_multiset(*merged) == as_multiset(*tiny_mnist[2]['train'])


def test_tfrecord_datasets_are_read_through_tf_data(tiny_mnist, tmp_path):
  source, _, arrays = tiny_mnist
  tfds_data.prepare('mnist', data_dir=str(tmp_path), from_dir=str(source),
                    verify_counts=False, file_format='tfrecord')
  plain = tfds.as_numpy(tfds.load('mnist', split='test', data_dir=str(tmp_path),
                                  batch_size=-1, download=False))
  images, labels = data.load(dataset_config(name='mnist', data_dir=str(tmp_path)))['test']
  assert as_multiset(images, labels) == as_multiset(*arrays['test'])
  assert as_multiset(plain['image'], plain['label']) == as_multiset(*arrays['test'])


def test_tensorflow_sees_no_gpu():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  data.hide_gpus_from_tensorflow()
  assert tf.config.get_visible_devices('GPU') == []


def test_counts_are_checked_against_the_published_sizes(tiny_mnist, tmp_path):
  with pytest.raises(ValueError, match='12 examples, but the published train split has '
                                       '60000'):
    tfds_data.prepare('mnist', data_dir=str(tmp_path), from_dir=str(tiny_mnist[0]))
  assert not tfds.builder('mnist', data_dir=str(tmp_path)).is_prepared()


def test_image_shape_must_match_the_tfds_features(tmp_path):
  write_split(tmp_path, 'train', np.zeros((2, 12, 12)), np.zeros(2))
  write_split(tmp_path, 't10k', np.zeros((2, 12, 12)), np.zeros(2))
  with pytest.raises(ValueError, match=r'images are \(12, 12, 1\), TFDS fashion_mnist '
                                       r'images are \(28, 28, 1\)'):
    tfds_data.prepare('fashion_mnist', data_dir=str(tmp_path / 'out'),
                      from_dir=str(tmp_path), verify_counts=False)


@pytest.mark.parametrize('damage', ['truncate', 'magic', 'labels'])
def test_corrupt_idx_files_fail_clearly_and_prepare_nothing(tmp_path, damage):
  write_split(tmp_path, 'train', np.zeros((3, 28, 28)), np.array([1, 2, 3]))
  write_split(tmp_path, 't10k', np.zeros((2, 28, 28)), np.array([1, 2]))
  images = tmp_path / 'train-images-idx3-ubyte.gz'
  if damage == 'truncate':
    images.write_bytes(images.read_bytes()[:40])
    match = 'corrupt or truncated'
  elif damage == 'magic':
    raw = bytearray(gzip.decompress(images.read_bytes()))
    raw[2] = 0x0D  # float32 type code instead of unsigned byte
    images.write_bytes(gzip.compress(bytes(raw)))
    match = 'bad magic number 0x00000d03'
  else:
    write_split(tmp_path, 'train', np.zeros((3, 28, 28)), np.array([1, 2, 10]))
    match = r'label 10 outside \[0, 10\)'
  out = tmp_path / 'out'
  with pytest.raises(idx.IdxFormatError, match=match):
    tfds_data.prepare('mnist', data_dir=str(out), from_dir=str(tmp_path),
                      verify_counts=False)
  assert not tfds.builder('mnist', data_dir=str(out)).is_prepared()


def test_missing_dataset_error_names_the_prepare_command(tmp_path):
  config = dataset_config(name='cifar10', data_dir=str(tmp_path))
  with pytest.raises(data.NotPreparedError,
                     match=f'python -m cnn_jax.data prepare cifar10 --data-dir {tmp_path} '
                           f'--from-dir FOLDER_WITH_CIFAR10_ARCHIVE'):
    data.load(config)
  config = dataset_config(name='fashion_mnist', data_dir=str(tmp_path),
                          prepare_from_dir=str(tmp_path / 'nowhere'))
  with pytest.raises(data.NotPreparedError, match='nowhere.*does not exist(.|\n)*prepare '
                     'fashion_mnist .*--from-dir /usr/share/datasets/fashion-mnist'):
    data.load(config)


def test_prepare_from_dir_in_the_config_prepares_on_first_load(tiny_mnist, tmp_path):
  # The tiny files are not the full dataset, so the verification stops it: proof that
  # load went the prepare-from-local-files way.
  config = dataset_config(name='mnist', data_dir=str(tmp_path),
                          prepare_from_dir=str(tiny_mnist[0]))
  with pytest.raises(ValueError, match='published train split has 60000'):
    data.load(config)


def test_imagenet_manual_files_missing(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  with pytest.raises(FileNotFoundError, match='ILSVRC2012_img_train.tar'):  # empty
    tfds_data.prepare('imagenet2012', data_dir=str(tmp_path), from_dir=str(manual))
  (manual / 'ILSVRC2012_img_train.tar').write_bytes(b'')
  with pytest.raises(FileNotFoundError, match='ILSVRC2012_img_val.tar'):
    tfds_data.prepare('imagenet2012', data_dir=str(tmp_path), from_dir=str(manual))


def test_streamed_datasets_are_not_loaded_into_memory():
  with pytest.raises(ValueError, match='too large.*stream'):
    data.load(dataset_config(name='imagenet2012'))


def test_cli_exit_status_and_message(tiny_mnist, tmp_path, capsys):
  argv = ['prepare', 'mnist', '--from-dir', str(tiny_mnist[0]), '--data-dir', str(tmp_path)]
  assert cli.main(argv) == 1
  assert 'prepare mnist failed' in capsys.readouterr().err
  assert cli.main(['prepare', 'mnist1d', '--from-dir', str(tmp_path)]) == 1
  assert 'drop --from-dir' in capsys.readouterr().err


# CIFAR, written from the format description at https://www.cs.toronto.edu/~kriz/cifar.html:
# each image is 3072 bytes, 1024 red then green then blue, rows top to bottom.

def cifar_examples(n, classes, seed):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, classes, n)


def write_cifar10_python(directory, train, test, archive=True):
  folder = 'cifar-10-batches-py'
  files = {}
  for i in range(5):
    images, labels = (x[i::5] for x in train)
    # Labels are Python ints in the original batches, pixel rows a uint8 array.
    files[f'data_batch_{i + 1}'] = {b'data': cifar_rows(images),
                                    b'labels': [int(v) for v in labels],
                                    b'batch_label': b'training batch'}
  files['test_batch'] = {b'data': cifar_rows(test[0]), b'labels': [int(v) for v in test[1]]}
  files['batches.meta'] = {b'label_names': [f'class{c}'.encode() for c in range(10)]}
  blobs = {name: pickle.dumps(value, protocol=2) for name, value in files.items()}
  if archive:
    with tarfile.open(directory / 'cifar-10-python.tar.gz', 'w:gz') as tar:
      for name, blob in blobs.items():
        info = tarfile.TarInfo(f'{folder}/{name}')
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
  else:
    (directory / folder).mkdir()
    for name, blob in blobs.items():
      (directory / folder / name).write_bytes(blob)
  return [np.concatenate([x[i::5] for i in range(5)]) for x in train]  # file order


def test_cifar10_python_archive(tmp_path):
  train, test = cifar_examples(10, 10, 1), cifar_examples(4, 10, 2)
  write_cifar10_python(tmp_path, train, test)
  builder = tfds_data.prepare('cifar10', data_dir=str(tmp_path / 'tfds'),
                              from_dir=str(tmp_path), verify_counts=False)
  assert builder.info.features['label'].names == [f'class{c}' for c in range(10)]
  splits = data.load(dataset_config(name='cifar10', data_dir=str(tmp_path / 'tfds')))
  assert splits['train'][0].shape == (10, 32, 32, 3)
  assert as_multiset(*splits['train']) == as_multiset(*train)
  assert as_multiset(*splits['test']) == as_multiset(*test)
  # TFDS's id feature names each example by its position in the files.
  source = builder.as_data_source('test')
  ids = sorted(source[i]['id'].decode() for i in range(len(source)))
  assert ids == [f'test_{i:05d}' for i in range(4)]


def test_cifar100_binary_folder(tmp_path):
  expected = write_cifar100_binary(tmp_path, (('train', 6), ('test', 3)), seed=3)
  builder = tfds_data.prepare('cifar100', data_dir=str(tmp_path / 'tfds'),
                              from_dir=str(tmp_path), verify_counts=False)
  assert builder.info.features['coarse_label'].names[19] == 'c19'
  source = builder.as_data_source('train')
  got = [source[i] for i in range(len(source))]
  images, fine, coarse = expected['train']
  assert sorted((e['image'].tobytes(), e['label'], e['coarse_label']) for e in got) == \
      sorted((x.tobytes(), int(f), int(c)) for x, f, c in zip(images, fine, coarse))
  assert len(data.sources(builder)) == 4  # two batches, two name lists


def test_cifar_truncated_archive(tmp_path):
  write_cifar10_python(tmp_path, cifar_examples(5, 10, 0), cifar_examples(2, 10, 0))
  archive = tmp_path / 'cifar-10-python.tar.gz'
  archive.write_bytes(archive.read_bytes()[:-200])
  with pytest.raises(cifar.CifarFormatError, match='corrupt or truncated'):
    cifar.read('cifar10', str(tmp_path))


def test_cifar_truncated_binary_record(tmp_path):
  folder = tmp_path / 'cifar-10-batches-bin'
  folder.mkdir()
  for name in [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']:
    (folder / name).write_bytes(bytes(3073 * 2))
  (folder / 'test_batch.bin').write_bytes(bytes(3073 * 2 - 1))
  (folder / 'batches.meta.txt').write_text('a\nb\n')
  with pytest.raises(cifar.CifarFormatError, match='6145 bytes is not a whole number of '
                                                   '3073-byte records'):
    cifar.read('cifar10', str(tmp_path))


def test_cifar_label_out_of_range_and_mismatched_counts(tmp_path):
  train = cifar_examples(5, 10, 0)
  write_cifar10_python(tmp_path, (train[0], np.array([0, 1, 2, 3, 12])),
                       cifar_examples(2, 10, 1), archive=False)
  with pytest.raises(ValueError, match=r'label values span \[0, 12\], outside \[0, 10\)'):
    tfds_data.prepare('cifar10', data_dir=str(tmp_path / 'tfds'), from_dir=str(tmp_path),
                      verify_counts=False)
  batch = tmp_path / 'cifar-10-batches-py' / 'test_batch'
  batch.write_bytes(pickle.dumps({b'data': np.zeros((3, 3072), np.uint8),
                                  b'labels': [1, 2]}, protocol=2))
  with pytest.raises(cifar.CifarFormatError, match='3 images but 2 labels'):
    cifar.read('cifar10', str(tmp_path))


def test_cifar_pickle_cannot_run_code(tmp_path):
  write_cifar10_python(tmp_path, cifar_examples(5, 10, 0), cifar_examples(2, 10, 0),
                       archive=False)

  class Exploit:
    def __reduce__(self):
      return (os.system, ('echo pwned',))

  (tmp_path / 'cifar-10-batches-py' / 'data_batch_1').write_bytes(pickle.dumps(Exploit()))
  with pytest.raises(cifar.CifarFormatError, match='refusing to load .*system'):
    cifar.read('cifar10', str(tmp_path))


def test_cifar_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='cifar-100-python.tar.gz'):
    cifar.read('cifar100', str(tmp_path))


class ZeroStrideRows:
  """Pickles as a call of the allow-listed numpy.ndarray: ``rows`` rows viewing one row."""

  def __init__(self, rows, dtype, row):
    self.rows, self.dtype, self.row = rows, np.dtype(dtype), row

  def __reduce__(self):
    shape = (self.rows,) + self.row.shape
    return (np.ndarray, (shape, self.dtype, self.row.tobytes(), 0,
                         (0,) + self.row.strides))


def test_cifar_zero_stride_array_is_refused(tmp_path):
  write_cifar10_python(tmp_path, cifar_examples(5, 10, 0), cifar_examples(2, 10, 0),
                       archive=False)
  # 10**8 images of 3072 bytes (286 GiB once copied) viewing a single 3072-byte row.
  n = 10**8
  blob = pickle.dumps({b'data': ZeroStrideRows(n, np.uint8, np.zeros(3072, np.uint8)),
                       b'labels': ZeroStrideRows(n, np.int64, np.zeros((), np.int64))},
                      protocol=2)
  assert len(blob) < 4000
  batch = tmp_path / 'cifar-10-batches-py' / 'data_batch_1'
  batch.write_bytes(blob)
  with pytest.raises(cifar.CifarFormatError, match=f'^{batch}: the data array .* is not '
                                                   'backed by the bytes of the file'):
    cifar.read('cifar10', str(tmp_path))


def test_cifar_archive_member_declaring_a_huge_size_is_refused(tmp_path):
  # A tar header may declare any size; a gzip bomb makes it true. This archive holds just
  # the header of a 1 TiB member, which must be refused before anything is read.
  info = tarfile.TarInfo('cifar-10-batches-py/data_batch_1')
  info.size = 2**40
  archive = tmp_path / 'cifar-10-python.tar.gz'
  archive.write_bytes(gzip.compress(info.tobuf(tarfile.GNU_FORMAT)))
  with pytest.raises(cifar.CifarFormatError,
                     match=r'cifar-10-batches-py/data_batch_1\) declares 1099511627776 '
                           r'bytes, more than the 409600000'):
    cifar.read('cifar10', str(tmp_path))


def small_published_cifar10(monkeypatch, train, test):
  """Pretends the published CIFAR-10 splits are tiny, shrinking the limits built on them."""
  spec = dataclasses.replace(catalog.get('cifar10'),
                             split_sizes={'train': train, 'test': test})
  monkeypatch.setitem(catalog.DATASETS, 'cifar10', spec)


def test_cifar_counts_are_capped_at_the_published_sizes(tmp_path, monkeypatch):
  write_cifar10_python(tmp_path, cifar_examples(5, 10, 0), cifar_examples(2, 10, 0),
                       archive=False)
  # One image per training batch: the fifth batch is one too many. Each batch stays
  # within its byte limit (4 * 8192 bytes), so the count is what stops it.
  small_published_cifar10(monkeypatch, train=4, test=2)
  batch = tmp_path / 'cifar-10-batches-py' / 'data_batch_5'
  with pytest.raises(cifar.CifarFormatError,
                     match=f'^{batch}: the train split reaches 5 examples, more than the 4 '
                           'of the published cifar10 train split'):
    cifar.read('cifar10', str(tmp_path))


@pytest.mark.parametrize('archive', [True, False])
def test_cifar_files_larger_than_their_split_needs_are_refused(tmp_path, monkeypatch,
                                                               archive):
  write_cifar10_python(tmp_path, cifar_examples(5, 10, 0), cifar_examples(2, 10, 0),
                       archive=False)
  # 1 MiB of zeros (1 KiB gzipped) where a batch of at most 2 test images belongs.
  (tmp_path / 'cifar-10-batches-py' / 'test_batch').write_bytes(bytes(1 << 20))
  if archive:
    with tarfile.open(tmp_path / 'cifar-10-python.tar.gz', 'w:gz') as tar:
      tar.add(tmp_path / 'cifar-10-batches-py', 'cifar-10-batches-py')
  small_published_cifar10(monkeypatch, train=5, test=2)
  where = (r'cifar-10-python.tar.gz \(cifar-10-batches-py/test_batch\) declares '
           r'1048576 bytes, more' if archive else 'cifar-10-batches-py/test_batch: larger')
  with pytest.raises(cifar.CifarFormatError, match=f'{where} than the 16384 bytes'):
    cifar.read('cifar10', str(tmp_path))


def test_cifar_memory_error_becomes_a_format_error(tmp_path, monkeypatch):
  write_cifar10_python(tmp_path, cifar_examples(5, 10, 0), cifar_examples(2, 10, 0))

  def out_of_memory(pixels):
    raise MemoryError()

  monkeypatch.setattr(cifar, '_to_nhwc', out_of_memory)
  with pytest.raises(cifar.CifarFormatError, match=f'^{tmp_path}: out of memory reading '
                                                   'cifar10'):
    cifar.read('cifar10', str(tmp_path))


@pytest.mark.parametrize('member, content, message', [
    ('test_batch', {b'data': np.zeros((2, 3072), np.uint8), b'labels': [b'cat', b'dog']},
     'labels must be integers'),
    ('test_batch', {b'data': np.zeros((2, 3072), np.uint8), b'labels': [0.5, 1.5]},
     'labels must be integers'),
    ('test_batch', {b'data': np.zeros((2, 3072), np.uint8), b'labels': {b'a': 1}},
     'labels must be integers'),
    ('test_batch', {b'data': np.zeros((2, 3072), np.uint8), b'labels': [2**70, 1]},
     'labels must be integers'),
    ('test_batch', {b'data': np.zeros((2, 3072), np.uint8),
                    b'labels': ZeroStrideRows(2, np.int64, np.zeros((), np.int64))},
     'the labels array (2,) (strides (0,)) is not backed'),
    ('batches.meta', [b'label_names'], 'label_names must be a list of 10 names'),
    ('batches.meta', {}, 'label_names must be a list of 10 names'),
    ('batches.meta', {b'label_names': [b'a', b'b']}, 'label_names must be a list of 10 '
                                                     'names (strings), got 2 entries'),
    ('batches.meta', {b'label_names': list(range(10))}, 'label_names must be a list of 10 '
                                                        'names'),
    ('batches.meta', {b'label_names': [b'\xff'] * 10}, 'label_names are not UTF-8 text'),
])
def test_cifar_malformed_labels_and_metadata_name_the_file(tmp_path, member, content,
                                                           message):
  write_cifar10_python(tmp_path, cifar_examples(5, 10, 0), cifar_examples(2, 10, 0),
                       archive=False)
  path = tmp_path / 'cifar-10-batches-py' / member
  path.write_bytes(pickle.dumps(content, protocol=2))
  with pytest.raises(cifar.CifarFormatError) as error:
    cifar.read('cifar10', str(tmp_path))
  assert str(error.value).startswith(f'{path}: ') and message in str(error.value)
  assert '\n' not in str(error.value)


def test_cifar_binary_names_must_be_text(tmp_path):
  folder = tmp_path / 'cifar-10-batches-bin'
  folder.mkdir()
  for name in [f'data_batch_{i}.bin' for i in range(1, 6)] + ['test_batch.bin']:
    (folder / name).write_bytes(bytes(3073 * 2))
  (folder / 'batches.meta.txt').write_bytes(b'\xff\xfe\n' * 10)
  with pytest.raises(cifar.CifarFormatError,
                     match=f'^{folder}/batches.meta.txt: not UTF-8 text'):
    cifar.read('cifar10', str(tmp_path))


# The real Fashion-MNIST of the Debian package, prepared once through the CLI.

def read_idx_reference(path):
  """Reads a gzipped IDX file straight from the format: 4-byte magic, dims, bytes."""
  raw = gzip.decompress(open(path, 'rb').read())
  ndim = raw[3]
  shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture(scope='module')
def real_fashion_mnist(tmp_path_factory):
  if not os.path.isdir(idx.DEBIAN_FASHION_MNIST_DIR):
    pytest.skip('Debian package dataset-fashion-mnist not installed')
  data_dir = str(tmp_path_factory.mktemp('tfds_real'))
  assert cli.main(['prepare', 'fashion_mnist', '--from-dir', idx.DEBIAN_FASHION_MNIST_DIR,
                   '--data-dir', data_dir]) == 0
  return data_dir, data.load(dataset_config(data_dir=data_dir))


def test_real_fashion_mnist_counts_dtypes_ranges(real_fashion_mnist):
  _, splits = real_fashion_mnist
  for split, count in (('train', 60000), ('test', 10000)):
    images, labels = splits[split]
    assert images.shape == (count, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int32
    # Balanced classes: count / 10 examples of each of the 10 labels.
    np.testing.assert_array_equal(np.bincount(labels), [count // 10] * 10)
    assert images.min() == 0 and images.max() == 255


def test_real_fashion_mnist_equals_the_idx_files(real_fashion_mnist):
  _, splits = real_fashion_mnist
  directory = idx.DEBIAN_FASHION_MNIST_DIR
  for split, prefix in (('train', 'train'), ('test', 't10k')):
    images = read_idx_reference(f'{directory}/{prefix}-images-idx3-ubyte.gz')
    labels = read_idx_reference(f'{directory}/{prefix}-labels-idx1-ubyte.gz')
    assert as_multiset(splits[split][0][..., 0], splits[split][1]) == \
        as_multiset(images, labels)


def test_real_fashion_mnist_metadata_and_slices(real_fashion_mnist):
  data_dir, splits = real_fashion_mnist
  builder = tfds.builder('fashion_mnist', data_dir=data_dir)
  recorded = data.sources(builder)
  assert len(recorded) == 4
  for path, digest in recorded.items():
    with open(path, 'rb') as f:
      assert hashlib.sha256(f.read()).hexdigest() == digest
  sizes = [len(tfds.data_source('fashion_mnist', split=s, data_dir=data_dir, download=False))
           for s in ('train[:90%]', 'train[90%:]')]
  assert sizes == [54000, 6000]
  # The catalog's normalisation statistics are those of the real training images.
  pixels = splits['train'][0] / 255.0
  spec = data.catalog.get('fashion_mnist')
  assert abs(pixels.mean() - spec.mean[0]) < 1e-4 and abs(pixels.std() - spec.std[0]) < 1e-4
