"""All pictures and the markdown page that shows them (``docs/visualize.md``).

The page's sentences quote the numbers each picture returned, so regenerating the
page with ``python -m experiments.visualize`` keeps text and pictures in agreement.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Sequence

import jax
import numpy as np

from cnn_jax import models, ops
from cnn_jax.viz import model_figures as mf
from cnn_jax.viz import ops_figures as of
from cnn_jax.viz.common import DPI, Plot

_SOBEL = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32)


class TrainedRun(NamedTuple):
  """What the trained-model pictures need.

  Attributes:
    run: the restored model (:func:`cnn_jax.viz.load_workdir`).
    images: uint8 test images ``(N, H, W, C)``.
    inputs: the same images as model inputs (``data.augment(..., train=False)``).
    labels: int test labels ``(N,)``.
    class_names: one name per class.
    description: where the checkpoint comes from, for the page (config, epochs, accuracy).
    image_index: the test image whose feature maps are drawn.
  """
  run: mf.Workdir
  images: np.ndarray
  inputs: np.ndarray
  labels: np.ndarray
  class_names: Sequence[str]
  description: str
  image_index: int = 0


def synthetic_rgb_image(size: int = 32) -> np.ndarray:
  """A float32 ``(size, size, 3)`` RGB test picture: coloured shapes on a gradient.

  A red disc, a green bar and a blue-to-yellow background, so that each colour
  channel holds different edges.
  """
  y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
  image = np.stack([0.5 * x, 0.5 * x, 0.6 * (1 - x)], axis=-1)
  disc = (x - 0.35) ** 2 + (y - 0.4) ** 2 < 0.06
  image[disc] = (0.95, 0.1, 0.1)
  bar = (np.abs(x - 0.72) < 0.1) & (y > 0.2) & (y < 0.85)
  image[bar] = (0.1, 0.85, 0.2)
  return image


def _ops_sections(image, key):
  """(file stem, title, plot, text) of every picture that needs no trained model."""
  gray = np.asarray(image, np.float32)
  rgb = synthetic_rgb_image()
  sections = []

  def add(stem, title, plot: Plot, text: str):
    sections.append((stem, title, plot, text))

  p = of.conv1d_weighted_sum([1, 3, 2, 0, -1, 2, 4, 1], [1, 0, -1], position=2)
  add('conv1d_weighted_sum', '1-D convolution is a sliding weighted sum', p,
      'Each output multiplies the window of inputs under the kernel element by element and '
      f'adds the products; output {p.data["position"]} is written out. With no padding, '
      f'{len(p.data["signal"])} inputs and a kernel of {len(p.data["kernel"])} give '
      f'{len(p.data["output"])} outputs.')
  p = of.edge_filter_1d([0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0])
  add('edge_filter_1d', 'The edge filter (1, -1)', p,
      'The kernel (1, -1) computes x[i] - x[i+1]: zero wherever the signal is flat, '
      f'{p.data["output"].max():g} at the falling edge (output {p.data["edge_index"]}) and '
      f'{p.data["output"].min():g} at the rising one. The sign tells the direction of the '
      'step; the size tells its height.')
  p = of.stride_and_padding_1d([1, 2, 3, 4, 5, 4, 3, 2], [1, 1, 1])
  lengths = ', '.join(f'{v} (padding {k[0]}, stride {k[1]})'
                      for k, v in p.data['lengths'].items())
  add('stride_padding_1d', 'Stride and zero padding', p,
      'Zero padding (gray) lets the kernel sit over the borders; stride 2 computes every '
      'second output only. The output length is floor((n + 2p - k) / s) + 1: here '
      f'{lengths}, each equal to the length conv1d returned.')
  p = of.correlation_vs_convolution([0, 0, 1, 0, 0], [1, 2, 3])
  lesson = np.asarray(ops.convolve1d(np.array([1, 2, 3]), np.array([1, 2, 3]))).tolist()
  add('correlation_vs_convolution', 'Correlation is not convolution', p,
      'On a single 1 (an impulse) the difference is plain to see with an asymmetric kernel '
      '[1, 2, 3]. conv1d, like every framework\'s conv layer, slides the kernel as it is and '
      f'writes it out mirrored: {p.data["correlation"].astype(int).tolist()}. True '
      'convolution flips the kernel first and so copies it: '
      f'{p.data["convolution"].astype(int).tolist()}, as numpy.convolve. For the lesson\'s '
      f'example, convolve1d([1, 2, 3], [1, 2, 3]) = {lesson} (see '
      '[the lesson\'s code, corrected](lesson_code.md)). A learned kernel can absorb the '
      'flip, so networks do not bother.')
  p = of.edge_filters_2d(gray, {'horizontal Sobel': _SOBEL, 'vertical Sobel': _SOBEL.T})
  add('edge_filters_2d', '2-D edge kernels on a Fashion-MNIST image', p,
      'The Sobel kernel with rows (1, 2, 1) / (0, 0, 0) / (-1, -2, -1) responds where the '
      'brightness changes from top to bottom (horizontal edges); its transpose responds '
      'to vertical edges. Red is a positive response, blue a negative one.')
  kernel = np.stack([_SOBEL.T, _SOBEL.T, 0.0 - _SOBEL.T], axis=-1)  # 0 - x: no '-0' labels
  p = of.rgb_convolution(rgb, kernel)
  add('rgb_convolution', 'A kernel on an RGB image spans the three channels', p,
      'On a 3-channel image a 3x3 kernel is a 3x3x3 block: one 3x3 slice per colour '
      'channel. Each slice filters its channel, and the output is the sum of the three '
      'contributions, so one output channel can look for "red on the left, blue on the '
      'right" at once (here the blue slice is negated).')
  p = of.padding_stride_2d(gray, _SOBEL.T, kernel_name='vertical Sobel')
  shapes = ', '.join(f'{pad} stride {s}: {v.shape[0]}x{v.shape[1]}'
                     for (pad, s), v in p.data['outputs'].items())
  add('padding_stride_2d', 'SAME against VALID padding, and stride', p,
      'VALID keeps only positions where the 3x3 kernel fits inside the image; SAME pads '
      f'so that the output is ceil(input / stride). On {gray.shape[0]}x{gray.shape[1]}: '
      f'{shapes}.')
  grid = np.arange(1, 17, dtype=np.float32)[np.random.default_rng(1).permutation(16)]
  p = of.pooling_grid(grid.reshape(4, 4))
  add('pooling_grid', 'Max and average pooling on numbers', p,
      f'A 2x2 window with stride 2 keeps one value of every four ({p.data["kept_fraction"]:.0%}'
      f'), so {1 - p.data["kept_fraction"]:.0%} of the values are dropped. Max pooling keeps '
      'the largest (in red), average pooling the mean of each window.')
  p = of.pooling_image(gray)
  add('pooling_image', 'Pooling an image', p,
      'The same pooling on the image halves each side: max pooling keeps the brightest '
      'pixel of each 2x2 block (edges and thin bright lines survive), average pooling '
      'blurs.')
  p = of.dropout_masks((16, 16), (0.1, 0.25, 0.5, 0.75), jax.random.fold_in(key, 0))
  kept = ', '.join(f'{v:.0%} at rate {r:g}' for r, v in p.data['kept_fraction'].items())
  add('dropout_masks', 'Dropout masks', p,
      f'Dropout zeroes each unit with probability rate and scales the rest by 1 / (1 - '
      f'rate), so the expected value is unchanged. Kept on this 16x16 array: {kept}. '
      'Evaluation uses no mask.')
  feats = np.asarray(of.edge_filters_2d(gray, {'h': _SOBEL, 'v': _SOBEL.T}).data['outputs']['h'])
  maps = np.stack([np.abs(feats), np.maximum(feats, 0), np.maximum(-feats, 0), gray[..., 0]],
                  -1)
  p = of.spatial_dropout(maps, 0.5, jax.random.fold_in(key, 1))
  add('spatial_dropout', 'Spatial dropout drops whole channels', p,
      'Neighbouring pixels of a feature map are strongly correlated, so dropping single '
      'pixels hides little. Spatial dropout (broadcast_dims over height and width) '
      f'drops whole channels: here {int((~p.data["kept_channels"]).sum())} of '
      f'{len(p.data["kept_channels"])} channels are zero.')
  p = mf.receptive_field_growth(models.create('lenet5'), gray)
  growth = ', '.join(f'{n} {s}' for n, s, _ in p.data['layers'])
  add('receptive_field_lenet5', 'Receptive fields grow through LeNet-5', p,
      'Each square is the patch of the input that one unit at the centre of a layer sees '
      '(dashed: its neighbour, one jump further). A k x k convolution adds (k - 1) x jump '
      'to the field; a 2x2 pool adds (2 - 1) x jump and doubles the jump. LeNet-5 on 28x28 '
      f'(padded to 32): {growth}; C5 sees the whole padded input.')
  return sections


def _trained_sections(trained: TrainedRun):
  """(file stem, title, plot, text) of the pictures of a trained model."""
  run, i = trained.run, trained.image_index
  sections = []
  p = mf.first_layer_filters(run.variables)
  sections.append(('filters', 'Learned first-layer filters', p,
                   f'The {p.data["kernel"].shape[-1]} kernels of {p.data["layer"]} after '
                   'training, drawn like the hand-made kernels above: several pair a positive '
                   f'side with a negative one, as edge detectors do. {trained.description}'))
  p = mf.feature_maps(run.model, run.variables, trained.inputs[i],
                      label=trained.class_names[trained.labels[i]])
  sections.append(('feature_maps', 'Feature maps', p,
                   f'Test image {i} ({trained.class_names[trained.labels[i]]}) through each '
                   'conv (before the ReLU) and pool layer, the first 8 channels each: the maps '
                   'shrink with pooling and respond to ever larger parts of the garment.'))
  logits = mf.predict(run.model, run.variables, trained.inputs)
  predicted = logits.argmax(-1)
  p = mf.confusion_matrix(trained.labels, predicted, trained.class_names)
  off = p.data['matrix'] - np.diag(np.diag(p.data['matrix']))
  a, b = np.unravel_index(off.argmax(), off.shape)
  sections.append(('confusion_matrix', 'Confusion matrix', p,
                   f'Rows are the true classes, columns the predictions; test accuracy '
                   f'{p.data["accuracy"]:.2%}. The largest confusion: {off[a, b]} '
                   f'{trained.class_names[a]} predicted as {trained.class_names[b]}.'))
  p = mf.worst_classified(trained.images, trained.labels, logits, trained.class_names)
  sections.append(('worst_classified', 'The worst-classified test images', p,
                   'The test images whose true class got the lowest probability, each titled '
                   'with its true class, the prediction and the probability of the true '
                   'class. Several are hard to tell even for a person.'))
  return sections


def write_page(out_dir: str, page: str, image, *, trained: TrainedRun | None = None,
               key=None, dpi: int = DPI) -> list[str]:
  """Writes every picture as a PNG and the markdown page that shows them.

  Args:
    out_dir: folder for the PNGs (created if missing).
    page: path of the markdown file; its image links are relative to it.
    image: the grayscale example image ``(H, W, 1)`` in [0, 1].
    trained: the trained-model pictures' inputs; None leaves them out.
    key: ``jax.random`` key for the dropout pictures (default ``key(0)``).
    dpi: resolution of the PNGs.

  Returns:
    The paths written, the page last.
  """
  key = jax.random.key(0) if key is None else key
  os.makedirs(out_dir, exist_ok=True)
  sections = _ops_sections(image, key)
  if trained is not None:
    sections += _trained_sections(trained)
  lines = ['# See it: convolution, pooling and dropout in pictures', '',
           '<!-- Generated by `python -m experiments.visualize`; do not edit by hand. -->',
           '', 'Every number in these pictures is computed by `cnn_jax.ops` (or by the '
           'model\'s layers, which call them); the functions are in `cnn_jax.viz` and '
           'return the figure with the numbers they drew.', '']
  written = []
  for stem, title, plot, text in sections:
    path = os.path.join(out_dir, f'{stem}.png')
    plot.figure.savefig(path, dpi=dpi)
    written.append(path)
    link = os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(page)))
    lines += [f'## {title}', '', f'![{title}]({link})', '', text, '']
  if trained is None:
    lines += ['*The trained-model pictures (filters, feature maps, confusion matrix, '
              'worst-classified images) need `--workdir`.*', '']
  with open(page, 'w') as f:
    f.write('\n'.join(lines))
  written.append(page)
  return written
