"""Writes docs/tutorial.ipynb from the cells below and executes it, storing its outputs.

  .venv/bin/python docs/build_tutorial.py            # from the repository root

The notebook follows the lesson's order and uses only the public API (cnn_jax.ops,
layers, models, summary, data, viz, the experiment configs and the experiments.train
command). It is executed in a fresh kernel with nbclient, as tests/test_tutorial.py
does, so what is stored is what the code prints. Run it with the dataset prepared;
the training cell takes about a minute on 2 CPU cores.
"""

import os
import sys

import nbformat
from nbclient import NotebookClient

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOK = os.path.join(HERE, 'tutorial.ipynb')

CELLS = [
    ('md', """# CNNs from weighted sums to Fashion-MNIST: the lesson, runnable

This notebook follows the lesson this project grew from, step by step, with the project's
own code: `cnn_jax.ops` (pure functions), `cnn_jax.layers` and `cnn_jax.models` (Flax),
`cnn_jax.summary` (shapes, parameters, FLOPs, receptive fields) and `cnn_jax.viz` (the
pictures). Two code samples of the lesson were wrong; [the lesson's code,
corrected](lesson_code.md) shows them beside the right results, and section 3 repeats that.

Run it from the repository root's `docs/` folder with the project's `.venv` (after
`bash setup.sh`). Every number printed below is computed by the cells."""),
    ('code', """%matplotlib inline
import os, subprocess, sys

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import scipy.signal
from IPython.display import display

from cnn_jax import data, layers, models, ops, summary, viz
from experiments.configs import fashion_mnist_lesson

from absl import logging as absl_logging

matplotlib.rcParams['figure.dpi'] = 72  # keeps the stored notebook small
absl_logging.set_verbosity(absl_logging.ERROR)  # orbax warns on every read-only restore
ROOT = os.path.dirname(os.getcwd()) if os.path.basename(os.getcwd()) == 'docs' else os.getcwd()
FAST = os.environ.get('CNN_JAX_TUTORIAL_FAST') == '1'  # the test's shortened training"""),
    ('md', """## 1. Dense, local and shared connections

A 28x28 grayscale image has 784 inputs. Map it to a 28x28 output three ways and count the
weights (plus one bias per output):

* **dense** (a DNN layer): every output sees every input;
* **local**: every output sees only its 3x3 neighbourhood, with its own 9 weights;
* **shared** (a convolution): every output sees its 3x3 neighbourhood with *the same*
  9 weights.

The dense and conv counts come from the layers' initialised parameters; the local layer
is counted by hand (there is no such layer here, it is the step between the other two)."""),
    ('code', """def n_params(module, x):
    variables = module.init(jax.random.key(0), x)
    return sum(leaf.size for leaf in jax.tree.leaves(variables['params']))

x = jnp.zeros((1, 28, 28, 1))
dense = n_params(layers.Dense(28 * 28), x.reshape(1, -1))
local = 28 * 28 * (3 * 3 + 1)
shared = n_params(layers.Conv(features=1, kernel_size=(3, 3), padding='SAME'), x)
print(f'dense : {dense:>9,} parameters')
print(f'local : {local:>9,} parameters')
print(f'shared: {shared:>9,} parameters (the same 3x3 kernel everywhere)')"""),
    ('md', """## 2. A 1-D convolution is a sliding weighted sum

Each output multiplies the inputs under the kernel element by element and adds the
products. Like every deep-learning framework, `ops.conv1d` does not flip the kernel (it
computes a cross-correlation; section 4 shows the difference). Inputs are channels-last:
`(W, C_in)` and kernels `(K, C_in, C_out)`."""),
    ('code', """signal = jnp.array([1., 3, 2, 0, -1, 2, 4, 1])
kernel = jnp.array([1., 0, -1])
y = ops.conv1d(signal[:, None], kernel[:, None, None])[:, 0]
print('outputs:', y)
print('output 2 by hand: 1*2 + 0*0 + (-1)*(-1) =', 1 * 2 + 0 * 0 + (-1) * (-1))
display(viz.conv1d_weighted_sum(signal, kernel, position=2).figure)"""),
    ('md', """## 3. The lesson's two samples, corrected

The lesson's `convolve1D` added up every pairwise product (36 for `[1, 2, 3]` and
`[1, 2, 3]`: one number, not a signal), and its `convolve2D` returned the maximum of each
row of the image (`[0.325, 0.6625, 1.0]`: that is pooling, not convolution). The true
convolutions are `ops.convolve1d` (like `numpy.convolve`) and `ops.convolve2d` (like
`scipy.signal.convolve2d`, kernel flipped on both axes). Details in
[the lesson's code, corrected](lesson_code.md)."""),
    ('code', """def convolve1D(signal, kernel):            # the lesson's sample (wrong)
    return sum(s * k for s in signal for k in kernel)

def convolve2D(image, kernel):             # the lesson's sample (wrong: ignores the kernel)
    return [max(row) for row in image]

image = [[10 / 80, 26 / 80, 18 / 80], [40 / 80, 53 / 80, 30 / 80], [80 / 80, 64 / 80, 72 / 80]]
kernel2d = [[1, -1], [1, -1]]
print('lesson convolve1D:', convolve1D([1, 2, 3], [1, 2, 3]))
print('ops.convolve1d   :', ops.convolve1d([1, 2, 3], [1, 2, 3]), ' numpy:', np.convolve([1, 2, 3], [1, 2, 3]))
print('lesson convolve2D:', convolve2D(image, kernel2d))
print('ops.convolve2d (valid):')
print(np.asarray(ops.convolve2d(image, kernel2d, mode='valid')).round(4))
print('scipy.signal.convolve2d (valid):')
print(scipy.signal.convolve2d(image, kernel2d, mode='valid').round(4))"""),
    ('md', """## 4. Cross-correlation (what conv layers compute) against convolution

On a single 1 (an impulse) and an asymmetric kernel the flip is visible: convolution copies
the kernel, correlation writes it out mirrored. A learned kernel absorbs the flip, so
networks use the cheaper correlation."""),
    ('code', """display(viz.correlation_vs_convolution([0, 0, 1, 0, 0], [1, 2, 3]).figure)"""),
    ('md', """## 5. The edge filter (1, -1)

The kernel (1, -1) computes `x[i] - x[i + 1]`: zero where the signal is flat, non-zero only
at the steps, with the sign giving the direction. In 2-D, the Sobel kernels do the same for
horizontal and vertical edges; here on a Fashion-MNIST test image (the first cell that
touches the data builds the dataset from the Debian package's IDX files once, if needed)."""),
    ('code', """step = jnp.array([0., 0, 0, 1, 1, 1])[:, None]
print(ops.conv1d(step, jnp.array([1., -1])[:, None, None])[:, 0])
display(viz.edge_filter_1d([0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0]).figure)"""),
    ('code', """config = fashion_mnist_lesson.get_config()
test_images, test_labels = data.load(config.dataset)['test']
builder = data.ensure_prepared(config.dataset)
class_names = builder.info.features['label'].names
picture = test_images[0] / 255.0
print('test image 0:', class_names[test_labels[0]], picture.shape)
sobel = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32)
display(viz.edge_filters_2d(picture, {'horizontal Sobel': sobel, 'vertical Sobel': sobel.T}).figure)"""),
    ('md', """## 6. Padding and stride

Without padding a kernel of size k fits `n - k + 1` times; zero padding p on each side lets
it sit over the borders, and stride s keeps every s-th output:
`out = floor((n + 2p - k) / s) + 1` (`ops.output_size`)."""),
    ('code', """for p, s in ((0, 1), (0, 2), (1, 1), (1, 2)):
    print(f'n=8, k=3, padding {p}, stride {s}: output length', ops.output_size(8, 3, s, p))
display(viz.stride_and_padding_1d([1, 2, 3, 4, 5, 4, 3, 2], [1, 1, 1]).figure)
display(viz.padding_stride_2d(picture, sobel.T, kernel_name='vertical Sobel').figure)"""),
    ('md', """## 7. Channels

On an RGB image a 3x3 kernel is a 3x3x3 block, one slice per colour channel; the output is
the sum of the three per-channel results. A conv layer with `C_out` filters has
`3 * 3 * C_in * C_out + C_out` parameters."""),
    ('code', """rgb = viz.synthetic_rgb_image()
rgb_kernel = np.stack([sobel.T, sobel.T, 0.0 - sobel.T], axis=-1)
display(viz.rgb_convolution(rgb, rgb_kernel).figure)
print('Conv(16 filters, 3x3) on RGB:', n_params(layers.Conv(features=16, kernel_size=(3, 3)),
                                                 jnp.zeros((1, 8, 8, 3))), 'parameters = 3*3*3*16 + 16')"""),
    ('md', """## 8. Pooling

A 2x2 max pool with stride 2 keeps one value of every four (25%). Windows may also be larger
than the stride: 3x3 windows with stride 2 overlap (AlexNet's choice)."""),
    ('code', """grid = np.arange(1, 17, dtype=np.float32)[np.random.default_rng(1).permutation(16)].reshape(4, 4)
plot = viz.pooling_grid(grid)
print('kept fraction (2x2, stride 2):', plot.data['kept_fraction'])
display(plot.figure)
x = jnp.asarray(picture)
for window, stride in ((2, 2), (3, 3), (3, 2)):
    out = ops.max_pool(x, (window, window), stride=stride)
    print(f'max pool {window}x{window}, stride {stride}: 28x28 -> {out.shape[0]}x{out.shape[1]}'
          f' ({out.shape[0] * out.shape[1] / 28 ** 2:.0%} of the values)')"""),
    ('md', """## 9. Dropout

During training dropout zeroes each unit with probability `rate` and scales the survivors
by `1 / (1 - rate)`, so the expected value is unchanged; at evaluation it does nothing.
Spatial dropout drops whole channels."""),
    ('code', """ones = jnp.ones((100, 100))
for rate in (0.25, 0.5):
    out = ops.dropout(ones, rate, jax.random.key(0))
    print(f'rate {rate}: kept {float((out != 0).mean()):.3f}, survivors = {float(out.max()):.3f}, '
          f'mean {float(out.mean()):.3f}')
print('evaluation:', bool((ops.dropout(ones, 0.5, jax.random.key(0), deterministic=True) == ones).all()))
display(viz.dropout_masks((16, 16), (0.1, 0.25, 0.5, 0.75), jax.random.key(0)).figure)"""),
    ('md', """## 10. Receptive fields

A k x k convolution adds `(k - 1) x jump` input pixels to what one unit sees; a 2x2 pool
adds `(2 - 1) x jump` and doubles the jump. For the lesson's CNN (two blocks of 3x3 conv and
2x2 max pool) by hand with `ops.receptive_field`, then LeNet-5's growth drawn by
`summary`:"""),
    ('code', """stack = [(3, 1, 1, 1, 'conv0'), (2, 2, 0, 1, 'pool0'), (3, 1, 1, 1, 'conv1'), (2, 2, 0, 1, 'pool1')]
for r in ops.receptive_field(stack, 28):
    print(f'{r.name}: field {r.size}, jump {r.jump}')
display(viz.receptive_field_growth(models.create('lenet5'), picture).figure)"""),
    ('md', """## 11. Training the lesson's CNN on Fashion-MNIST

`python -m experiments.train` trains the default config,
`experiments/configs/fashion_mnist_lesson.py`: conv -> ReLU -> 2x2 max pool -> dropout
twice (16 and 32 channels), a 128-unit dense layer with dropout, and the 10-way output;
about a minute on 2 CPU cores for >= 91% test accuracy. (The test that executes this
notebook sets `CNN_JAX_TUTORIAL_FAST=1`, which trains one epoch on a tenth of the data.)"""),
    ('code', """print(summary.summarize(models.create('simple_cnn', **{k: v for k, v in config.model.items() if k != 'name'}),
                        (28, 28, 1)).table())
workdir = os.environ.get('CNN_JAX_TUTORIAL_WORKDIR', os.path.join(ROOT, 'runs', 'tutorial'))
command = [sys.executable, '-m', 'experiments.train', f'--workdir={workdir}']
if FAST:
    command += ['--config.dataset.train_split=train[:10%]', '--config.num_epochs=1']
result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
print(result.stdout, result.stderr)
result.check_returncode()"""),
    ('md', """## 12. What it learned: filters and feature maps

The first layer's 3x3 kernels (several pair a positive with a negative side, like the edge
filters above) and the maps each layer produces for one test image: conv outputs before the
ReLU in a diverging colour map, pooled maps after it."""),
    ('code', """run = viz.load_workdir(workdir)
display(viz.first_layer_filters(run.variables).figure)
inputs = data.augment(test_images[:1], None, data.augment_config(config.dataset), train=False)
display(viz.feature_maps(run.model, run.variables, inputs[0], label=class_names[test_labels[0]]).figure)"""),
    ('md', """## 13. The classic architectures

LeNet-5, AlexNet, GoogLeNet and ResNet, as built here and measured by `cnn_jax.summary`
(block diagrams, per-layer tables and published accuracies in the
[architecture gallery](architectures.md))."""),
    ('code', """for title, name, shape in (('LeNet-5', 'lenet5', (28, 28, 1)), ('AlexNet', 'alexnet', (224, 224, 3)),
                          ('GoogLeNet', 'googlenet', (224, 224, 3)), ('ResNet-18', 'resnet18', (224, 224, 3)),
                          ('ResNet-50', 'resnet50', (224, 224, 3))):
    s = summary.summarize(models.create(name), shape)
    print(f'{title:10s} {s.params:>12,} parameters {s.flops / 1e9:8.3f} GFLOPs per image, {len(s.rows)} layers')"""),
]


def build() -> nbformat.NotebookNode:
  """The notebook's cells, without outputs."""
  nb = nbformat.v4.new_notebook()
  nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3',
                               'language': 'python'}
  nb.cells = [nbformat.v4.new_markdown_cell(text) if kind == 'md'
              else nbformat.v4.new_code_cell(text) for kind, text in CELLS]
  return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> nbformat.NotebookNode:
  """Runs every cell in a fresh kernel started in docs/; raises on the first error."""
  env_root = os.path.dirname(HERE)
  # The kernel imports cnn_jax and experiments from the repository root.
  os.environ['PYTHONPATH'] = os.pathsep.join(
      [env_root] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])
  NotebookClient(nb, timeout=timeout, kernel_name='python3',
                 resources={'metadata': {'path': HERE}}).execute()
  return nb


if __name__ == '__main__':
  notebook = execute(build())
  for cell in notebook.cells:  # execution counts alone would make every rebuild a diff
    cell.metadata.pop('execution', None)
  nbformat.write(notebook, NOTEBOOK)
  print(f'{NOTEBOOK}: {os.path.getsize(NOTEBOOK):,} bytes', file=sys.stderr)
