"""The DNN-vs-CNN study: parameter growth against closed forms, the trained comparison."""

import os

import pytest
from fake_runs import write_replicas_workdir

from cnn_jax import config_utils, dnn_vs_cnn
from cnn_jax.train import replicas

QUIET = dict(log=lambda *_: None)
_CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'experiments', 'configs')
MLP_CONFIG = os.path.join(_CONFIG_DIR, 'mlp_fashion_mnist.py')
CNN_CONFIG = os.path.join(_CONFIG_DIR, 'dnn_vs_cnn_cnn.py')
CONFIGS = {'mlp': MLP_CONFIG, 'cnn': CNN_CONFIG}


def _fields(spec):
  return config_utils.load_config(spec).model


def test_growth_table_equals_the_closed_forms():
  table = dnn_vs_cnn.growth_table(MLP_CONFIG, CNN_CONFIG)
  mlp, cnn = _fields(MLP_CONFIG), _fields(CNN_CONFIG)
  h, f, k = mlp.hidden[0], cnn.features[0], cnn.kernel_size
  assert (h, f, k) == (256, 32, 3)
  assert [(r['size'], r['channels']) for r in table] == [
      (s, c) for c in (1, 3) for s in (28, 32, 64, 128, 224, 256)]
  for r in table:
    s, c = r['size'], r['channels']
    assert r['inputs'] == s * s * c
    assert r['dense_first_layer'] == h * (s * s * c) + h
    assert r['conv_first_layer'] == k * k * c * f + f
    # Whole models: (n_in + 1) * n_out per dense layer; the CNN's two SAME convs and
    # two 2x2 pools leave (s / 4)^2 x 64 features for its dense layer.
    widths = (s * s * c, *mlp.hidden, 10)
    assert r['mlp_params'] == sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    flat = (s // 4) ** 2 * cnn.features[1]
    assert r['cnn_params'] == (k * k * c * f + f + k * k * f * 64 + 64 + (flat + 1) * 69
                               + 70 * 10)
    # ResNet-20 (global pooling head): 269,722 on RGB (He et al. 2016, Table 6: 0.27M)
    # at every size; grayscale saves 2 x 9 x 16 weights of its bias-free 3x3 stem conv.
    assert r['gap_cnn_params'] == 269_722 - (3 - c) * 9 * 16
  assert table[0]['dense_first_layer'] == 200_960 and table[0]['conv_first_layer'] == 320
  assert table[0]['mlp_params'] == 235_146  # the MLP config's documented count


def test_first_layer_skips_parameterless_layers():
  table = dnn_vs_cnn.growth_table(MLP_CONFIG, CNN_CONFIG, sizes=(28,), channels=(1,))
  plot = dnn_vs_cnn.params_vs_input_size(table)
  assert list(plot.data['sizes']) == [28]
  assert list(plot.data['dense'][1]) == [200_960]  # dense0, not the input dropout
  assert list(plot.data['conv'][1]) == [320]
  assert list(plot.data['mlp'][1]) == [235_146]
  assert list(plot.data['gap_cnn'][1]) == [table[0]['gap_cnn_params']]


class FakeRunner:
  """Returns fixed accuracies per workdir and writes the files resume reads."""

  def __init__(self):
    self.calls = []

  def __call__(self, config, workdir, variants, log=print):
    self.calls.append(workdir)
    accuracies = {'mlp': (0.88, 0.89), 'cnn': (0.90, 0.92)}[os.path.basename(workdir)]
    summaries = [{'test_accuracy': a, 'wall_s': 10.0, 'num_params': 0, 'variant': v}
                 for a, v in zip(accuracies, variants)]
    write_replicas_workdir(workdir, config, variants, summaries)
    return summaries


def test_trained_comparison_reports_params_flops_and_accuracy(tmp_path):
  runner = FakeRunner()
  out = tmp_path / 'out'
  results = dnn_vs_cnn.run(CONFIGS, seeds=2, workdir=str(tmp_path / 'runs'), out=str(out),
                           command='python -m experiments.dnn_vs_cnn --test', runner=runner,
                           **QUIET)
  mlp, cnn = results['trained']
  assert (mlp['label'], cnn['label']) == ('mlp', 'cnn')
  assert (mlp['params'], cnn['params']) == (235_146, 235_969)
  # Forward FLOPs, multiply-add = 2 plus one per bias: 784-256-128-10 dense layers.
  assert mlp['flops'] == sum(2 * a * b + b for a, b in ((784, 256), (256, 128), (128, 10)))
  assert cnn['flops'] > 10 * mlp['flops']
  assert mlp['mean'] == pytest.approx(0.885) and cnn['mean'] == pytest.approx(0.91)
  assert cnn['std'] == pytest.approx(0.0141421356)
  assert results['first_layers']['mlp']['name'] == 'dense0'
  assert results['first_layers']['cnn']['name'] == 'conv0'
  for name in ('results.json', 'results.md', 'params_vs_input_size.png',
               'accuracy_vs_params.png'):
    assert os.path.getsize(out / name) > 0
  with open(out / 'results.md') as f:
    text = f.read()
  assert '| 256x256x3 | 196,608 | 50,331,904 | 896 |' in text
  assert '| 91.00% ± 1.41 (2) |' in text
  plot = dnn_vs_cnn.accuracy_vs_params(results['trained'])
  assert list(plot.data['params']) == [235_146, 235_969]
  # Finished runs are read back, not trained again.
  dnn_vs_cnn.run(CONFIGS, seeds=2, workdir=str(tmp_path / 'runs'), out=None, runner=runner,
                 **QUIET)
  assert len(runner.calls) == 2


def test_fan_out_trains_both_models_in_one_call_and_a_failure_stops_the_study(tmp_path):
  runner = FakeRunner()
  calls = []

  def fan_out(jobs, log=print):
    calls.append([job.name for job in jobs])
    return {job.name: replicas.Outcome(
        None if job.name == 'cnn' else runner(job.config, job.workdir, job.variants),
        'FloatingPointError: non-finite loss' if job.name == 'cnn' else None,
        '127.0.0.4', 3.0, 0.0) for job in jobs}

  with pytest.raises(RuntimeError, match='training failed: cnn on 127.0.0.4: '
                     'FloatingPointError: non-finite loss'):
    dnn_vs_cnn.run(CONFIGS, seeds=2, workdir=str(tmp_path / 'runs'), out=None,
                   fan_out=fan_out, **QUIET)
  assert calls == [['mlp', 'cnn']] and len(runner.calls) == 1
  # Run again: the finished MLP is read back, only the CNN is sent (and now trains).
  results = dnn_vs_cnn.run(CONFIGS, seeds=2, workdir=str(tmp_path / 'runs'), out=None,
                           fan_out=lambda jobs, log: {j.name: replicas.Outcome(
                               runner(j.config, j.workdir, j.variants), None, 'h', 1.0, 0.0)
                               for j in jobs}, **QUIET)
  assert [r['resumed'] for r in results['trained']] == [True, False]
  assert results['trained'][1]['mean'] == pytest.approx(0.91)
