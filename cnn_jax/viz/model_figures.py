"""Pictures of a model: receptive fields, learned filters, feature maps, and its test
predictions (confusion matrix, worst-classified images).

The functions take a Flax module and its variables, so they work on a freshly
initialised model as well as on one restored from a workdir by :func:`load_workdir`.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from matplotlib.patches import Rectangle

from cnn_jax import layers, summary
from cnn_jax.train.workdir import restore as restore_workdir
from cnn_jax.viz.common import Plot, add_colorbar, new_figure, show_image, write_numbers

_MAPPED = (layers.Conv, layers.MaxPool, layers.AvgPool)


class Workdir(NamedTuple):
  """A trained model restored from a workdir.

  Attributes:
    model: the Flax module (from the workdir's config).
    variables: ``{'params': ...}`` (the EMA parameters when the run kept them), plus
      ``'batch_stats'`` for models with BatchNorm.
    config: the run's ConfigDict.
    step: the restored training step.
  """
  model: nn.Module
  variables: dict
  config: ml_collections.ConfigDict
  step: int


def load_workdir(workdir: str, which: str = 'latest') -> Workdir:
  """Restores the model of a training workdir, for the pictures (read-only).

  Args:
    workdir: a run directory written by ``experiments.train``.
    which: ``'latest'`` or a step number.

  Returns:
    A :class:`Workdir`.

  Raises:
    FileNotFoundError: if the directory is not a workdir or holds no checkpoint.
    cnn_jax.train.checkpoint.CheckpointError: if the checkpoint cannot be restored.
  """
  trainer, step, state = restore_workdir(workdir, which)
  variables = {'params': state.ema_params if state.ema_params is not None else state.params}
  if state.batch_stats is not None:
    variables['batch_stats'] = state.batch_stats
  return Workdir(trainer.model, variables, trainer.config, step)


def receptive_field_growth(model: nn.Module, image) -> Plot:
  """The receptive field of each conv/pool layer drawn on the input.

  Sizes and jumps come from :func:`cnn_jax.summary.summarize` (which uses
  :func:`cnn_jax.ops.receptive_field`). Each square is the field of the output unit at
  the centre of its map; the dashed one is its neighbour's, one jump further.

  Args:
    model: a Flax module (e.g. ``models.create('lenet5')``).
    image: one input ``(H, W, C)``.

  Returns:
    Plot with ``data = {'layers': [(name, size, jump), ...]}``, sizes and jumps along
    the height axis (the models here are square).
  """
  image = np.asarray(image, np.float32)
  rows = [r for r in summary.summarize(model, image.shape).rows
          if r.kind in ('Conv', 'MaxPool', 'AvgPool') and isinstance(r.rf_size, tuple)]
  found = [(r.name, r.rf_size[0], r.rf_jump[0]) for r in rows]
  h, w = image.shape[:2]
  fig, axes = new_figure(1, len(found), 2.9)
  # One scale for every panel: wide enough for the largest field and its neighbour.
  margin = max(0.0, max((s + j - min(h, w)) / 2 + 1 for _, s, j in found))
  for ax, (name, size, jump), row in zip(axes[0], found, rows):
    show_image(ax, image, f'{name}: field {size}, jump {jump}')
    # The field may be larger than the input (it then covers zero padding).
    centre = (h - 1) / 2, (w - 1) / 2
    corner = (centre[1] - size / 2, centre[0] - size / 2)
    ax.add_patch(Rectangle(corner, size, size, fill=False, ec='tab:red', lw=2))
    if row.output_shape[1] > 1:  # a 1x1 map has no neighbour
      ax.add_patch(Rectangle((corner[0] + jump, corner[1]), size, size, fill=False,
                             ec='tab:orange', lw=1, ls='--'))
    ax.set_xlim(-0.5 - margin, w - 0.5 + margin)
    ax.set_ylim(h - 0.5 + margin, -0.5 - margin)
  axes[0, 0].legend(handles=[Rectangle((0, 0), 1, 1, fill=False, ec='tab:red', lw=2,
                                       label='field of the centre unit'),
                             Rectangle((0, 0), 1, 1, fill=False, ec='tab:orange', ls='--',
                                       label='its neighbour, one jump on')],
                    fontsize=6, loc='lower left', bbox_to_anchor=(0, -0.32))
  fig.suptitle('Receptive field: a k x k conv adds (k - 1) x jump; a 2x2 pool adds '
               '(2 - 1) x jump and doubles the jump (all panels at one scale)', fontsize=9)
  return Plot(fig, {'layers': found})


def first_layer_filters(variables: dict, layer: str | None = None) -> Plot:
  """The kernels of a convolution layer, one small image per output channel.

  Args:
    variables: the model's variables (``{'params': ...}``) or its params.
    layer: the conv's name in the params; None takes the first 2-D conv kernel.

  Returns:
    Plot with ``data = {'layer': name, 'kernel': (KH, KW, C_in, C_out)}``. One input
    channel is drawn in gray, three as RGB (each filter stretched to [0, 1]), more as
    their mean over the input channels.
  """
  params = variables.get('params', variables)
  if layer is None:
    layer = next(name for name, p in params.items()
                 if isinstance(p, dict) and 'kernel' in p and p['kernel'].ndim == 4)
  kernel = np.asarray(jax.device_get(params[layer]['kernel']), np.float32)
  c_in, c_out = kernel.shape[2:]
  cols = min(c_out, 8)
  rows = -(-c_out // cols)
  fig, axes = new_figure(rows, cols, 1.2 * rows + 0.5)
  shown = kernel.mean(-2)  # (KH, KW, C_out): the mean over the input channels
  lim = float(np.abs(shown).max())
  im = None
  for i, ax in enumerate(axes.flat):
    if i >= c_out:
      ax.axis('off')
      continue
    if c_in == 3:
      k = kernel[..., i]
      show_image(ax, (k - k.min()) / (np.ptp(k) or 1.0), f'{i}')
    else:
      im = show_image(ax, shown[..., i], f'{i}', signed=True, limits=(-lim, lim))
  if im is not None:  # RGB filters are drawn as colours, not on a scale
    add_colorbar(im, list(axes.flat), 'weight' if c_in == 1 else 'mean weight over inputs')
  fig.suptitle(f'{layer}: {c_out} filters of {kernel.shape[0]}x{kernel.shape[1]}x{c_in} '
               f'(red +, blue -, one scale)', fontsize=10)
  return Plot(fig, {'layer': layer, 'kernel': kernel})


def feature_maps(model: nn.Module, variables: dict, image, max_channels: int = 8,
                 label: str = '') -> Plot:
  """The outputs of every conv and pool layer for one input, in evaluation mode.

  A conv's map is its output before the activation, drawn in a diverging map centred at
  zero; a pool's is after it (the pool takes the activated conv output, >= 0 after a
  ReLU). Each row has one colour scale and its colour bar.

  Args:
    model: the Flax module.
    variables: its variables.
    image: one model input ``(H, W, C)`` (already through ``data.augment(...,
      train=False)``).
    max_channels: channels drawn per layer (the first ones).
    label: what the image is (its class), for the title.

  Returns:
    Plot with ``data = {'maps': {layer name: (H', W', C') array}}`` (all channels).
  """
  image = jnp.asarray(image, jnp.float32)
  _, state = model.apply(
      variables, image[None], train=False, mutable=['intermediates'],
      capture_intermediates=lambda m, method: method == '__call__' and isinstance(m, _MAPPED))
  maps = {'/'.join(path): np.asarray(value[0][0])
          for path, value in _leaves(state['intermediates'])}
  fig, axes = new_figure(len(maps) + 1, max_channels, 1.25 * (len(maps) + 1) + 0.3)
  show_image(axes[0, 0], image, f'input: {label}' if label else 'input')
  for ax in axes[0, 1:]:
    ax.axis('off')
  for row, (name, m) in enumerate(maps.items(), start=1):
    signed = bool((m < 0).any())  # conv outputs before the ReLU
    shown = m[..., :max_channels]
    lim = (-float(np.abs(shown).max()), float(np.abs(shown).max())) if signed else (
        0.0, float(shown.max()) or 1.0)
    for ch, ax in enumerate(axes[row]):
      if ch >= m.shape[-1]:
        ax.axis('off')
        continue
      im = show_image(ax, m[..., ch], f'ch {ch}', cmap='magma', signed=signed, limits=lim)
    add_colorbar(im, list(axes[row]), 'before ReLU' if signed else 'value')
    axes[row, 0].set_ylabel(f'{name}\n{m.shape[0]}x{m.shape[1]}x{m.shape[2]}', fontsize=8)
  if label:
    fig.suptitle(f'Feature maps of one {label} image (first {max_channels} channels per '
                 'layer)', fontsize=10)
  return Plot(fig, {'maps': maps})


def _leaves(tree, path=()):
  """``(path, captured outputs)`` of a Flax ``intermediates`` collection, in call order."""
  for key, value in tree.items():
    if key == '__call__':
      yield path, value
    else:
      yield from _leaves(value, path + (key,))


def predict(model: nn.Module, variables: dict, images, batch_size: int = 1000) -> np.ndarray:
  """Logits of a model for model inputs, in evaluation mode, batch by batch.

  Args:
    model: the Flax module.
    variables: its variables.
    images: ``(N, H, W, C)`` model inputs.
    batch_size: images per call.

  Returns:
    float32 ``(N, num_classes)``.
  """
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  return np.concatenate([np.asarray(apply(variables, images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])


def confusion_matrix(labels, predictions, class_names: Sequence[str]) -> Plot:
  """Counts of (true class, predicted class) pairs.

  Args:
    labels: int true labels ``(N,)``.
    predictions: int predicted labels ``(N,)``.
    class_names: one name per class.

  Returns:
    Plot with ``data = {'matrix': (K, K) int counts, rows true, columns predicted,
    'accuracy'}``.
  """
  k = len(class_names)
  labels, predictions = np.asarray(labels), np.asarray(predictions)
  matrix = np.zeros((k, k), np.int64)
  np.add.at(matrix, (labels, predictions), 1)
  accuracy = float(np.trace(matrix) / max(len(labels), 1))
  fig, axes = new_figure(1, 1, 7.5)
  ax = axes[0, 0]
  add_colorbar(ax.imshow(matrix, cmap='Blues'), [ax], 'test images')
  write_numbers(ax, matrix, fmt='{:d}')
  ax.set_xticks(range(k), class_names, rotation=45, ha='right', fontsize=8)
  ax.set_yticks(range(k), class_names, fontsize=8)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(f'{len(labels)} test images, accuracy {accuracy:.2%}', fontsize=10)
  return Plot(fig, {'matrix': matrix, 'accuracy': accuracy})


def worst_classified(images, labels, logits, class_names: Sequence[str], n: int = 8) -> Plot:
  """The ``n`` images whose true class got the lowest probability.

  Args:
    images: ``(N, H, W, C)`` images to draw (uint8 or in [0, 1]).
    labels: int true labels ``(N,)``.
    logits: ``(N, K)`` model outputs.
    class_names: one name per class.
    n: how many to draw.

  Returns:
    Plot with ``data = {'indices', 'true', 'predicted', 'true_probability'}``, worst
    first.
  """
  labels = np.asarray(labels)
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1))
  p_true = probs[np.arange(len(labels)), labels]
  order = np.argsort(p_true, kind='stable')[:n]
  predicted = probs.argmax(-1)
  images = np.asarray(images)
  scale = 255.0 if images.dtype == np.uint8 else 1.0
  cols = min(n, 4)
  fig, axes = new_figure(-(-n // cols), cols, 2.5 * -(-n // cols))
  for ax, i in zip(axes.flat, order):
    show_image(ax, images[i] / scale, f'#{i}: {class_names[labels[i]]}\n'
               f'-> {class_names[predicted[i]]} (p={p_true[i]:.0e})')
  return Plot(fig, {'indices': order, 'true': labels[order], 'predicted': predicted[order],
                    'true_probability': p_true[order]})
