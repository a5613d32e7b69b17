"""Batch order, streaming, resumption and sharding of the input pipelines."""

import os
import subprocess
import sys
import textwrap
from unittest import mock

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from idx_files import write_split
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnn_jax import data
from cnn_jax.data import tfds_data
from experiments.configs import fashion_mnist_cnn

N_TRAIN, N_TEST = 12, 5


def dataset_config(**overrides):
  config = fashion_mnist_cnn.get_config().dataset
  config.update(prepare_from_dir='', read_threads=2)
  config.update(overrides)
  return config


@pytest.fixture(scope='module')
def numbered(tmp_path_factory):
  """A tiny 'mnist' whose image i is constant i (its identity) with label i % 10."""
  source = tmp_path_factory.mktemp('idx')
  for prefix, n in (('train', N_TRAIN), ('t10k', N_TEST)):
    ids = np.arange(n)
    write_split(source, prefix, np.broadcast_to(ids[:, None, None], (n, 28, 28)), ids % 10)
  data_dir = str(tmp_path_factory.mktemp('tfds'))
  tfds_data.prepare('mnist', data_dir=data_dir, from_dir=str(source), verify_counts=False)
  return dataset_config(name='mnist', data_dir=data_dir)


def ids(batch):
  return [int(v) for v in batch['image'][:, 0, 0, 0]]


def take(iterator, k):
  return [next(iterator) for _ in range(k)]


def test_epoch_permutation_is_the_documented_permutation():
  n = 50
  perm = np.asarray(data.epoch_permutation(3, 2, n))
  np.testing.assert_array_equal(np.sort(perm), np.arange(n))
  key = jax.random.key(3)
  np.testing.assert_array_equal(perm, jax.random.permutation(jax.random.fold_in(key, 2), n))
  np.testing.assert_array_equal(perm, data.epoch_permutation(key, 2, n))
  assert not np.array_equal(perm, data.epoch_permutation(3, 3, n))


def test_batch_indices_cover_each_epoch_and_resume_anywhere():
  n, batch = 10, 3  # 3 steps per epoch; one example dropped per epoch
  step_fn = jax.jit(data.batch_indices, static_argnums=(2, 3))
  run = [np.asarray(step_fn(0, s, n, batch)) for s in range(6)]
  for epoch in range(2):
    perm = np.asarray(data.epoch_permutation(0, epoch, n))
    seen = np.concatenate(run[3 * epoch:3 * epoch + 3])
    np.testing.assert_array_equal(seen, perm[:9])
  assert not np.array_equal(run[0], run[3])
  # A run resumed at step 4 (fresh function, eager) sees the same batches from there on.
  for s in (4, 5):
    np.testing.assert_array_equal(data.batch_indices(0, s, n, batch), run[s])
  with pytest.raises(ValueError, match='larger than the dataset'):
    data.batch_indices(0, 0, 2, 3)


def test_stream_epochs_cover_every_example_once(numbered):
  batches = take(data.stream(numbered, 'train', batch_size=4, seed=0), 6)
  epochs = [sum((ids(b) for b in batches[e * 3:e * 3 + 3]), []) for e in range(2)]
  assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(N_TRAIN))
  assert epochs[0] != epochs[1]  # reshuffled
  for b in batches:
    assert b['image'].shape == (4, 28, 28, 1) and b['image'].dtype == np.uint8
    np.testing.assert_array_equal(b['label'], np.array(ids(b)) % 10)  # labels stay put


def test_stream_is_deterministic_and_resumes(numbered):
  run = [ids(b) for b in take(data.stream(numbered, 'train', batch_size=4, seed=0), 7)]
  assert run == [ids(b) for b in take(data.stream(numbered, 'train', batch_size=4,
                                                   seed=0), 7)]
  resumed = data.stream(numbered, 'train', batch_size=4, seed=0, start_step=4)
  assert [ids(b) for b in take(resumed, 3)] == run[4:]
  other = [ids(b) for b in take(data.stream(numbered, 'train', batch_size=4, seed=1), 7)]
  assert other != run


def test_process_shards_partition_the_global_batch(numbered):
  whole = take(data.stream(numbered, 'train', batch_size=4, seed=0), 5)
  shards = [take(data.stream(numbered, 'train', batch_size=4, seed=0, process_index=p,
                             process_count=2), 5) for p in range(2)]
  for step in range(5):
    mine, yours = ids(shards[0][step]), ids(shards[1][step])
    assert len(mine) == len(yours) == 2 and not set(mine) & set(yours)
    assert sorted(mine + yours) == sorted(ids(whole[step]))
  with pytest.raises(ValueError, match='not divisible by the 3 processes'):
    data.stream(numbered, 'train', batch_size=4, seed=0, process_index=0, process_count=3)


def test_eval_stream_reads_once_in_order_with_a_padding_mask(numbered):
  batches = list(data.stream(numbered, 'test', batch_size=2, seed=0, train=False))
  assert len(batches) == 3
  np.testing.assert_array_equal(np.concatenate([b['mask'] for b in batches]),
                                [True] * N_TEST + [False])
  images, labels = data.load(numbered)['test']
  got = np.concatenate([b['image'] for b in batches])[:N_TEST]
  np.testing.assert_array_equal(got, images)  # the stored order, like load()
  np.testing.assert_array_equal(np.concatenate([b['label'] for b in batches])[:N_TEST],
                                labels)


def test_variable_size_images_are_cropped_on_the_host():
  # tfds.testing.mock_data makes ImageNet-like examples of random sizes; it does not
  # mock is_prepared, which ensure_prepared checks first.
  config = dataset_config(name='imagenet2012')
  config.augment.update(image_size=24, random_resized_crop=True)
  with tfds.testing.mock_data(num_examples=10), \
       mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared', return_value=True):
    sizes = {tfds.data_source('imagenet2012', split='train')[i]['image'].shape[:2]
             for i in range(10)}
    assert len(sizes) > 1
    first = take(data.stream(config, 'train', batch_size=4, seed=0), 3)
    again = take(data.stream(config, 'train', batch_size=4, seed=0), 3)
    evaluation = list(data.stream(config, 'validation', batch_size=4, seed=0, train=False))
    config.augment.image_size = 0
    with pytest.raises(ValueError, match='vary in size'):
      data.stream(config, 'train', batch_size=4, seed=0)
  for a, b in zip(first, again):
    assert a['image'].shape == (4, 24, 24, 3) and a['image'].dtype == np.uint8
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  assert len(evaluation) == 3 and sum(b['mask'].sum() for b in evaluation) == 10


def test_global_arrays_and_prefetch_on_this_host():
  mesh = Mesh(np.array(jax.devices()), ('data',))
  sharding = NamedSharding(mesh, P('data'))
  batches = [{'image': np.full((4, 2, 2, 1), i, np.uint8), 'label': np.arange(4) + i}
             for i in range(5)]
  out = list(data.prefetch_to_device(iter(batches), sharding, size=2))
  assert len(out) == 5
  for got, want in zip(out, batches):
    assert isinstance(got['image'], jax.Array) and got['image'].sharding == sharding
    np.testing.assert_array_equal(got['image'], want['image'])
    np.testing.assert_array_equal(got['label'], want['label'])


@pytest.mark.slow
def test_batches_shard_over_devices_and_gather_from_a_replicated_dataset():
  # Four CPU devices need a fresh process (the device count is fixed at JAX start-up).
  script = textwrap.dedent('''
      import jax, numpy as np
      from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
      from cnn_jax.data.pipeline import batch_indices, to_global_array
      mesh = Mesh(np.array(jax.devices()), ('data',))
      rows = NamedSharding(mesh, P('data'))
      batch = to_global_array({'x': np.arange(8 * 3).reshape(8, 3)}, rows)['x']
      for shard in batch.addressable_shards:  # device k holds rows 2k, 2k + 1
        k = mesh.devices.tolist().index(shard.device)
        assert (np.asarray(shard.data) == np.arange(8 * 3).reshape(8, 3)[2 * k:2 * k + 2]).all()
      images = to_global_array(np.arange(20) * 10, NamedSharding(mesh, P()))
      gather = jax.jit(lambda x, s: x[batch_indices(0, s, 20, 8)], out_shardings=rows)
      out = gather(images, 3)
      assert out.sharding == rows
      assert (np.asarray(out) == np.asarray(batch_indices(0, 3, 20, 8)) * 10).all()
      print('ok', len(jax.devices()))
  ''')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, '-c', script], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ['ok', '4']
