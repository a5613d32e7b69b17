"""The per-layer summary against hand-computed shapes, FLOPs and receptive fields."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from test_zoo import SMALL

from cnn_jax import layers, models, summary

KEY = jax.random.key(0)


def _rows(s):
  return {row.name: row for row in s.rows}


def _param_count(model, input_shape):
  variables = jax.eval_shape(model.init, KEY,
                             jax.ShapeDtypeStruct((1,) + tuple(input_shape), jnp.float32))
  return sum(leaf.size for leaf in jax.tree.leaves(variables['params']))


def test_lenet5_receptive_fields_on_32x32():
  # Hand computation: C1 5x5 -> 5; S2 2x2/2 -> 5 + 1 = 6, jump 2; C3 5x5 -> 6 + 4 * 2 =
  # 14; S4 -> 14 + 1 * 2 = 16, jump 4; C5 5x5 -> 16 + 4 * 4 = 32, the whole input.
  rows = _rows(summary.summarize(models.create('lenet5'), (32, 32, 1)))
  got = [(rows[n].rf_size, rows[n].rf_jump) for n in ('c1', 's2', 'c3', 's4', 'c5')]
  assert got == [((5, 5), (1, 1)), ((6, 6), (2, 2)), ((14, 14), (2, 2)), ((16, 16), (4, 4)),
                 ((32, 32), (4, 4))]
  assert [rows[n].output_shape for n in ('c1', 's2', 'c3', 's4', 'c5')] == [
      (28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (1, 1, 120)]
  assert rows['f6'].rf_size == 'all'


class _Stack(nn.Module):
  """n 3x3 convs; the field grows by 2 per layer: 2n + 1."""
  n: int

  @nn.compact
  def __call__(self, x):
    for i in range(self.n):
      x = nn.relu(layers.Conv(2, (3, 3), name=f'conv{i}')(x))
    return x


def test_stack_of_3x3_convs_has_field_2n_plus_1():
  s = summary.summarize(_Stack(5), (16, 16, 1))
  assert [r.rf_size for r in s.rows] == [(2 * i + 3,) * 2 for i in range(5)]
  assert all(r.rf_jump == (1, 1) for r in s.rows)


class _Branches(nn.Module):
  """Branches whose call order differs from their data flow.

  ``b`` is called after the 5x5 ``a`` but feeds ``c`` alone, so ``c`` must get
  1 + 2 = 3, not a value derived from ``a``.
  """

  @nn.compact
  def __call__(self, x):
    a = layers.Conv(2, (5, 5), name='a')(x)  # 5
    b = layers.Conv(2, (1, 1), name='b')(x)  # 1
    c = layers.Conv(2, (3, 3), name='c')(nn.relu(b))  # 1 + 2 = 3
    d = layers.Conv(2, (3, 3), name='d')(a + c)  # max(5, 3) + 2 = 7
    e = layers.Conv(2, (3, 3), name='e')(jnp.concatenate([c, b], -1))  # max(3, 1) + 2 = 5
    layers.MaxPool((2, 2), name='f')(d)  # 7 + 1 = 8, jump 2 (traced though unused)
    return layers.Dense(3, name='g')(e)  # a dense layer on each position: 5


def test_receptive_field_follows_the_data_through_merges():
  rows = _rows(summary.summarize(_Branches(), (12, 12, 1)))
  sizes = {name: rows[name].rf_size for name in 'abcdefg'}
  assert sizes == {k: (v, v) for k, v in dict(a=5, b=1, c=3, d=7, e=5, f=8, g=5).items()}
  assert rows['f'].rf_jump == (2, 2)


def test_non_square_fields_per_axis():
  s = summary.summarize(layers.Conv(2, (3, 5), strides=(1, 2), dilation=(2, 1)), (9, 9, 1))
  (row,) = s.rows
  # Axis 0: kernel 3 dilated by 2 spans 5; axis 1: 5 taps, stride 2.
  assert (row.rf_size, row.rf_jump) == ((5, 5), (1, 2))
  s = summary.summarize(layers.Conv(2, (3, 1)), (9, 9, 1))
  assert (s.rows[0].rf_size, s.rows[0].rf_jump) == ((3, 1), (1, 1))
  assert s.table().splitlines()[-2].split()[-2:] == ['3x1', '1']


def test_cnn1d_receptive_fields():
  # ConvBase: k5/s2 -> 5, jump 2; k3/s2 -> 5 + 2 * 2 = 9, jump 4; k3/s2 -> 9 + 2 * 4 = 17.
  rows = _rows(summary.summarize(models.create('cnn1d'), (40, 1)))
  assert [(rows[f'conv{i}'].rf_size, rows[f'conv{i}'].rf_jump) for i in range(3)] == [
      ((5,), (2,)), ((9,), (4,)), ((17,), (8,))]
  assert [rows[f'conv{i}'].output_shape for i in range(3)] == [(19, 25), (10, 25), (5, 25)]


@pytest.fixture(scope='module')
def resnet50_summaries():
  return {v1: summary.summarize(models.create('resnet50', stride_in_1x1=v1), (224, 224, 3))
          for v1 in (False, True)}


def test_resnet50_receptive_field_at_the_last_stage(resnet50_summaries):
  # Hand derivation. Stem: conv 7x7/2 -> 7 (jump 2), max pool 3x3/2 -> 7 + 2 * 2 = 11
  # (jump 4). Each 3x3 conv adds 2 * (its input jump); 1x1 convs add nothing.
  # v1 (stride on the first 1x1 of each stage): stage 1: 11 + 3 * 8 = 35; stage 2 at
  # jump 8: 35 + 4 * 16 = 99; stage 3 at 16: 99 + 6 * 32 = 291; stage 4 at 32: 291 +
  # 3 * 64 = 483, the value commonly cited for ResNet-50.
  # v1.5 (stride on the 3x3, torchvision): each stage's first 3x3 still runs at the
  # previous jump: 35; 35 + 8 + 3 * 16 = 91; 91 + 16 + 5 * 32 = 267; 267 + 32 + 2 * 64
  # = 427.
  for v1, expected in ((True, 483), (False, 427)):
    rows = _rows(resnet50_summaries[v1])
    assert rows['stage4_block2/conv3'].rf_size == (expected, expected)
    assert rows['stage4_block2/conv3'].rf_jump == (32, 32)
    assert rows['stem_pool'].rf_size == (11, 11)
    assert rows['stage1_block2/conv3'].rf_size == (35, 35)


def test_resnet50_totals(resnet50_summaries):
  s = resnet50_summaries[False]
  assert s.params == sum(r.params for r in s.rows) == 25_557_032  # torchvision resnet50
  # Running mean and variance: as many as BatchNorm's scales and offsets.
  assert s.state == sum(r.params for r in s.rows if r.kind == 'BatchNorm')
  assert s.output_shape == (1000,)
  # Convolutions and the classifier: 4.09 G multiply-adds (torchvision's "GFLOPS").
  weights = sum(r.flops for r in s.rows if r.kind in ('Conv', 'Dense'))
  assert round(weights / 2e9, 2) == 4.09


@pytest.mark.parametrize('name', models.names())
def test_totals_equal_the_real_parameter_count(name):
  input_shape, fields = SMALL[name]
  model = models.create(name, **fields)
  s = summary.summarize(model, input_shape)
  assert s.params == sum(r.params for r in s.rows) == _param_count(model, input_shape)
  assert s.flops == sum(r.flops for r in s.rows)


def test_conv_and_dense_flops_match_the_hand_formula():
  # 9x9x3 -> SAME stride 2 -> 5x5x8: 2 * (3 * 3 * 3) multiply-adds per output, + bias.
  (row,) = summary.summarize(layers.Conv(8, (3, 3), strides=2), (9, 9, 3)).rows
  assert row.output_shape == (5, 5, 8)
  assert row.flops == 2 * 3 * 3 * 3 * 8 * 25 + 8 * 25
  assert row.params == 3 * 3 * 3 * 8 + 8
  # Grouped, no bias, 1-D: each output sees 5 taps of 4 / 2 channels.
  (row,) = summary.summarize(layers.Conv(6, (5,), padding='VALID', groups=2, use_bias=False),
                             (20, 4)).rows
  assert row.flops == 2 * 5 * 2 * 6 * 16
  (row,) = summary.summarize(layers.Dense(7), (5,)).rows
  assert (row.flops, row.params) == (2 * 5 * 7 + 7, 5 * 7 + 7)


def test_pool_and_norm_flops():
  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = layers.MaxPool((3, 3), strides=(2, 2))(x)  # 7x7x2 -> 3x3x2, 9 per output
      x = layers.BatchNorm(use_running_average=True)(x)  # 2 per element
      return layers.GlobalAvgPool()(x)  # one per input element

  rows = summary.summarize(Net(), (7, 7, 2)).rows
  assert [r.flops for r in rows] == [9 * 18, 2 * 18, 18]
  assert [r.rf_size for r in rows] == [(3, 3), (3, 3), 'all']


def test_input_too_small_names_the_layer():
  with pytest.raises(ValueError, match='^pool2: max_pool'):
    summary.summarize(models.create('alexnet'), (28, 28, 3))


def test_cli_model_and_config(capsys):
  summary.main(['--model', 'lenet5', '--input-shape', '32,32,1'])
  out = capsys.readouterr().out
  assert 'c5' in out and 'total: 61,706 parameters' in out
  summary.main(['--config', 'experiments/configs/cnn1d_mnist1d.py'])
  out = capsys.readouterr().out
  assert 'total: 5,210 parameters' in out and '5x25' in out


def test_cli_errors():
  with pytest.raises(SystemExit, match=r"unknown model 'lenet'.*registered models: .*lenet5"):
    summary.main(['--model', 'lenet', '--input-shape', '32,32,1'])
  with pytest.raises(SystemExit, match='pool2'):
    summary.main(['--model', 'alexnet', '--input-shape', '28,28,3'])


def test_model_input_shape_follows_the_dataset_and_resize():
  from cnn_jax.data import catalog
  from experiments.configs import fashion_mnist_cnn, googlenet_imagenet
  assert catalog.model_input_shape(fashion_mnist_cnn.get_config().dataset) == (28, 28, 1)
  imagenet = googlenet_imagenet.get_config().dataset
  assert catalog.model_input_shape(imagenet) == (imagenet.augment.image_size,) * 2 + (3,)
  imagenet.augment.image_size = 0  # stored ImageNet images vary in size
  assert catalog.model_input_shape(imagenet) is None
