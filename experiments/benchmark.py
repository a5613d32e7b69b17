"""Benchmarks the train and eval steps of configs or bare models (see cnn_jax.benchmark).

  python -m experiments.benchmark --config experiments/configs/fashion_mnist_cnn.py \
      --batch_sizes 128,256 --steps 20 --repeats 3 --out experiments/results/benchmarks/NAME
  python -m experiments.benchmark --model resnet20 --input_shape 32,32,3 --batch_sizes 128
  python -m experiments.benchmark --time_to_accuracy=0.91   # also trains the config (minutes)
  python -m experiments.benchmark --torch   # and PyTorch's version of each model, side by side

``--torch`` needs the benchmark-only extra: ``pip install -r requirements-bench.txt``.
"""

import functools
import os

from absl import app, flags

from cnn_jax import benchmark
from experiments import cli
from experiments.configs import default

_DEFAULT_CONFIG = os.path.join(cli.CONFIG_DIR, 'fashion_mnist_cnn.py')

_CONFIG = flags.DEFINE_multi_string(
    'config', [], 'Experiment config file(s); repeat the flag or give a comma list. '
    f'Default (without --model): {_DEFAULT_CONFIG}.')
_MODEL = flags.DEFINE_list('model', [], 'Bare registered model name(s).')
_INPUT_SHAPE = flags.DEFINE_multi_string('input_shape', ['28,28,1'],
                                         'One input\'s shape for --model, e.g. 32,32,3; '
                                         'repeat the flag to run each model at several.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 10, 'Output size for --model.')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['128'], 'Batch sizes to measure.')
_STEPS = flags.DEFINE_integer('steps', 20, 'Steps per timed window.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed windows; the median is reported.')
_WARMUP = flags.DEFINE_integer('warmup_steps', 3, 'Untimed train steps after compiling.')
_DATA = flags.DEFINE_enum('data', 'synthetic', ['synthetic', 'real'],
                          'Synthetic random data or the config\'s dataset.')
_TARGET = flags.DEFINE_float('time_to_accuracy', None,
                             'Also train each config on real data and report the wall '
                             'time and final test accuracy against this target.')
_OUT = flags.DEFINE_string('out', None, 'Folder for results.json and results.md '
                           '(e.g. experiments/results/benchmarks/NAME); default: print only.')
_STEPS_PER_CALL = flags.DEFINE_integer(
    'steps_per_call', None, 'Override every case\'s config.steps_per_call: 1 times one '
    'jitted step per call, 0 one lax.scan over each timed window; default: the config\'s.')
_TORCH = flags.DEFINE_bool('torch', False, 'Also time the PyTorch version of each model '
                           '(experiments/torch_reference.py) right after ours, side by side.')
_ROUNDS = flags.DEFINE_integer(
    'rounds', 1, 'Measure each case (and with --torch its reference right after it) this '
    'many times, alternating, and report medians over rounds: fairer on a shared machine '
    'whose load drifts.')
_CHANNELS_LAST = flags.DEFINE_bool('torch_channels_last', False,
                                   'Run the PyTorch models in channels_last memory format.')


def main(argv):
  cli.start(argv)
  specs = [s for value in _CONFIG.value for s in value.split(',') if s]
  if not specs and not _MODEL.value:
    specs = [_DEFAULT_CONFIG]
  try:
    shapes = [tuple(int(n) for n in s.split(',')) for s in _INPUT_SHAPE.value]
    cases = ([benchmark.config_case(s) for s in specs] +
             [benchmark.model_case(default.get_config(), m, shape, _NUM_CLASSES.value)
              for m in _MODEL.value for shape in shapes])
    if _STEPS_PER_CALL.value is not None:
      for case in cases:
        case.config.steps_per_call = _STEPS_PER_CALL.value
    reference = None
    if _TORCH.value:
      torch_reference = cli.load_torch_reference()
      for case in cases:  # refuse what it cannot mirror before anything is timed
        torch_reference.check_case(case)
      reference = functools.partial(torch_reference.benchmark_case,
                                    channels_last=_CHANNELS_LAST.value)
    results = benchmark.run(
        cases, [int(b) for b in _BATCH_SIZES.value], steps=_STEPS.value,
        repeats=_REPEATS.value, warmup_steps=_WARMUP.value, data=_DATA.value,
        target_accuracy=_TARGET.value, out=_OUT.value, reference=reference,
        rounds=_ROUNDS.value,
        command=cli.command_line('experiments.benchmark'))
  except ValueError as e:
    raise SystemExit(f'error: {e}') from e
  print(benchmark.format_results(results))


if __name__ == '__main__':
  app.run(main)
