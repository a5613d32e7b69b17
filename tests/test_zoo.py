"""The model zoo and its registry: every registered architecture runs in both modes under
jit, has the parameter count its reference publishes (or a hand count where there is
none), and computes the logits of an independent numpy forward pass (golden logits);
every experiment config builds its model; SimpleCNN's per-block settings.

Full-size models are only traced (``jax.eval_shape``), never initialised: their counts
need shapes, not values. The behavioural test runs each model at a tiny width with
weights drawn in numpy from the traced shapes, because compiling Flax's random
initialisers costs more on a 2-core CPU than everything else here together.
"""

import dataclasses
import functools
import glob
import importlib
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import models
from make_golden import PATH as GOLDEN_PATH
from make_golden import GOLDEN, golden_array, golden_variables, variable_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = jax.random.key(0)
IMAGENET, CIFAR, MNIST, MNIST1D = (224, 224, 3), (32, 32, 3), (28, 28, 1), (40, 1)

_RESNET_TINY = dict(stage_features=(4, 8, 16, 32), stem_features=4, num_classes=10,
                    dropout_rate=0.5)
_CIFAR_TINY = dict(stage_features=(4, 8, 16), stem_features=4, dropout_rate=0.5)
# The ResNet presets differ only in depth, which the exact parameter counts below check
# at full size; one block per stage keeps their compile time here to about a second.
_ONE_BLOCK = dict(stage_sizes=(1, 1, 1, 1))
_ONE_BLOCK_CIFAR = dict(stage_sizes=(1, 1, 1))

# name: (input shape, fields) small enough to compile and run in about a second; every
# model with dropout gets a nonzero rate so that train and eval differ.
SMALL = {
    'mlp': (MNIST, dict(hidden=(16, 8), dropout_rate=0.5)),
    'simple_cnn': ((12, 12, 1), dict(features=(4, 8), hidden=(8,), dropout_rate=0.5)),
    'cnn1d': (MNIST1D, dict(features=(4, 4, 4), dropout_rate=0.5)),
    'lenet5': (MNIST, dict(features=(2, 4, 8), hidden=(8,), dropout_rate=0.5)),
    # 63x63 is the smallest input the ImageNet AlexNet's strides fit.
    'alexnet': ((63, 63, 3), dict(features=(4, 8, 8, 8, 8), hidden=(16, 16), num_classes=10)),
    'alexnet_small': (CIFAR, dict(features=(4, 8, 8, 8, 8), hidden=(16, 16))),
    # 65x65 is the smallest input with a 5x5 map at 4a for the auxiliary heads.
    'googlenet': ((65, 65, 3), dict(width=1 / 16, aux_logits=True, num_classes=10)),
    'resnet18': ((32, 32, 3), _RESNET_TINY),
    'resnet34': ((32, 32, 3), dict(_RESNET_TINY, **_ONE_BLOCK)),
    'resnet50': ((32, 32, 3), dict(_RESNET_TINY, **_ONE_BLOCK)),
    'resnet101': ((32, 32, 3), dict(_RESNET_TINY, **_ONE_BLOCK)),
    'resnet152': ((32, 32, 3), dict(_RESNET_TINY, **_ONE_BLOCK)),
    'resnet20': ((16, 16, 3), _CIFAR_TINY),
    'resnet32': ((16, 16, 3), dict(_CIFAR_TINY, **_ONE_BLOCK_CIFAR)),
    'resnet44': ((16, 16, 3), dict(_CIFAR_TINY, **_ONE_BLOCK_CIFAR)),
    'resnet56': ((16, 16, 3), dict(_CIFAR_TINY, **_ONE_BLOCK_CIFAR)),
    'resnet110': ((16, 16, 3), dict(_CIFAR_TINY, shortcut='B', **_ONE_BLOCK_CIFAR)),
}


def _count(tree):
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _shapes(model, input_shape):
  return jax.eval_shape(model.init, KEY, jax.ShapeDtypeStruct((1,) + input_shape,
                                                              jnp.float32))


def _numpy_variables(shapes, seed=0):
  """Values for traced variable shapes: BatchNorm at its initial state, the rest random."""
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    name = path[-1].key
    if name in ('scale', 'var'):
      return np.ones(s.shape, np.float32)
    if name in ('bias', 'mean'):
      return np.zeros(s.shape, np.float32)
    fan_in = math.prod(s.shape[:-1])
    return (rng.standard_normal(s.shape) / math.sqrt(fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(leaf, shapes)


def test_every_registered_model_has_a_small_setting():
  assert set(SMALL) == set(models.names())


@pytest.mark.parametrize('name', models.names())
def test_model_runs_under_jit_in_train_and_eval_mode(name):
  input_shape, fields = SMALL[name]
  model = models.create(name, **fields)
  num_classes = model.num_classes
  x = jax.random.normal(KEY, (3,) + input_shape)
  variables = _numpy_variables(_shapes(model, input_shape))
  has_bn = 'batch_stats' in variables
  # Running statistics unlike the initial ones, for evaluation to see.
  shifted = jax.tree.map(lambda s: s + 0.5, variables.get('batch_stats', {}))

  def run(variables, shifted, x):
    # Vmapped over dropout keys and over running statistics: two compiled graphs.
    keys = jnp.stack([jax.random.key(1), jax.random.key(2)])
    train = jax.vmap(lambda k: model.apply(variables, x, train=True, rngs={'dropout': k},
                                           mutable=['batch_stats', 'intermediates']))
    stats = {'batch_stats': jax.tree.map(lambda a, b: jnp.stack([a, b]),
                                         variables['batch_stats'], shifted)} if has_bn else {}
    # No 'dropout' rng: evaluation must not need one.
    evaluate = jax.vmap(lambda s: model.apply({**variables, **s}, x), axis_size=2)
    return train(keys), evaluate(stats)

  compiled = jax.jit(run).lower(variables, shifted, x).compile(
      {'xla_backend_optimization_level': 0})  # compile time dominates; speed is irrelevant
  (train, updates), evals = compiled(variables, shifted, x)

  for logits in (train, evals):
    assert logits.dtype == jnp.float32
    assert logits.shape == (2, 3, num_classes)
    assert np.all(np.isfinite(logits))
  assert not np.allclose(train[0], train[1])  # dropout on in training, key-dependent
  for aux in jax.tree.leaves(updates.get('intermediates', {})):  # GoogLeNet's heads
    assert aux.shape == (2, 3, num_classes)
  if has_bn:
    # Training updates the running statistics; evaluation normalises with them.
    moved = jax.tree.map(lambda new, old: not np.allclose(new[0], old),
                         updates['batch_stats'], variables['batch_stats'])
    assert all(jax.tree.leaves(moved))
    assert not np.allclose(evals[0], evals[1])
  else:
    assert 'batch_stats' not in updates
    np.testing.assert_array_equal(evals[0], evals[1])


def _cifar_resnet(n, shortcut='A'):
  """Hand count of a CIFAR ResNet with n basic blocks per stage (He et al. 2015, 4.2)."""
  conv_bn = lambda k, c_in, c_out: k * k * c_in * c_out + 2 * c_out
  stem = conv_bn(3, 3, 16)
  stages = 0
  for c_in, c_out in ((16, 16), (16, 32), (32, 64)):
    first = conv_bn(3, c_in, c_out) + conv_bn(3, c_out, c_out)
    if shortcut == 'B' and c_in != c_out:
      first += conv_bn(1, c_in, c_out)
    stages += first + (n - 1) * 2 * conv_bn(3, c_out, c_out)
  return stem + stages + 64 * 10 + 10


def _googlenet_paper(aux=False):
  """Hand count from Table 1 of Szegedy et al. 2014 (biases, no BatchNorm)."""
  conv = lambda k, c_in, c_out: k * k * c_in * c_out + c_out
  table = [  # the paper's rows: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
      (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), (192, 96, 208, 16, 48, 64),
      (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64), (112, 144, 288, 32, 64, 64),
      (256, 160, 320, 32, 128, 128), (256, 160, 320, 32, 128, 128),
      (384, 192, 384, 48, 128, 128)]
  total = conv(7, 3, 64) + conv(1, 64, 64) + conv(3, 64, 192)
  c_in = 192
  for n1, n3r, n3, n5r, n5, npool in table:
    total += (conv(1, c_in, n1) + conv(1, c_in, n3r) + conv(3, n3r, n3) + conv(1, c_in, n5r)
              + conv(5, n5r, n5) + conv(1, c_in, npool))
    c_in = n1 + n3 + n5 + npool
  total += 1024 * 1000 + 1000
  if aux:  # on 4a (512 channels) and 4d (528): 1x1 conv 128, fc 2048 -> 1024 -> 1000
    total += sum(conv(1, c, 128) + 2048 * 1024 + 1024 + 1024 * 1000 + 1000 for c in (512, 528))
  return total


_LENET5 = (5 * 5 * 1 * 6 + 6) + (5 * 5 * 6 * 16 + 16) + (5 * 5 * 16 * 120 + 120) + (
    120 * 84 + 84) + (84 * 10 + 10)
_ALEXNET_PAPER = dict(features=(96, 256, 384, 384, 256), groups=(1, 2, 1, 2, 2))
_TORCHVISION_GOOGLENET = dict(batch_norm=True, branch3_kernel=3)

# (name, fields, input shape, parameter count, where the count comes from)
REFERENCE_COUNTS = [
    # torchvision.models (their documented parameter counts).
    ('resnet18', {}, IMAGENET, 11_689_512, 'torchvision'),
    ('resnet34', {}, IMAGENET, 21_797_672, 'torchvision'),
    ('resnet50', {}, IMAGENET, 25_557_032, 'torchvision'),
    ('resnet50', dict(stride_in_1x1=True), IMAGENET, 25_557_032, 'torchvision (v1 block)'),
    ('resnet101', {}, IMAGENET, 44_549_160, 'torchvision'),
    ('resnet152', {}, IMAGENET, 60_192_808, 'torchvision'),
    ('alexnet', {}, IMAGENET, 61_100_840, 'torchvision'),
    ('googlenet', _TORCHVISION_GOOGLENET, IMAGENET, 6_624_904, 'torchvision, no aux'),
    ('googlenet', dict(_TORCHVISION_GOOGLENET, aux_logits=True), IMAGENET, 13_004_888,
     'torchvision, aux'),
    # akamaster/pytorch_resnet_cifar10 (printed by its test()), = He et al. Table 6.
    ('resnet20', {}, CIFAR, 269_722, 'akamaster'),
    ('resnet32', {}, CIFAR, 464_154, 'akamaster'),
    ('resnet44', {}, CIFAR, 658_586, 'akamaster'),
    ('resnet56', {}, CIFAR, 853_018, 'akamaster'),
    ('resnet110', {}, CIFAR, 1_727_962, 'akamaster'),
    ('resnet20', dict(shortcut='B'), CIFAR, _cifar_resnet(3, 'B'), 'hand count'),
    # Caffe's bvlc_alexnet has the 2012 paper's two-GPU grouping: 60,965,224.
    ('alexnet', _ALEXNET_PAPER, IMAGENET, 60_965_224, 'bvlc_alexnet'),
    ('alexnet_small', {}, CIFAR,
     (5 * 5 * 3 * 64 + 64) + (5 * 5 * 64 * 192 + 192) + (9 * 192 * 384 + 384)
     + (9 * 384 * 256 + 256) + (9 * 256 * 256 + 256) + (3 * 3 * 256 * 1024 + 1024)
     + (1024 * 1024 + 1024) + (1024 * 10 + 10), 'hand count'),
    ('googlenet', {}, IMAGENET, _googlenet_paper(), 'hand count, Table 1'),
    ('googlenet', dict(aux_logits=True), IMAGENET, _googlenet_paper(aux=True), 'hand count'),
    # 61,706 is the usual LeNet-5 count (full C3, dense output with bias).
    ('lenet5', {}, (32, 32, 1), 61_706, 'LeNet-5'),
    ('lenet5', {}, MNIST, _LENET5, 'hand count'),
    ('lenet5', dict(activation='relu', pool='max'), MNIST, 61_706, 'modern form'),
    ('mlp', {}, MNIST, (784 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10), 'hand count'),
    ('simple_cnn', {}, MNIST,
     (9 * 32 + 32) + (9 * 32 * 64 + 64) + (7 * 7 * 64 * 128 + 128) + (128 * 10 + 10),
     'hand count'),
    # A global average pool leaves 64 features for dense0, whatever the input's size.
    ('simple_cnn', dict(head='global_avg'), MNIST,
     (9 * 32 + 32) + (9 * 32 * 64 + 64) + (64 * 128 + 128) + (128 * 10 + 10), 'hand count'),
    ('simple_cnn', dict(head='global_avg'), (64, 48, 1),
     (9 * 32 + 32) + (9 * 32 * 64 + 64) + (64 * 128 + 128) + (128 * 10 + 10), 'hand count'),
    # Greydanus 2020 ConvBase: conv 25*5+25, 2 x (25*25*3+25), linear 125*10+10.
    ('cnn1d', {}, MNIST1D, 150 + 1900 + 1900 + 1260, 'mnist1d ConvBase'),
]


@pytest.mark.parametrize('name,fields,input_shape,expected,source', REFERENCE_COUNTS,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_parameter_count_matches_reference(name, fields, input_shape, expected, source):
  del source  # in the test id
  assert _count(_shapes(models.create(name, **fields), input_shape)['params']) == expected


def test_every_registered_model_has_a_reference_count():
  assert {row[0] for row in REFERENCE_COUNTS} == set(models.names())


def test_cifar_hand_count_rounds_to_the_papers_table():
  # He et al. 2015, Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M parameters.
  for n, published in ((3, 0.27), (5, 0.46), (7, 0.66), (9, 0.85), (18, 1.7)):
    assert round(_cifar_resnet(n) / 1e6, 2 if n < 18 else 1) == published


@pytest.mark.parametrize('name', models.names())
def test_architecture_exposes_dropout_stride_and_pool_fields(name):
  fields = {f.name for f in dataclasses.fields(models.create(name))}
  assert any('dropout' in f for f in fields)
  if name != 'mlp':  # fully connected: nothing to stride or pool
    assert any('stride' in f for f in fields)
    assert any(f == 'pool' or f.endswith('_pool') for f in fields)


def test_googlenet_aux_heads_exist_from_init_and_run_only_in_training():
  model = models.create('googlenet', width=1 / 16, aux_logits=True, num_classes=7)
  x = jax.ShapeDtypeStruct((2, 65, 65, 3), jnp.float32)
  variables = jax.eval_shape(model.init, KEY, x)  # init in eval mode builds the heads
  assert {'aux1', 'aux2'} <= set(variables['params'])
  _, train_state = jax.eval_shape(functools.partial(
      model.apply, train=True, mutable=['intermediates'], rngs={'dropout': KEY}), variables, x)
  aux = train_state['intermediates']
  assert aux['aux1_logits'][0].shape == aux['aux2_logits'][0].shape == (2, 7)
  _, eval_state = jax.eval_shape(functools.partial(model.apply, mutable=['intermediates']),
                                 variables, x)
  assert not eval_state.get('intermediates')


@pytest.mark.parametrize('name,fields,input_shape,layer', [
    ('alexnet', {}, (28, 28, 3), 'pool2'),  # 28 -> conv1 6 -> pool1 2 -> pool2 (3x3) fails
    ('lenet5', dict(c1_padding=0), MNIST, 'c5'),  # 28 -> 24 -> 12 -> 8 -> 4 < 5
    ('googlenet', dict(aux_logits=True), (64, 64, 3), 'aux1/pool'),  # 4a is 4x4 < 5x5
])
def test_input_too_small_names_the_layer_before_compiling(name, fields, input_shape, layer):
  model = models.create(name, **fields)
  with pytest.raises(ValueError, match=f'^{layer}: .*input shape'):
    _shapes(model, input_shape)  # tracing only: nothing is compiled


def test_small_variants_fit_small_inputs():
  for name, shape in (('alexnet_small', MNIST), ('alexnet_small', CIFAR), ('lenet5', (32, 32, 1))):
    out = jax.eval_shape(lambda x, m=models.create(name): m.init_with_output(KEY, x)[0],
                         jax.ShapeDtypeStruct((1,) + shape, jnp.float32))
    assert out.shape == (1, 10)


def test_registry_validates_and_overrides_preset_fields():
  with pytest.raises(ValueError, match=r"model 'resnet20' has no field\(s\) \['depth'\].*"
                                       r"stage_sizes"):
    models.create('resnet20', depth=20)
  with pytest.raises(ValueError, match=r"unknown model 'resnet21'.*resnet20"):
    models.create('resnet21')
  model = models.create('resnet56', shortcut='B', stem_stride=2)
  assert (model.shortcut, model.stem_stride, tuple(model.stage_sizes)) == ('B', 2, (9, 9, 9))


def test_pool_conv_ablation_adds_a_learned_strided_conv():
  lenet = models.create('lenet5', pool='conv')
  # S2: 2x2 conv 6 -> 6 channels, S4: 2x2 conv 16 -> 16, each with bias.
  extra = (2 * 2 * 6 * 6 + 6) + (2 * 2 * 16 * 16 + 16)
  assert _count(_shapes(lenet, (32, 32, 1))['params']) == 61_706 + extra


def test_half_precision_models_still_return_float32_logits():
  model = models.create('resnet20', dtype=jnp.bfloat16)
  out = jax.eval_shape(lambda x: model.init_with_output(KEY, x)[0],
                       jax.ShapeDtypeStruct((2,) + CIFAR, jnp.float32))
  assert out.dtype == jnp.float32


# Every experiment config (discovered, so a new one is checked without being listed).
_CONFIGS = sorted(os.path.basename(path)[:-len('.py')] for path in
                  glob.glob(os.path.join(ROOT, 'experiments', 'configs', '*.py'))
                  if not path.endswith('__init__.py'))
_INPUTS = {'mnist': MNIST, 'fashion_mnist': MNIST, 'cifar10': CIFAR, 'imagenet2012': IMAGENET,
           'mnist1d': MNIST1D}


def test_configs_are_discovered():
  assert {'fashion_mnist_cnn', 'resnet20_cifar10', 'googlenet_imagenet'} <= set(_CONFIGS)


@pytest.mark.parametrize('config_name', _CONFIGS)
def test_config_follows_the_schema_and_builds_its_model(config_name):
  config = importlib.import_module(f'experiments.configs.{config_name}').get_config()
  for key in ('seed', 'batch_size', 'eval_batch_size', 'num_epochs'):
    assert key in config
  assert {'name', 'data_dir'} <= set(config.dataset)
  assert {'name', 'learning_rate', 'schedule'} <= set(config.optimizer)
  fields = dict(config.model)
  model = models.create(fields.pop('name'), **fields)
  out = jax.eval_shape(lambda x: model.init_with_output(KEY, x)[0],
                       jax.ShapeDtypeStruct((1,) + _INPUTS[config.dataset.name], jnp.float32))
  # The Fashion-MNIST configs keep the models' default of 10 classes.
  assert out.shape == (1, config.model.get('num_classes', 10))


@pytest.mark.parametrize('name,label', [('alexnet_small', 'AlexNet'), ('googlenet', 'GoogLeNet'),
                                        ('lenet5', 'LeNet5'), ('resnet20', 'ResNet')])
def test_image_models_refuse_an_unbatched_input_by_name(name, label):
  model = models.create(name)
  with pytest.raises(ValueError, match=rf'{label} expects a batch \(N, H, W, C\), got shape '
                                       rf'\(32, 32, 3\)'):
    model.init(KEY, jnp.zeros((32, 32, 3)))


# ------------------------------------------- SimpleCNN specifics and registry errors


def test_simple_cnn_2d_shapes_and_parameter_count():
  model = models.create('simple_cnn', features=(32, 64), hidden=(128,), num_classes=10)
  variables = model.init(KEY, jnp.zeros((2, 28, 28, 1)))
  assert model.apply(variables, jnp.zeros((2, 28, 28, 1))).shape == (2, 10)
  # Hand count: conv 3*3*1*32+32, conv 3*3*32*64+64, dense 7*7*64*128+128, head 128*10+10.
  expected = (9 * 32 + 32) + (9 * 32 * 64 + 64) + (7 * 7 * 64 * 128 + 128) + (128 * 10 + 10)
  assert _count(variables['params']) == expected


def test_simple_cnn_1d_per_block_settings():
  model = models.create('simple_cnn', features=(8, 16), kernel_size=(5, 3), strides=(1, 2),
                        pool=('max', 'none'), hidden=(), num_classes=10)
  x = jnp.zeros((3, 40, 1))
  variables = model.init(KEY, x)
  assert variables['params']['conv0']['kernel'].shape == (5, 1, 8)
  assert variables['params']['conv1']['kernel'].shape == (3, 8, 16)
  # 40 -> conv SAME 40 -> pool 20 -> conv stride 2 SAME 10; head sees 10*16 features.
  assert variables['params']['head']['kernel'].shape == (160, 10)
  assert model.apply(variables, x).shape == (3, 10)


def test_simple_cnn_batch_norm_per_block():
  model = models.create('simple_cnn', features=(4, 8), batch_norm=(True, False), hidden=(),
                        num_classes=10)
  x = jax.random.normal(KEY, (6, 8, 8, 1)) * 3 + 2
  variables = model.init(KEY, x)
  params = variables['params']
  # BatchNorm replaces conv0's bias; conv1 keeps its own.
  assert 'bias' not in params['conv0'] and 'conv1_bn' not in params
  expected = (9 * 4 + 2 * 4) + (9 * 4 * 8 + 8) + (2 * 2 * 8 * 10 + 10)
  assert _count(params) == expected
  assert jax.tree.map(jnp.shape, variables['batch_stats']) == {
      'conv0_bn': {'mean': (4,), 'var': (4,)}}
  # In training the conv0 output is normalised over (N, H, W): before the activation
  # each channel has mean 0 and variance 1 (the BatchNorm's scale and offset start at
  # 1 and 0). Captured with capture_intermediates.
  _, state = model.apply(variables, x, train=True, mutable=['batch_stats', 'intermediates'],
                         capture_intermediates=lambda m, _: m.name == 'conv0_bn')
  y = np.asarray(state['intermediates']['conv0_bn']['__call__'][0])
  np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1, rtol=1e-3)


def test_simple_cnn_dropout_only_in_training():
  model = models.create('simple_cnn', features=(4,), hidden=(16,), dropout_rate=0.5,
                        dense_dropout_rate=0.5)
  x = jax.random.normal(KEY, (4, 8, 8, 1))
  variables = model.init(KEY, x)
  eval1, eval2 = model.apply(variables, x), model.apply(variables, x, train=False)
  np.testing.assert_array_equal(eval1, eval2)
  t1 = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(1)})
  t2 = model.apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
  assert not np.allclose(t1, eval1) and not np.allclose(t1, t2)


@pytest.mark.parametrize('fields,input_shape', [
    (dict(features=(4, 6), hidden=(8,), batch_norm=(True, False), pool=('max', 'avg')),
     (12, 10, 1)),
    (dict(features=(4, 6), hidden=(), dropout_rate=0.5), (12, 12, 2)),
    (dict(features=(4, 4), hidden=(8,)), (40, 1)),  # 1-D: the mean over the width
], ids=['2d-bn-hidden', '2d-no-hidden', '1d'])
def test_simple_cnn_global_avg_head_matches_the_numpy_reference(fields, input_shape):
  """Conv blocks, each channel's mean over the positions, then the dense layers."""
  import references as ref
  model = models.create('simple_cnn', head='global_avg', **fields)
  shapes = variable_shapes(model, input_shape)
  variables = golden_variables(shapes)
  x = golden_array('input', (3, *input_shape))
  n = len(model.features)
  each = lambda v: tuple(v) if isinstance(v, (list, tuple)) else (v,) * n
  expected = ref.simple_cnn_ref(
      variables['params'], variables.get('batch_stats', {}), x, n, each(model.kernel_size),
      each(model.strides), each(model.padding), each(model.pool), each(model.pool_window),
      model.hidden, model.activation, head='global_avg')
  np.testing.assert_allclose(model.apply(variables, x), expected, rtol=1e-4, atol=2e-5)
  # The dense layers read one value per channel of the last block.
  first = 'dense0' if model.hidden else 'head'
  assert shapes['params'][first]['kernel'] == (model.features[-1],
                                               (model.hidden or (10,))[0])


def test_registry_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"unknown model 'simple_cn'.*simple_cnn"):
    models.create('simple_cn')
  with pytest.raises(ValueError, match=r"no field\(s\) \['dropout'\].*dropout_rate"):
    models.create('simple_cnn', dropout=0.1)
  with pytest.raises(ValueError, match=r'kernel_size=\(3, 3, 3\) has 3 entries.*2 conv'):
    model = models.create('simple_cnn', features=(4, 8), kernel_size=(3, 3, 3))
    model.init(KEY, jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match="pool must be 'max', 'avg' or 'none'"):
    models.create('simple_cnn', pool='min').init(KEY, jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match=r"head='gap'; use 'dense'.*or 'global_avg'"):
    models.create('simple_cnn', head='gap').init(KEY, jnp.zeros((1, 8, 8, 1)))

# ------------------------------------------------ golden logits (tests/make_golden.py)

with np.load(GOLDEN_PATH) as _golden:
  GOLDEN_LOGITS = {key: _golden[key] for key in _golden.files if key != 'meta'}
  GOLDEN_META = json.loads(str(_golden['meta']))


def _tuples(value):
  """JSON lists back to the tuples the models' fields and shapes are."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def test_golden_file_covers_every_registered_model():
  assert {meta['model'] for meta in GOLDEN_META.values()} == set(models.names())
  assert set(GOLDEN_META) == set(GOLDEN_LOGITS) == set(GOLDEN)
  assert os.path.getsize(GOLDEN_PATH) < 100_000
  for logits in GOLDEN_LOGITS.values():  # not degenerate: depends on input and class
    assert np.ptp(logits, axis=0).min() > 0 and np.ptp(logits, axis=1).min() > 0


@pytest.mark.parametrize('key', sorted(GOLDEN_META))
def test_logits_match_the_numpy_reference(key):
  """Eval-mode logits against float64 numpy forward passes of the same weights.

  The weights and inputs are closed-form functions of their names
  (``make_golden.golden_array``); the stored names and shapes say whether a failure is
  a changed parameter tree or a changed computation.
  """
  meta = _tuples(GOLDEN_META[key])
  model = models.create(meta['model'], **meta['fields'])
  shapes = variable_shapes(model, meta['input_shape'])
  assert shapes == meta['shapes'], 'parameter names or shapes changed'
  variables = golden_variables(shapes)
  x = golden_array('input', (GOLDEN_LOGITS[key].shape[0], *meta['input_shape']))
  apply = jax.jit(model.apply).lower(variables, x).compile(
      {'xla_backend_optimization_level': 0})  # compile time dominates; speed is irrelevant
  np.testing.assert_allclose(apply(variables, x), GOLDEN_LOGITS[key], rtol=1e-4, atol=2e-5)
