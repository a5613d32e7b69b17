"""The MNIST-1D TFDS builder: generated locally, equal to the mnist1d package's dataset."""

import random

import numpy as np
import pytest
import tensorflow_datasets as tfds
from mnist1d.data import get_dataset_args, make_dataset

from cnn_jax import data
from cnn_jax.data import mnist1d
from experiments.configs import fashion_mnist_cnn


def mnist1d_config(data_dir: str):
  config = fashion_mnist_cnn.get_config().dataset
  config.update(name='mnist1d', data_dir=data_dir, prepare_from_dir='')
  return config


@pytest.fixture(scope='module')
def splits(tmp_path_factory):
  config = mnist1d_config(str(tmp_path_factory.mktemp('tfds')))
  return config.data_dir, data.load(config)  # prepares on first use: no files needed


def test_shapes_dtypes_counts(splits):
  _, loaded = splits
  for split, count in (('train', 4000), ('test', 1000)):
    signals, labels = loaded[split]
    assert signals.shape == (count, 40, 1) and signals.dtype == np.float32
    assert labels.shape == (count,) and labels.dtype == np.int32
    assert labels.min() == 0 and labels.max() == 9


def test_equals_the_package_dataset_in_order(splits):
  _, loaded = splits
  reference = make_dataset(get_dataset_args())  # the package, default arguments
  for split, (x, y) in (('train', ('x', 'y')), ('test', ('x_test', 'y_test'))):
    np.testing.assert_array_equal(loaded[split][0][..., 0],
                                  reference[x].astype(np.float32))
    np.testing.assert_array_equal(loaded[split][1], reference[y])


def test_is_a_registered_tfds_dataset(splits):
  data_dir, _ = splits
  source = tfds.data_source('mnist1d', split='test', data_dir=data_dir, download=False)
  assert len(source) == 1000 and source[0]['signal'].shape == (40, 1)
  assert tfds.builder('mnist1d', data_dir=data_dir).info.supervised_keys == \
      ('signal', 'label')


def test_generation_leaves_global_random_state_alone():
  np.random.seed(123)
  random.seed(123)
  expected = np.random.random(), random.random()
  np.random.seed(123)
  random.seed(123)
  mnist1d.generate()
  assert (np.random.random(), random.random()) == expected


def test_a_second_process_waits_for_the_one_preparing_and_does_not_prepare_again(
    tmp_path, monkeypatch):
  """ensure_prepared takes the dataset's prepare lock and looks again once it has it."""
  import threading
  from cnn_jax.data import tfds_data
  config = mnist1d_config(str(tmp_path))
  calls = []
  real_prepare = tfds_data.prepare
  monkeypatch.setattr(tfds_data, 'prepare',
                      lambda *a, **k: calls.append(a) or real_prepare(*a, **k))
  target = tfds_data.builder('mnist1d', str(tmp_path))
  result = {}
  with tfds_data.prepare_lock(target, 'mnist1d'):  # this "process" is preparing it
    waiter = threading.Thread(target=lambda: result.update(
        builder=tfds_data.ensure_prepared(config)))
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive() and not calls  # blocked on the lock, nothing prepared
    real_prepare('mnist1d', data_dir=str(tmp_path))
  waiter.join(60)
  assert not waiter.is_alive() and result['builder'].is_prepared()
  assert calls == []  # the waiter found it prepared and did not build it again
