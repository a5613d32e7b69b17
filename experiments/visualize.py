"""Draws the pictures of the ops (and of a trained model) and writes docs/visualize.md.

  python -m experiments.visualize --out docs/figures [--workdir runs/fashion_mnist_cnn]

The example image is a Fashion-MNIST test image; the trained-model pictures (filters,
feature maps, confusion matrix, worst-classified images) are drawn only with --workdir.
"""


from absl import app, flags

from cnn_jax import data as data_lib
from cnn_jax import viz
from cnn_jax.train.workdir import read_summary
from cnn_jax.viz.common import DPI
from cnn_jax.viz.page import TrainedRun
from experiments import cli
from experiments.configs import fashion_mnist_cnn

_OUT = flags.DEFINE_string('out', 'docs/figures', 'Folder for the PNGs.')
_PAGE = flags.DEFINE_string('page', 'docs/visualize.md', 'The markdown page to write.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir: adds the trained-model '
                               'pictures.')
_CHECKPOINT = flags.DEFINE_string('checkpoint', 'latest', "'latest' or a step.")
_IMAGE = flags.DEFINE_integer('image_index', 0, 'The test image to draw.')
_DPI = flags.DEFINE_integer('dpi', DPI, 'Resolution of the PNGs.')


def _describe(workdir: str, config, step: int) -> str:
  """The run the trained pictures come from, with its test accuracy when it finished."""
  text = (f'Checkpoint: step {step} of `{workdir}`, model {config.model.name}, '
          f'{config.num_epochs} epochs')
  summary = read_summary(workdir, None)
  if summary is not None and isinstance(summary.get('test_accuracy'), float):
    text += f', test accuracy {summary["test_accuracy"]:.2%}'
  return text + '.'


def main(argv):
  cli.start(argv)
  try:
    run = viz.load_workdir(_WORKDIR.value, _CHECKPOINT.value) if _WORKDIR.value else None
  except FileNotFoundError as e:
    raise SystemExit(f'error: {e}') from e
  dataset = (run.config if run else fashion_mnist_cnn.get_config()).dataset
  images, labels = data_lib.load(dataset)['test']
  image = images[_IMAGE.value] / 255.0
  trained = None
  if run:
    builder = data_lib.ensure_prepared(dataset)
    names = builder.info.features[builder.info.supervised_keys[1]].names
    inputs = data_lib.augment(images, None, data_lib.augment_config(dataset), train=False)
    trained = TrainedRun(run, images, inputs, labels, names,
                         _describe(_WORKDIR.value, run.config, run.step), _IMAGE.value)
  for path in viz.write_page(_OUT.value, _PAGE.value, image, trained=trained, dpi=_DPI.value):
    print(path)


if __name__ == '__main__':
  app.run(main)
