"""Pictures of the ops and of trained models, drawn with matplotlib.

Every picture function takes arrays (or a model and its variables), computes what it
shows with :mod:`cnn_jax.ops` (directly, or through the model's layers, which call
them), and returns a :class:`Plot`: the ``matplotlib.figure.Figure`` and ``data``, a
dict of the numbers it drew, so tests can check them against the ops. Figures are built
without ``pyplot``, so nothing needs a display and nothing is kept in global state.

  python -m experiments.visualize --out docs/figures [--workdir runs/fashion_mnist_cnn]

writes every picture and the page ``docs/visualize.md`` (see :mod:`cnn_jax.viz.page`).
"""

from cnn_jax.viz.common import Plot
from cnn_jax.viz.model_figures import (Workdir, confusion_matrix, feature_maps,
                                       first_layer_filters, load_workdir, predict,
                                       receptive_field_growth, worst_classified)
from cnn_jax.viz.ops_figures import (conv1d_weighted_sum, correlation_vs_convolution,
                                     dropout_masks, edge_filter_1d, edge_filters_2d,
                                     padding_stride_2d, pooling_grid, pooling_image,
                                     rgb_convolution, spatial_dropout,
                                     stride_and_padding_1d)
from cnn_jax.viz.page import synthetic_rgb_image, write_page

__all__ = [
    'Plot', 'Workdir', 'confusion_matrix', 'conv1d_weighted_sum',
    'correlation_vs_convolution', 'dropout_masks', 'edge_filter_1d', 'edge_filters_2d',
    'feature_maps', 'first_layer_filters', 'load_workdir', 'padding_stride_2d',
    'pooling_grid', 'pooling_image', 'predict', 'receptive_field_growth', 'rgb_convolution',
    'spatial_dropout', 'stride_and_padding_1d', 'synthetic_rgb_image', 'worst_classified',
    'write_page',
]
