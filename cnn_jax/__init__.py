"""cnn_jax: convolutional networks in JAX/Flax, built from pure functional ops."""

__version__ = '0.1.0'
