"""The 1-D CNN for MNIST-1D (sequences of 40 values, 1 channel).

The reference design is ``ConvBase`` of Greydanus 2020, "Scaling down deep learning"
(github.com/greydanus/mnist1d): three ReLU convolutions with 25 channels, kernels 5, 3,
3, stride 2 and padding 1 each, then one linear layer on the flattened features. The
lengths go 40 -> 19 -> 10 -> 5, so the linear layer sees 5 * 25 = 125 features, and
the parameters number 5,210 (conv 150 + 1,900 + 1,900, linear 1,260), as ConvBase
prints at construction.

It is :class:`~cnn_jax.models.simple_cnn.SimpleCNN` with these settings, so every
SimpleCNN field is an ablation knob here too: ``strides`` against ``pool`` (stride-1
convs with 2-wide max pooling instead of strided convs), ``dropout_rate``, widths
(``features``) and depth (their number).
"""

import functools

from cnn_jax.models.simple_cnn import SimpleCNN

CNN1D = functools.partial(SimpleCNN, num_classes=10, features=(25, 25, 25),
                          kernel_size=(5, 3, 3), strides=2, padding=1, pool='none',
                          dropout_rate=0.0, hidden=(), activation='relu')
