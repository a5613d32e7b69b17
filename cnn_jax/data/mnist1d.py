"""MNIST-1D (Greydanus 2020) as a TFDS dataset, generated locally: no download at all.

Importing this module registers the builder under the TFDS name ``mnist1d``; preparing
it runs the PyPI ``mnist1d`` package's generator with its default arguments (5000
sequences of length 40, 10 classes, seed 42, the first 80% for training), the dataset of
the paper, so ``tfds.load('mnist1d')`` works on any machine.
"""

from __future__ import annotations

import random

import numpy as np
import tensorflow_datasets as tfds

from cnn_jax.data import catalog

_LENGTH = 40  # the package's default final_seq_length

_CITATION = """\
@article{greydanus2020scaling,
  title={Scaling down Deep Learning},
  author={Greydanus, Sam},
  journal={arXiv preprint arXiv:2011.14439},
  year={2020}
}
"""


def generate() -> dict[str, np.ndarray]:
  """Runs the mnist1d package's generator with its default arguments.

  The generator seeds Python's and numpy's global random state; both are restored
  afterwards so that generating the data does not change other code's random draws.

  Returns:
    ``{'x', 'y', 'x_test', 'y_test'}``: float64 ``(4000, 40)`` / ``(1000, 40)`` signals
    and int labels, in the package's order.
  """
  from mnist1d.data import get_dataset_args, make_dataset  # heavy: imports matplotlib
  np_state, py_state = np.random.get_state(), random.getstate()
  try:
    data = make_dataset(get_dataset_args())
  finally:
    np.random.set_state(np_state)
    random.setstate(py_state)
  return {key: data[key] for key in ('x', 'y', 'x_test', 'y_test')}


class Mnist1d(catalog.BuiltLocally, tfds.core.GeneratorBasedBuilder):
  """MNIST-1D: ten 1-D digit templates, randomly padded, translated, scaled, sheared."""

  name = 'mnist1d'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'mnist1d package (0.0.2) default arguments: 4000 train / '
                            '1000 test sequences of length 40.'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description='MNIST-1D: a 1-D analogue of MNIST for fast experiments on spatial '
                    'inductive biases. Signals are standardised over the whole dataset.',
        features=tfds.features.FeaturesDict({
            'signal': tfds.features.Tensor(shape=(_LENGTH, 1), dtype=np.float32),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('signal', 'label'),
        homepage='https://github.com/greydanus/mnist1d',
        citation=_CITATION,
        # Keep the package's order: its first 4000 sequences are the paper's train split.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # generated, nothing to download
    data = generate()
    return {'train': self._generate_examples(data['x'], data['y']),
            'test': self._generate_examples(data['x_test'], data['y_test'])}

  def _generate_examples(self, signals, labels):
    for i, (signal, label) in enumerate(zip(signals, labels)):
      yield i, {'signal': signal.astype(np.float32)[:, None], 'label': int(label)}
