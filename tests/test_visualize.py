"""Tests of cnn_jax.viz: figure sizes, and the plotted numbers against the ops and hand
values. Tiny synthetic arrays only; no dataset, no display (figures are built without
pyplot)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax import models, ops, viz
from cnn_jax.viz.common import WIDTH

RNG = np.random.default_rng(0)
IMAGE = RNG.random((8, 8, 1)).astype(np.float32)


def _size(plot, height):
  np.testing.assert_allclose(plot.figure.get_size_inches(), (WIDTH, height))


def _images(plot):
  """The AxesImages of the figure's panels (not of its colour bars)."""
  return [im for ax in plot.figure.axes if ax.get_label() != '<colorbar>' for im in ax.images]


def _colorbars(plot):
  return [ax.get_ylabel() for ax in plot.figure.axes if ax.get_label() == '<colorbar>']


def test_weighted_sum_is_conv1d():
  plot = viz.conv1d_weighted_sum([1, 3, 2, 0, -1], [1, 0, -1], position=1)
  _size(plot, 4.5)
  # y[i] = x[i] - x[i + 2] by hand.
  np.testing.assert_allclose(plot.data['output'], [1 - 2, 3 - 0, 2 + 1])


def test_edge_filter_peaks_at_the_step():
  plot = viz.edge_filter_1d([1, 1, 1, 1, 0, 0, 0])
  _size(plot, 3.5)
  np.testing.assert_allclose(plot.data['output'], [0, 0, 0, 1, 0, 0])
  assert plot.data['edge_index'] == 3


def test_stride_and_padding_lengths():
  signal, kernel = np.arange(8.0), np.ones(3)
  plot = viz.stride_and_padding_1d(signal, kernel)
  _size(plot, 1.6 * 4 + 0.4)
  # floor((n + 2p - k) / s) + 1 by hand.
  assert plot.data['lengths'] == {(0, 1): 6, (0, 2): 3, (1, 1): 8, (1, 2): 4}
  for ax in plot.figure.axes:
    # Outputs are discrete: markers only, no line joining them; every panel has a legend.
    assert all(line.get_linestyle() == 'None' for line in ax.lines)
    assert ax.get_legend() is not None
  assert 'zero padding' in [t.get_text() for t in plot.figure.axes[2].get_legend().texts]
  for (p, s), out in plot.data['outputs'].items():
    assert len(out) == plot.data['lengths'][(p, s)]
    np.testing.assert_allclose(out, ops.conv1d(signal[:, None], kernel[:, None, None],
                                               stride=s, padding=p)[:, 0])


def test_correlation_vs_convolution_hand_values():
  plot = viz.correlation_vs_convolution([1, 2, 3], [1, 2, 3])
  _size(plot, 2.6)
  np.testing.assert_allclose(plot.data['convolution'], [1, 4, 10, 12, 9])
  np.testing.assert_allclose(plot.data['correlation'], [3, 8, 14, 8, 3])
  # An impulse: convolution copies an asymmetric kernel, correlation mirrors it.
  plot = viz.correlation_vs_convolution([0, 1, 0], [1, 2, 3])
  np.testing.assert_allclose(plot.data['convolution'], [0, 1, 2, 3, 0])
  np.testing.assert_allclose(plot.data['correlation'], [0, 3, 2, 1, 0])
  assert 'flipped to [3.0, 2.0, 1.0]' in plot.figure.axes[2].get_title()


def test_edge_filters_2d_equal_conv2d():
  kernel = np.array([[1, 0, -1]] * 3, np.float32)
  plot = viz.edge_filters_2d(IMAGE, {'v': kernel, 'h': kernel.T})
  _size(plot, 4.6)
  for name, k in (('v', kernel), ('h', kernel.T)):
    np.testing.assert_allclose(
        plot.data['outputs'][name],
        ops.conv2d(IMAGE, k[:, :, None, None], padding='SAME')[..., 0], rtol=1e-6)
  # Responses: one diverging scale centred at 0, with a colour bar; kernels named.
  responses = _images(plot)[-2:]
  lim = max(np.abs(o).max() for o in plot.data['outputs'].values())
  for im in responses:
    assert im.get_cmap().name == 'RdBu_r'
    np.testing.assert_allclose(im.get_clim(), (-lim, lim), rtol=1e-6)
  assert len(_colorbars(plot)) == 1
  assert [ax.get_title() for ax in plot.figure.axes[1:3]] == ['kernel: v', 'kernel: h']


def test_rgb_kernel_sums_the_channels():
  image = RNG.random((6, 6, 3)).astype(np.float32)
  kernel = RNG.standard_normal((3, 3, 3)).astype(np.float32)
  plot = viz.rgb_convolution(image, kernel)
  _size(plot, 9.5)
  expected = ops.conv2d(image, kernel[..., None], padding='SAME')[..., 0]
  np.testing.assert_allclose(plot.data['output'], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(plot.data['contributions'].sum(0), expected, rtol=1e-5,
                             atol=1e-5)


def test_padding_stride_2d_shapes():
  plot = viz.padding_stride_2d(IMAGE, np.ones((3, 3), np.float32), kernel_name='box')
  assert len(_images(plot)) == 5 and _colorbars(plot) == ['output, before any ReLU']
  assert 'box 3x3' in plot.figure.get_suptitle()
  assert len({im.get_clim() for im in _images(plot)[1:]}) == 1  # one scale
  shapes = {k: v.shape for k, v in plot.data['outputs'].items()}
  assert shapes == {('VALID', 1): (6, 6), ('SAME', 1): (8, 8), ('VALID', 2): (3, 3),
                    ('SAME', 2): (4, 4)}


def test_pooling_grid_keeps_a_quarter():
  grid = np.arange(16, dtype=np.float32).reshape(4, 4)
  plot = viz.pooling_grid(grid)
  _size(plot, 3.2)
  np.testing.assert_allclose(plot.data['max'], [[5, 7], [13, 15]])
  np.testing.assert_allclose(plot.data['avg'], [[2.5, 4.5], [10.5, 12.5]])
  assert plot.data['kept_fraction'] == 0.25
  assert plot.data['kept'].sum() == 4
  # One colour scale across the three panels: the grid's range.
  assert {im.get_clim() for im in _images(plot)} == {(0.0, 15.0)}
  assert _colorbars(plot) == ['value']


def test_pooling_image_equals_ops():
  plot = viz.pooling_image(IMAGE)
  np.testing.assert_allclose(plot.data['max'], ops.max_pool(IMAGE, (2, 2))[..., 0])
  np.testing.assert_allclose(plot.data['avg'], ops.avg_pool(IMAGE, (2, 2))[..., 0],
                             rtol=1e-6)


def test_dropout_masks_keep_about_one_minus_rate():
  key = jax.random.key(0)
  plot = viz.dropout_masks((64, 64), (0.25, 0.75), key)
  _size(plot, 2.8)
  for i, rate in enumerate((0.25, 0.75)):
    out = plot.data['outputs'][rate]
    np.testing.assert_allclose(out, ops.dropout(jnp.ones((64, 64)), rate,
                                                jax.random.fold_in(key, i)))
    assert abs(plot.data['kept_fraction'][rate] - (1 - rate)) < 0.03
    np.testing.assert_allclose(np.unique(out), [0, 1 / (1 - rate)], rtol=1e-6)
  assert len(_colorbars(plot)) == 1
  np.testing.assert_allclose([im.get_clim() for im in _images(plot)], [(0, 4), (0, 4)])


def test_spatial_dropout_drops_whole_channels():
  features = RNG.random((4, 4, 6)).astype(np.float32) + 0.1
  plot = viz.spatial_dropout(features, 0.5, jax.random.key(1))
  zero = np.all(plot.data['spatial'] == 0, axis=(0, 1))
  nonzero = np.all(plot.data['spatial'] != 0, axis=(0, 1))
  assert np.all(zero | nonzero)
  np.testing.assert_array_equal(~zero, plot.data['kept_channels'])
  assert len(_colorbars(plot)) == 1


def test_receptive_field_growth_lenet5():
  plot = viz.receptive_field_growth(models.create('lenet5'), np.zeros((28, 28, 1)))
  # The same stack by hand through ops.receptive_field (C1 pads 28 to 32).
  layers = [(5, 1, 2, 1, 'c1'), (2, 2, 0, 1, 's2'), (5, 1, 0, 1, 'c3'),
            (2, 2, 0, 1, 's4'), (5, 1, 0, 1, 'c5')]
  expected = [(r.name, r.size, r.jump) for r in ops.receptive_field(layers, 28)]
  assert plot.data['layers'] == expected
  assert [s for _, s, _ in expected] == [5, 6, 14, 16, 32]
  # All panels on one scale, and the caption states the whole rule.
  assert len({(ax.get_xlim(), ax.get_ylim()) for ax in plot.figure.axes}) == 1
  assert 'a 2x2 pool adds (2 - 1) x jump and doubles the jump' in plot.figure.get_suptitle()


@pytest.fixture(scope='module')
def tiny_cnn():
  model = models.create('simple_cnn', features=(3, 4), hidden=(), num_classes=3)
  images = jax.random.uniform(jax.random.key(2), (5, 8, 8, 1))
  variables = model.init(jax.random.key(3), images)
  return model, variables, images


def test_first_layer_filters_are_the_kernel(tiny_cnn):
  _, variables, _ = tiny_cnn
  plot = viz.first_layer_filters(variables)
  assert plot.data['layer'] == 'conv0'
  np.testing.assert_array_equal(plot.data['kernel'], variables['params']['conv0']['kernel'])
  assert len(_images(plot)) == 3 and _colorbars(plot) == ['weight']
  lim = np.abs(plot.data['kernel']).max()
  assert {im.get_clim() for im in _images(plot)} == {(-lim, lim)}


def test_feature_maps_equal_the_ops(tiny_cnn):
  model, variables, images = tiny_cnn
  plot = viz.feature_maps(model, variables, images[0], max_channels=4, label='Coat')
  _size(plot, 1.25 * 5 + 0.3)
  assert 'Coat' in plot.figure.get_suptitle()
  assert _colorbars(plot) == ['before ReLU', 'value', 'before ReLU', 'value']
  conv_images = _images(plot)[1:4]  # conv0's channels: diverging, centred at zero
  assert all(im.get_cmap().name == 'RdBu_r' for im in conv_images)
  assert all(im.get_clim()[0] == -im.get_clim()[1] for im in conv_images)
  maps = plot.data['maps']
  assert list(maps) == ['conv0', 'pool0', 'conv1', 'pool1']
  p = variables['params']
  conv0 = ops.conv2d(images[0], p['conv0']['kernel'], padding='SAME') + p['conv0']['bias']
  np.testing.assert_allclose(maps['conv0'], conv0, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(maps['pool0'], ops.max_pool(jax.nn.relu(conv0[None]), 2)[0],
                             rtol=1e-5, atol=1e-6)
  assert maps['pool1'].shape == (2, 2, 4)


def test_confusion_and_worst(tiny_cnn):
  model, variables, images = tiny_cnn
  logits = viz.predict(model, variables, images, batch_size=2)
  np.testing.assert_allclose(logits, model.apply(variables, images), rtol=1e-5, atol=1e-6)
  plot = viz.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], ['a', 'b', 'c'])
  _size(plot, 7.5)
  np.testing.assert_array_equal(plot.data['matrix'], [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
  assert plot.data['accuracy'] == 0.6
  logits = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5], [0, 5, 0], [1, 0, 0]], np.float32)
  plot = viz.worst_classified(images, [0, 1, 0, 1, 2], logits, ['a', 'b', 'c'], n=2)
  # Image 2 (true 0, logit 0 against 5) is worse than image 4 (true 2, logit 0 against 1).
  np.testing.assert_array_equal(plot.data['indices'], [2, 4])
  np.testing.assert_array_equal(plot.data['predicted'], [2, 0])


def test_load_workdir_without_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match='not a training workdir'):
    viz.load_workdir(str(tmp_path))


def test_write_page(tmp_path):
  paths = viz.write_page(str(tmp_path / 'figures'), str(tmp_path / 'page.md'),
                         np.tile(IMAGE, (4, 4, 1)), dpi=30)
  page = (tmp_path / 'page.md').read_text()
  assert len(paths) == 13
  assert '](figures/pooling_grid.png)' in page and '[1, 4, 10, 12, 9]' in page
