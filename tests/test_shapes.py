"""Tests for cnn_jax.ops.shapes: output_size, resolve_padding, receptive_field."""

import itertools
import math
import re

import pytest

from cnn_jax.ops import LayerGeometry, output_size, receptive_field, resolve_padding
from references import effective_kernel, same_padding_tf

# Small exhaustive grid: input size, kernel, stride, dilation.
GRID = list(itertools.product(range(1, 10), range(1, 5), range(1, 4), range(1, 3)))


def _formula(n, k, s, d, lo, hi):
  """out = floor((n + lo + hi - k_eff) / s) + 1, in real arithmetic."""
  return math.floor((n + lo + hi - effective_kernel(k, d)) / s) + 1


def _pads(padding, k_eff):
  """(lo, hi) of a non-SAME padding from the mode definitions."""
  if isinstance(padding, int):
    return padding, padding
  if isinstance(padding, tuple):
    return padding
  return {'VALID': (0, 0), 'FULL': (k_eff - 1, k_eff - 1), 'CAUSAL': (k_eff - 1, 0)}[padding]


@pytest.mark.parametrize('padding', ['VALID', 'FULL', 'CAUSAL', 0, 1, 2, (0, 2), (3, 1)])
def test_output_size_formula(padding):
  for n, k, s, d in GRID:
    lo, hi = _pads(padding, effective_kernel(k, d))
    assert output_size(n, k, s, padding, d) == _formula(n, k, s, d, lo, hi), (n, k, s, d)


def test_output_size_same_is_ceil_of_input_over_stride():
  for n, k, s, d in GRID:
    assert output_size(n, k, s, 'SAME', d) == math.ceil(n / s), (n, k, s, d)


def test_output_size_examples():
  assert output_size(32, 5) == 28  # LeNet C1
  assert output_size(28, 2, 2) == 14  # LeNet S2
  assert output_size(224, 7, 2, 3) == 112  # ResNet stem
  assert output_size(224, 3, 1, 'SAME', 2) == 224
  assert output_size(10, 3, 1, 'VALID', 2) == 6  # dilation 2: k_eff = 5
  assert output_size(3, 5) == -1  # does not fit: allowed here, rejected by the ops


@pytest.mark.parametrize('in_size,kernel,stride,expected', [
    (5, 2, 2, (0, 1)),
    (4, 3, 1, (1, 1)),
    (6, 4, 1, (1, 2)),
    (7, 3, 2, (1, 1)),
    (8, 3, 2, (0, 1)),
    (4, 1, 2, (0, 0)),
    (3, 5, 1, (2, 2)),
])
def test_resolve_padding_same_puts_the_extra_element_at_the_end(in_size, kernel, stride,
                                                                expected):
  assert resolve_padding('SAME', (in_size,), (kernel,), (stride,)) == (expected,)


def test_resolve_padding_same_matches_tf_formula_on_a_grid():
  for n, k, s, d in GRID:
    assert resolve_padding('SAME', (n,), (k,), (s,), (d,)) == (same_padding_tf(n, k, s, d),)


def test_resolve_padding_same_per_dimension_and_case_insensitive():
  got = resolve_padding('same', (5, 4), (2, 3), (2, 1), (1, 2))
  assert got == (same_padding_tf(5, 2, 2), same_padding_tf(4, 3, 1, 2))
  assert got == ((0, 1), (2, 2))


@pytest.mark.parametrize('padding,ndim,expected', [
    ('VALID', 2, ((0, 0), (0, 0))),
    ('FULL', 2, ((2, 2), (4, 4))),  # k_eff - 1 with kernels 3 and 3-dilated-2
    ('CAUSAL', 1, ((2, 0),)),
    (1, 2, ((1, 1), (1, 1))),
    ([(1, 2), 3], 2, ((1, 2), (3, 3))),
    ((1, 2), 1, ((1, 2),)),  # flat (lo, hi) pair in 1-D
    ([2], 1, ((2, 2),)),
])
def test_resolve_padding_forms(padding, ndim, expected):
  dilations = (1, 2)[:ndim]
  assert resolve_padding(padding, (6,) * ndim, (3,) * ndim, (1,) * ndim, dilations) == expected


@pytest.mark.parametrize('padding,ndim,fragment', [
    ('HALF', 1, "unknown padding='HALF'"),
    ('CAUSAL', 2, "padding='CAUSAL' is defined for 1-D inputs only"),
    (-1, 2, 'negative'),
    ([(1, -2), 0], 2, 'negative'),
    ([1, 2, 3], 2, 'has 3 entries'),
    ([(1, 2, 3), 0], 2, 'must be an int or a (lo, hi) pair'),
    ([1.5, 0], 2, 'must be an int or a (lo, hi) pair'),
])
def test_resolve_padding_rejects_bad_padding(padding, ndim, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    resolve_padding(padding, (6,) * ndim, (3,) * ndim, (1,) * ndim)


# ------------------------------------------------------------- receptive fields

LENET = [
    LayerGeometry(5, 1, name='C1'),
    LayerGeometry(2, 2, name='S2'),
    LayerGeometry(5, 1, name='C3'),
    LayerGeometry(2, 2, name='S4'),
    LayerGeometry(5, 1, name='C5'),
]


def test_receptive_field_lenet5():
  fields = receptive_field(LENET, input_size=32)
  assert [f.name for f in fields] == ['C1', 'S2', 'C3', 'S4', 'C5']
  assert [f.size for f in fields] == [5, 6, 14, 16, 32]
  assert [f.jump for f in fields] == [1, 2, 2, 4, 4]
  assert [f.output_size for f in fields] == [28, 14, 10, 5, 1]
  # Centre of the first unit's field (pixel i spans [i, i+1)): C1's first unit sees
  # pixels 0..4, centre 2.5; C5's single unit sees all 32 pixels, centre 16.
  assert [f.start for f in fields] == [2.5, 3.0, 7.0, 8.0, 16.0]


def test_receptive_field_without_input_size_has_no_output_sizes():
  fields = receptive_field([(5, 1), (2, 2)])  # plain tuples are accepted too
  assert [(f.name, f.size, f.jump, f.output_size) for f in fields] == [
      ('layer0', 5, 1, None), ('layer1', 6, 2, None)]


@pytest.mark.parametrize('n', [1, 2, 3, 5, 8])
def test_stack_of_3x3_convs_grows_by_two(n):
  fields = receptive_field([LayerGeometry(3)] * n)
  assert [f.size for f in fields] == [2 * i + 1 for i in range(1, n + 1)]


def test_jumps_multiply_with_strides():
  fields = receptive_field([LayerGeometry(3, 2), LayerGeometry(3, 3), LayerGeometry(1, 2)])
  assert [f.jump for f in fields] == [2, 6, 12]
  # size_out = size_in + (k - 1) * jump_in: 3, 3 + 2*2, 7 + 0.
  assert [f.size for f in fields] == [3, 7, 7]


def test_dilated_3x3_conv_sees_five_positions():
  (field,) = receptive_field([LayerGeometry(3, dilation=2)], input_size=9)
  assert (field.size, field.jump, field.output_size) == (5, 1, 5)


def test_same_padding_keeps_fields_centred():
  fields = receptive_field([LayerGeometry(3, 1, 'SAME')] * 2, input_size=8)
  assert [(f.size, f.start, f.output_size) for f in fields] == [(3, 0.5, 8), (5, 0.5, 8)]


def test_same_padding_without_input_size_raises():
  with pytest.raises(ValueError, match=r"conv2: padding='SAME'.*input_size"):
    receptive_field([LayerGeometry(3, name='conv1'), LayerGeometry(3, 1, 'SAME', name='conv2')])


def test_too_small_input_raises_naming_the_layer():
  layers = [LayerGeometry(5, name='c1'), LayerGeometry(2, 2, name='s2'),
            LayerGeometry(5, name='c3')]
  # 12 -> 8 -> 4, then a 5-wide kernel on 4 positions: 4 - 5 + 1 = 0 outputs.
  with pytest.raises(ValueError, match=r'c3: the input is too small.*output size would be 0'):
    receptive_field(layers, input_size=12)


@pytest.mark.parametrize('layer,fragment', [
    (LayerGeometry(3, 0, name='pool'), 'pool: stride'),
    (LayerGeometry(0, 1, name='conv'), 'conv: kernel'),
    (LayerGeometry(3, 1, dilation=0, name='atrous'), 'atrous: dilation'),
    (LayerGeometry(3, 1, padding='BOGUS', name='conv'), "unknown padding='BOGUS'"),
])
def test_bad_layer_raises(layer, fragment):
  with pytest.raises(ValueError, match=re.escape(fragment)):
    receptive_field([layer], input_size=10)


@pytest.mark.parametrize('args,name', [
    ((5, 3, 0), 'stride'), ((5, 0), 'kernel'), ((5, 3, 1, 'SAME', 0), 'dilation'),
    ((-1, 3), 'size')])
def test_output_size_rejects_bad_arguments(args, name):
  with pytest.raises(ValueError, match=name):
    output_size(*args)
