"""Trains a model from a config file and prints its test accuracy.

  python -m experiments.train --config experiments/configs/fashion_mnist_cnn.py \
      --config.num_epochs=5 --config.model.dropout_rate=0.3
"""

from absl import app
from ml_collections import config_flags

from cnn_jax.train.loop import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'experiments/configs/fashion_mnist_cnn.py', 'Experiment config file.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  summary = train_and_evaluate(_CONFIG.value)
  print(f"test accuracy {summary['test_accuracy']:.4f}  (loss {summary['test_loss']:.4f}, "
        f"{summary['num_params']:,} parameters, {summary['wall_s']:.0f} s total, "
        f"compile {summary['compile_s']:.1f} s, "
        f"{summary['train_images_per_sec']:.0f} train img/s)")


if __name__ == '__main__':
  app.run(main)
