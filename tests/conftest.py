"""Shared pytest configuration for the op tests.

Reference implementations live in ``tests/references.py`` (plain functions); this
file only sets process-wide options.
"""

import jax

# The ops are tested in float32, the dtype models train in; the references compute in
# float64 numpy, so comparisons use float32 tolerances.
jax.config.update('jax_enable_x64', False)
