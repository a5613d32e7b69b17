"""Study: dropout rate x training-set size on Fashion-MNIST (python -m experiments.study
--study dropout_data; see cnn_jax.studies.dropout_data).

The lesson's CNN (``fashion_mnist_lesson.py``: two 3x3 conv -> ReLU -> 2x2 max pool ->
dropout blocks of 16 and 32 channels, a 128-unit dense layer with dropout) trained on
the first 1,000, 5,000 or 55,000 training images, with one dropout rate applied after
both conv blocks and the dense layer. Label smoothing is off (it regularises too, and
would blur what dropout alone does); everything else is the lesson's recipe (Adam,
one-cycle peak 5e-3, batch 128).

``get_study()`` sets the grid. The epochs shrink as the set grows so that the
no-dropout model overfits the small sets (1,000 images: 150 epochs, about 1,050 steps,
train accuracy 100%) while the 55,000-image runs stay within the machine's budget
(5 epochs, 2,145 steps). The held-out curve is the last 5,000 training images
(``train[55000:]``, never trained on), evaluated about every tenth of each run; test
accuracy is on the full test set, once, at the end.

Cost: every size trains its rates x seeds (3 x 3 = 9 replicas) as one vmapped program.
Nine replicas trained at about 5,800 images/s together on the 2-core CPU (measured on
1,000 images, 30 epochs), so the 4,755 steps of batch 128 take about 16 minutes plus
the evaluations; ``results.md`` states the measured wall times.
"""

from experiments.configs import fashion_mnist_lesson


def get_config():
  """The base run; the study sets the split, epochs and rates per size."""
  config = fashion_mnist_lesson.get_config()
  config.label_smoothing = 0.0
  config.dataset.eval_split = 'train[55000:]'
  config.evaluate_train = True  # train accuracy in eval mode: the overfitting gap
  return config


def get_study():
  """The grid: dropout rates, and (training images, epochs, evaluate every N epochs)."""
  return {'rates': (0.0, 0.25, 0.5),
          'sizes': ((1000, 150, 15), (5000, 40, 4), (55000, 5, 1))}
