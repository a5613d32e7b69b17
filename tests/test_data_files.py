"""dataset.reader='files': splits read from the IDX/CIFAR files without TFDS.

Checked against TFDS itself (where installed): the same examples as the dataset TFDS
prepares from the same files, and the same slice boundaries as TFDS resolves.
"""

import types

import numpy as np
import pytest
from idx_files import write_cifar100_binary, write_split

from cnn_jax import data
from cnn_jax.data import files, tfds_data
from experiments.configs import fashion_mnist_cnn


def dataset_config(source, **overrides):
  config = fashion_mnist_cnn.get_config().dataset
  config.prepare_from_dir = str(source)
  config.reader = 'files'
  config.update(overrides)
  return config


@pytest.fixture
def idx_dir(tmp_path):
  """20 train / 6 test Fashion-MNIST-shaped examples, in known file order."""
  rng = np.random.default_rng(0)
  arrays = {}
  for split, prefix, n in (('train', 'train', 20), ('test', 't10k', 6)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    write_split(tmp_path, prefix, images, labels, gz=split == 'test')
    arrays[split] = images[..., None], labels.astype(np.int32)
  return tmp_path, arrays


def test_files_reader_reads_the_files_in_their_order(idx_dir):
  source, arrays = idx_dir
  splits = data.load(dataset_config(source, train_split='train[:75%]',
                                    eval_split='train[-5:]', test_split='test'))
  expected = {'train': (arrays['train'][0][:15], arrays['train'][1][:15]),
              'eval': (arrays['train'][0][15:], arrays['train'][1][15:]),
              'test': arrays['test']}
  assert set(splits) == set(expected)
  for key, (images, labels) in splits.items():
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, expected[key][0])
    np.testing.assert_array_equal(labels, expected[key][1])


def test_permute_seed_moves_every_pixel_by_one_permutation_in_every_split(idx_dir):
  source, arrays = idx_dir
  splits = data.load(dataset_config(source, permute_seed=7))
  again = data.load(dataset_config(source, permute_seed=7))
  other = data.load(dataset_config(source, permute_seed=8))
  # Recover the permutation from the first training image, pixel by pixel: each output
  # pixel is the input pixel its value came from (the random images repeat few values
  # at a given place, so match on the whole column of training images).
  train_in = arrays['train'][0].reshape(20, 784)
  train_out = splits['train'][0].reshape(20, 784)
  source_of = {}
  for j in range(784):
    matches = [i for i in range(784) if np.array_equal(train_out[:, j], train_in[:, i])]
    assert len(matches) == 1, (j, matches)
    source_of[j] = matches[0]
  assert sorted(source_of.values()) == list(range(784))  # a permutation
  assert sum(source_of[j] != j for j in range(784)) > 700  # that moves nearly everything
  test_in = arrays['test'][0].reshape(6, 784)
  test_out = splits['test'][0].reshape(6, 784)
  for j in range(784):  # the same permutation on the test split
    np.testing.assert_array_equal(test_out[:, j], test_in[:, source_of[j]])
  for key in ('train', 'test'):
    np.testing.assert_array_equal(splits[key][1], arrays[key][1])  # labels stay
    np.testing.assert_array_equal(splits[key][0], again[key][0])  # seeded
    assert not np.array_equal(splits[key][0], other[key][0])
    assert splits[key][0].shape == arrays[key][0].shape


def test_permutation_moves_the_channels_of_a_position_together():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(4, 5, 6, 3)).astype(np.float32)
  out, labels = data.permute_positions({'test': (images, np.arange(4))}, 1)['test']
  np.testing.assert_array_equal(labels, np.arange(4))
  for n in range(4):
    pixels_in = {tuple(images[n, h, w]) for h in range(5) for w in range(6)}
    pixels_out = {tuple(out[n, h, w]) for h in range(5) for w in range(6)}
    assert pixels_in == pixels_out  # whole (R, G, B) triples moved, none split
  unchanged = data.permute_positions({'test': (images, np.arange(4))}, -1)['test'][0]
  assert unchanged is images


def test_files_reader_gives_the_examples_tfds_prepares(idx_dir, tmp_path_factory):
  pytest.importorskip('tensorflow_datasets')
  source, _ = idx_dir
  data_dir = tmp_path_factory.mktemp('tfds')
  tfds_data.prepare('fashion_mnist', data_dir=str(data_dir), from_dir=str(source),
                    verify_counts=False)
  by_tfds = data.load(dataset_config(source, reader='tfds', data_dir=str(data_dir)))
  by_files = data.load(dataset_config(source))
  for split in ('train', 'test'):
    # TFDS stores the examples in an order of its own: compare them as multisets.
    as_set = lambda x, y: sorted((a.tobytes(), int(b)) for a, b in zip(x, y))
    assert as_set(*by_files[split]) == as_set(*by_tfds[split])


@pytest.mark.parametrize('split', [
    'train', 'train[:90%]', 'train[90%:]', 'train[33%:67%]', 'train[:-7]', 'train[-7:]',
    'train[5:12]', 'train[:0]', 'test[1%:99%]', 'test[-50%:]'])
@pytest.mark.parametrize('sizes', [{'train': 60000, 'test': 10000}, {'train': 97, 'test': 13}])
def test_split_boundaries_are_those_tfds_resolves(split, sizes):
  tfds = pytest.importorskip('tensorflow_datasets')
  infos = {k: types.SimpleNamespace(num_examples=n, shard_lengths=[n]) for k, n in sizes.items()}
  (absolute,) = tfds.core.ReadInstruction.from_spec(split).to_absolute(infos)
  n = sizes[absolute.splitname]
  start = absolute.from_ or 0
  stop = n if absolute.to is None else absolute.to
  assert files.split_range(split, sizes) == (absolute.splitname, start, stop)


@pytest.mark.parametrize('split, message', [
    ('train+test', 'expected NAME or NAME'), ('validation', "unknown split 'validation'"),
    ('train[:70001]', 'beyond the 60000 examples'), ('train[:150%]', 'beyond')])
def test_bad_splits_fail_with_one_line(split, message):
  with pytest.raises(ValueError, match=message):
    files.split_range(split, {'train': 60000, 'test': 10000})


def test_files_reader_reads_cifar_and_refuses_datasets_without_files(tmp_path):
  expected = write_cifar100_binary(tmp_path, (('train', 4), ('test', 2)), seed=1)
  splits = data.load(dataset_config(tmp_path, name='cifar100'))
  for split, (images, fine, _) in expected.items():
    np.testing.assert_array_equal(splits[split][0], images)
    np.testing.assert_array_equal(splits[split][1], fine)
  with pytest.raises(ValueError, match="mnist1d has none"):
    data.load(dataset_config(tmp_path, name='mnist1d'))
  with pytest.raises(ValueError, match='prepare_from_dir, which is empty'):
    data.load(dataset_config(''))
  with pytest.raises(ValueError, match="reader='parquet'"):
    data.load(dataset_config(tmp_path, reader='parquet'))
