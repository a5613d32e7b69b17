"""The PyTorch reference of the benchmark computes the same models as ours.

torch is a benchmark-only extra (requirements-bench.txt), so CI, which does not install
it, skips this file. The checks: a Flax model's variables copied into its PyTorch
version give the same logits and the same parameter count (where it is known
independently, that count); a few train steps from the same start give the same parameters as
our optax step; and ``python -m experiments.benchmark --torch`` puts the PyTorch
numbers beside ours.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from cnn_jax import benchmark, config_utils, models, ops, provenance  # noqa: E402
from cnn_jax.train import optim, steps  # noqa: E402
from experiments import torch_reference  # noqa: E402
from experiments.configs import default  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(ROOT, 'tests', 'configs', 'tiny.py')


def _config(name):
  return os.path.join(ROOT, 'experiments', 'configs', name)


def _config_model(name):
  kwargs = dict(config_utils.load_config(_config(name)).model)
  return kwargs.pop('name'), kwargs


# (name, fields, input shape, parameter count known independently or None)
CASES = [
    (*_config_model('fashion_mnist_cnn.py'), (28, 28, 1), None),
    # Stride-2 'SAME' pads the odd pixel at the end only; the head follows the flatten.
    ('simple_cnn', dict(features=(4, 6), strides=2, pool='avg', hidden=(), activation='elu'),
     (28, 28, 1), None),
    ('simple_cnn', dict(features=(4, 6), kernel_size=(3, 4), pool=('conv', 'max'),
                        activation='gelu', padding=('VALID', 'SAME')), (15, 13, 2), None),
    ('simple_cnn', dict(features=(4, 6), strides=(1, 2), batch_norm=(True, False),
                        pool='none'), (12, 12, 1), None),
    ('simple_cnn', dict(features=(4, 6), batch_norm=True), (16, 2), None),  # 1-D
    ('cnn1d', {}, (40, 1), None),
    ('lenet5', {}, (28, 28, 1), 61_706),  # tanh, average pooling, C1 pads 28 to 32
    (*_config_model('lenet5_fashion_mnist.py'), (32, 32, 3), None),
    ('lenet5', dict(pool='conv', activation='lecun_tanh'), (28, 28, 1), None),
    ('lenet5', dict(stem_stride=2, c3_stride=2, pool='none'), (28, 28, 1), None),  # strided C1/C3
    ('resnet20', {}, (32, 32, 3), 269_722),  # option A, as in the paper's Table 6
    ('resnet20', {}, (28, 28, 1), None),
    # One input channel: 2 x 16 x 3 x 3 fewer stem weights; option B's two projections
    # add 16 x 32 + 64 + 32 x 64 + 128 (conv and BatchNorm).
    ('resnet20', dict(shortcut='B', stem_pool='max'), (28, 28, 1),
     269_722 - 2 * 16 * 9 + 2_752),
    ('resnet50', dict(stage_sizes=(1, 1), stage_features=(4, 8), stage_strides=(1, 2),
                      stem_features=8, stem_kernel=7, stride_in_1x1=True, num_classes=10),
     (32, 32, 3), None),
    ('mlp', dict(hidden=(32, 16), activation='tanh'), (28, 28, 1), None),
]


def _random_variables(model, x, seed=0):
  """Variables shaped as ``model.init`` makes them, every one random (biases and
  BatchNorm statistics included, so a mix-up of two of them cannot go unnoticed)."""
  abstract = jax.eval_shape(model.init, jax.random.key(0), x)
  rng = np.random.default_rng(seed)
  variables = {'params': jax.tree.map(
      lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32),
      abstract['params'])}
  if 'batch_stats' in abstract:
    variables['batch_stats'] = jax.tree_util.tree_map_with_path(
        lambda path, s: (rng.uniform(0.5, 2.0, s.shape) if path[-1].key == 'var'
                         else 0.1 * rng.standard_normal(s.shape)).astype(np.float32),
        abstract['batch_stats'])
  return variables


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 1)))


def _pair(name, fields, shape, seed=0):
  """Our model with random variables, its torch version holding them, and an input."""
  model = models.create(name, **fields)
  x = np.random.default_rng(seed + 1).standard_normal((3, *shape)).astype(np.float32)
  variables = _random_variables(model, x, seed)
  torch_model = torch_reference.build(name, shape, **fields)
  torch_reference.load_flax_variables(torch_model, variables)
  return model, variables, torch_model, x


def _count(tree):
  return sum(np.size(p) for p in jax.tree.leaves(tree))


@pytest.mark.parametrize('name,fields,shape,count', CASES,
                         ids=[f'{c[0]}-{"x".join(map(str, c[2]))}-{i}'
                              for i, c in enumerate(CASES)])
def test_same_logits_and_parameter_count(name, fields, shape, count):
  model, variables, torch_model, x = _pair(name, fields, shape)
  ours = np.asarray(jax.jit(model.apply)(variables, x))
  theirs = torch_model.eval()(_nchw(x)).detach().numpy()
  assert ours.std(axis=0).max() > 1e-3  # the logits depend on the input
  np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4 * np.abs(ours).max())
  n = sum(p.numel() for p in torch_model.parameters())
  assert n == _count(variables['params'])
  if count:
    assert n == count


@pytest.mark.parametrize('name,fields,shape', [
    ('resnet20', {}, (32, 32, 3)),
    ('simple_cnn', dict(features=(4, 6), strides=2, hidden=()), (28, 28, 1)),
])
def test_channels_last_gives_the_same_logits(name, fields, shape):
  model, variables, torch_model, x = _pair(name, fields, shape)
  ours = np.asarray(jax.jit(model.apply)(variables, x))
  torch_model = torch_model.eval().to(memory_format=torch.channels_last)
  theirs = torch_model(_nchw(x).contiguous(memory_format=torch.channels_last))
  np.testing.assert_allclose(theirs.detach().numpy(), ours, rtol=1e-4,
                             atol=1e-4 * np.abs(ours).max())


@pytest.mark.parametrize('name,fields,shape,optimizer', [
    ('simple_cnn', dict(features=(4, 8), hidden=(16,), dropout_rate=0.0,
                        dense_dropout_rate=0.0), (12, 12, 1),
     dict(name='sgd', momentum=0.9, nesterov=True, weight_decay=1e-2, grad_clip_norm=0.5)),
    ('simple_cnn', dict(features=(4, 8), hidden=(16,), dropout_rate=0.0,
                        dense_dropout_rate=0.0), (12, 12, 1), dict(name='adam')),
    # Modern LeNet-5 (ReLU, max pooling); the tanh form's saturated units have gradients
    # near zero, whose sign Adam's first steps amplify to +-lr from rounding alone.
    ('lenet5', dict(activation='relu', pool='max'), (28, 28, 1),
     dict(name='adamw', weight_decay=0.1)),
    ('simple_cnn', dict(features=(4, 8), strides=2, pool='none', batch_norm=True,
                        hidden=(16,), dropout_rate=0.0, dense_dropout_rate=0.0), (12, 12, 1),
     dict(name='adam')),
    # BatchNorm in training mode: batch statistics forward and backward, running mean.
    ('resnet20', dict(stage_sizes=(1, 1, 1)), (8, 8, 3),
     dict(name='sgd', momentum=0.9, weight_decay=1e-3)),
], ids=['simple_cnn-sgd', 'simple_cnn-adam', 'lenet5-adamw', 'simple_cnn-bn-adam',
       'resnet-sgd'])
def test_train_steps_match_ours(name, fields, shape, optimizer):
  config = default.get_config()
  config.model = ml_collections.ConfigDict({'name': name, **fields})
  config.optimizer.update(schedule='constant', learning_rate=1e-2, **optimizer)
  config.label_smoothing = 0.1
  model, variables, torch_model, _ = _pair(name, fields, shape)
  rng = np.random.default_rng(2)
  batches = [(rng.uniform(size=(8, *shape)).astype(np.float32),
              rng.integers(0, 10, 8).astype(np.int32)) for _ in range(3)]

  state = steps.TrainState.create(
      apply_fn=model.apply, params=variables['params'],
      tx=optim.make_optimizer(config.optimizer, total_steps=len(batches)),
      batch_stats=variables.get('batch_stats'))
  train_step = jax.jit(lambda s, b: steps.train_step(s, b, jax.random.key(0),
                                                     label_smoothing=config.label_smoothing))
  torch_step = torch_reference.make_train_step(torch_model.train(), config)
  for images, labels in batches:
    state, metrics = train_step(state, {'image': jnp.asarray(images),
                                        'label': jnp.asarray(labels)})
    loss, _ = torch_step(_nchw(images), torch.from_numpy(labels).long())
    assert float(loss) == pytest.approx(float(metrics['loss']), rel=1e-4)

  expected = torch_reference.build(name, shape, **fields)
  torch_reference.load_flax_variables(expected, {'params': state.params,
                                                 'batch_stats': state.batch_stats or {}})
  got = torch_model.state_dict()
  for key, want in expected.state_dict().items():
    # PyTorch's running variance averages the unbiased batch variance, Flax's the biased.
    if not key.endswith(('running_var', 'num_batches_tracked')):
      np.testing.assert_allclose(got[key].numpy(), want.numpy(), rtol=1e-3, atol=1e-5,
                                 err_msg=key)


def test_what_is_not_mirrored_is_refused():
  with pytest.raises(ValueError, match='dtype=.*not mirrored'):
    torch_reference.build('simple_cnn', (28, 28, 1), dtype=jnp.bfloat16)
  with pytest.raises(ValueError, match="'alexnet' has no PyTorch reference; supported: .*lenet5"):
    torch_reference.build('alexnet', (32, 32, 3))
  with pytest.raises(ValueError, match="'lenet5' has no field"):
    torch_reference.build('lenet5', (28, 28, 1), widths=(6, 16))
  with pytest.raises(ValueError, match="head='global_avg' is not mirrored"):
    torch_reference.build('simple_cnn', (28, 28, 1), head='global_avg')
  with pytest.raises(ValueError, match="activation='swish'"):
    torch_reference.build('mlp', (28, 28, 1), activation='swish')
  with pytest.raises(ValueError, match=r'crop_padding=4, dataset\.augment\.flip=True'):
    torch_reference.check_case(benchmark.config_case(_config('resnet20_cifar10.py')))
  case = benchmark.model_case(default.get_config(), 'simple_cnn', (28, 28, 1))
  case.config.ema_decay = 0.999
  with pytest.raises(ValueError, match='does not mirror ema_decay=0.999'):
    torch_reference.check_case(case)
  with pytest.raises(ValueError, match='channels_last needs 2-D images'):
    torch_reference.benchmark_case(benchmark.model_case(default.get_config(), 'cnn1d', (40, 1)), 8,
                                   channels_last=True)


def test_amp_computes_in_bfloat16_as_half_precision_does():
  name, fields, shape = 'resnet20', dict(stage_sizes=(1, 1, 1)), (16, 16, 3)
  model, variables, torch_model, x = _pair(name, fields, shape)
  ours = np.asarray(models.create(name, dtype=jnp.bfloat16, **fields).apply(variables, x),
                    np.float32)
  torch_model.eval()
  with torch.autocast('cpu', torch.bfloat16):
    theirs = torch_model(_nchw(x)).detach()
  float32 = torch_model(_nchw(x)).detach().numpy()
  assert theirs.dtype == torch.bfloat16 and np.abs(theirs.float().numpy() - float32).max() > 0
  np.testing.assert_allclose(theirs.float().numpy(), ours, atol=5e-2 * np.abs(ours).max())


def test_half_precision_is_mirrored_with_amp_only_and_timed_on_the_device():
  case = benchmark.model_case('resnet20', (16, 16, 3))
  case.config.model.stage_sizes = (1, 1, 1)
  case.config.half_precision = True
  with pytest.raises(ValueError, match='does not mirror half_precision=True'):
    torch_reference.check_case(case)
  record = torch_reference.benchmark_case(case, 4, steps=1, repeats=1, warmup_steps=1,
                                          device='cpu', amp=True, channels_last=True)
  assert record['amp'] and record['device'] == 'cpu' and not record['compile']
  assert 'bf16 autocast' in record['description'] and record['train_images_per_sec'] > 0


def test_benchmark_script_times_torch_beside_ours(tmp_path):
  out = tmp_path / 'bench'
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS='cpu')
  subprocess.run([sys.executable, '-m', 'experiments.benchmark', f'--config={TINY_CONFIG}',
                  '--batch_sizes=8', '--steps=2', '--repeats=2', '--warmup_steps=1',
                  '--torch', f'--out={out}'], cwd=ROOT, env=env, check=True,
                 capture_output=True)
  with open(out / provenance.RESULTS_JSON) as f:
    (record,) = json.load(f)['cases']
  ref = record['reference']
  assert ref['framework'] == 'torch' and ref['version'] == torch.__version__
  assert ref['num_threads'] == torch_reference.default_num_threads()
  assert ref['params'] == record['params']  # the same model
  assert len(ref['train_window_s']) == len(ref['eval_window_s']) == 2
  for mode in ('train', 'eval'):
    assert ref[f'{mode}_images_per_sec'] == pytest.approx(
        8 * 2 / np.median(ref[f'{mode}_window_s']))
    assert record[f'{mode}_ratio'] == pytest.approx(
        record[f'{mode}_images_per_sec'] / ref[f'{mode}_images_per_sec'])
  lines = (out / provenance.RESULTS_MD).read_text().splitlines()
  header = next(i for i, line in enumerate(lines) if line.startswith('| case |'))
  columns = [c.strip() for c in lines[header].strip('|').split('|')]
  row = dict(zip(columns, (c.strip() for c in lines[header + 2].strip('|').split('|'))))
  assert float(row['torch train img/s'].replace(',', '')) == pytest.approx(
      ref['train_images_per_sec'], abs=0.5)
  assert float(row['train ours/torch']) == pytest.approx(record['train_ratio'], abs=0.005)


@pytest.mark.parametrize('size,channels', [(8, 4), (5, 3)])
def test_conv2d_calls_compute_what_ops_conv2d_computes(size, channels):
  # bench_ops' PyTorch column must time the same convolution and gradients as ours.
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, size, size, channels), np.float32)
  kernel = rng.standard_normal((3, 3, channels, channels + 1), np.float32)
  dy = rng.standard_normal((2, size, size, channels + 1), np.float32)
  forward, forward_backward = torch_reference.conv2d_calls(x, kernel, dy, padding=1)
  y, vjp = jax.vjp(lambda x, k: ops.conv2d(x, k, padding='SAME'), x, kernel)
  dx, dk = vjp(dy)
  tol = dict(rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(forward().numpy().transpose(0, 2, 3, 1), y, **tol)
  tdx, tdk = forward_backward()
  np.testing.assert_allclose(tdx.numpy().transpose(0, 2, 3, 1), dx, **tol)
  np.testing.assert_allclose(tdk.numpy().transpose(2, 3, 1, 0), dk, **tol)
