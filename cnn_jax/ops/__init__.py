"""Pure functional ops on arrays: convolution, pooling, dropout and shape arithmetic.

``jnp``/``lax`` only, no Flax and no hidden state: randomness comes in as an explicit
key. Every op is jit-compatible, works with or without a leading batch axis, and
``jax.vmap`` over a batch gives the same result as the batched call.
"""

from cnn_jax.ops.conv import conv, conv1d, conv2d, convolve1d, convolve2d
from cnn_jax.ops.dropout import dropout
from cnn_jax.ops.pool import avg_pool, global_avg_pool, global_max_pool, max_pool
from cnn_jax.ops.shapes import (LayerGeometry, ReceptiveField, output_size, receptive_field,
                                resolve_padding)

__all__ = [
    'conv', 'conv1d', 'conv2d', 'convolve1d', 'convolve2d', 'dropout', 'avg_pool', 'max_pool',
    'global_avg_pool', 'global_max_pool', 'LayerGeometry', 'ReceptiveField',
    'output_size', 'receptive_field', 'resolve_padding',
]
