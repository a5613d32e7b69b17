"""Per-layer summary of a model: output shape, parameters, FLOPs and receptive field.

  python -m cnn_jax.summary --config experiments/configs/lenet5_fashion_mnist.py
  python -m cnn_jax.summary --model resnet50 --input-shape 224,224,3

Nothing runs on data: the model's ``init`` is traced abstractly (``jax.make_jaxpr``,
the machinery behind ``jax.eval_shape``) on a batch of one, and every call of a
:mod:`cnn_jax.layers` layer (Conv, MaxPool, AvgPool, GlobalAvgPool, GlobalMaxPool,
Dense, BatchNorm, Dropout) becomes one row, named by its module path.

Counting conventions, per example:

* parameters: the layer's ``params`` collection; totals add the BatchNorm statistics
  (``batch_stats``) separately, since they are not trained.
* FLOPs: a multiply-add counts as 2. Conv: ``2 * prod(kernel) * C_in / groups`` per
  output element, Dense: ``2 * C_in`` per output element, plus one per output element
  for a bias. Pooling: one operation per window element and output element (a global
  pool: one per input element). BatchNorm: 2 per element (its inference form is one
  scale and one shift). Dropout: 0 (the identity at inference). Activations, additions
  and concatenations are not layers and are not counted.
* receptive field: ``size`` (input pixels one output unit sees, per spatial axis) and
  ``jump`` (input pixels between adjacent output units), from
  :func:`cnn_jax.ops.shapes.receptive_field` over the conv/pool geometry, the padding
  resolved for the layer's real input size by :func:`cnn_jax.ops.shapes.resolve_padding`.
  ``all`` marks outputs that see the whole input (after a global pool, or a dense
  layer on flattened features).

How the receptive field follows branches: every tensor derived from the input carries
the chain of conv/pool geometries that leads to it. The chains follow the data, not
the order of the calls: each layer's input and output pass through an identity
marker (``lax.optimization_barrier``) while tracing, and the resulting jaxpr is walked
equation by equation. A layer extends its input's chain by its own geometry
(BatchNorm, Dropout and per-position Dense layers pass it on unchanged); any other
operation (activation, residual addition, concatenation) gives its output the
chain with the largest field among its inputs, per axis. So the field at a merge is
the maximum over its inputs, which is exact when the inputs' fields are centred on the
same pixel, as in the Inception blocks and residual shortcuts here (their padding is
symmetric). An operation whose output is no longer laid out ``(N, *spatial, C)``
(a flatten) makes its field ``all``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Var

from cnn_jax import config_utils, layers, models
from cnn_jax.data import catalog
from cnn_jax.ops.shapes import LayerGeometry, normalize_tuple, receptive_field, resolve_padding

_WINDOWED = (layers.Conv, layers.MaxPool, layers.AvgPool)
_GLOBAL_POOLS = (layers.GlobalAvgPool, layers.GlobalMaxPool)
_LAYERS = _WINDOWED + _GLOBAL_POOLS + (layers.Dense, layers.BatchNorm, layers.Dropout)

# The field of an output that sees the whole input.
_ALL = 'all'


class Row(NamedTuple):
  """One layer call.

  Attributes:
    name: module path, e.g. ``'stage1_block0/conv1'``.
    kind: layer class, e.g. ``'Conv'``.
    output_shape: output shape without the batch axis.
    params: number of parameters (the layer's ``params`` collection).
    flops: FLOPs per example, multiply-add = 2.
    rf_size: receptive field size per spatial axis; ``'all'`` for the whole input;
      None where the output does not depend on the input.
    rf_jump: distance between adjacent output units in input pixels, per axis (None
      where ``rf_size`` is not a tuple).
  """
  name: str
  kind: str
  output_shape: tuple[int, ...]
  params: int
  flops: int
  rf_size: tuple[int, ...] | str | None
  rf_jump: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class Summary:
  """Rows and totals of :func:`summarize`.

  Attributes:
    model: the module's class name.
    input_shape: input shape without the batch axis.
    output_shape: output shape without the batch axis.
    rows: one :class:`Row` per layer call, in call order.
    params: all parameters of the model (the ``params`` collection).
    state: all other variables (BatchNorm's ``batch_stats``).
    flops: FLOPs per example, the sum over the rows.
  """
  model: str
  input_shape: tuple[int, ...]
  output_shape: tuple[int, ...]
  rows: list[Row]
  params: int
  state: int
  flops: int

  def table(self) -> str:
    """Formats the summary as a text table with a totals line."""
    header = ('layer', 'type', 'output', 'params', 'FLOPs', 'RF', 'jump')
    lines = [header] + [(r.name, r.kind, dims(r.output_shape), f'{r.params:,}',
                         f'{r.flops:,}', _field(r.rf_size), _field(r.rf_jump))
                        for r in self.rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [f'{self.model} on input {dims(self.input_shape)}']
    for line in lines:
      text.append('  '.join(cell.ljust(w) if i < 3 else cell.rjust(w)
                            for i, (cell, w) in enumerate(zip(line, widths))).rstrip())
    in_rows = sum(r.params for r in self.rows)
    if in_rows != self.params:
      text.append(f'({self.params - in_rows:,} parameters belong to modules that are not '
                  f'cnn_jax layers and have no row)')
    text.append(f'total: {self.params:,} parameters, {self.state:,} batch statistics, '
                f'{self.flops:,} FLOPs ({_si(self.flops)}FLOPs) per example '
                f'(multiply-add = 2), output {dims(self.output_shape)}')
    return '\n'.join(text)


  def markdown(self) -> str:
    """Formats the summary as a markdown table, one row per layer, then a totals row."""
    lines = ['| layer | type | output | params | FLOPs | RF | jump |',
             '|---|---|---|--:|--:|--:|--:|']
    lines += [f'| `{r.name}` | {r.kind} | {dims(r.output_shape)} | {r.params:,} | '
              f'{r.flops:,} | {_field(r.rf_size)} | {_field(r.rf_jump)} |' for r in self.rows]
    lines.append(f'| **total** | | {dims(self.output_shape)} | **{self.params:,}** | '
                 f'**{self.flops:,}** | | |')
    return '\n'.join(lines)


def dims(shape: tuple[int, ...]) -> str:
  """``(7, 7, 64)`` -> ``'7x7x64'``."""
  return 'x'.join(map(str, shape))


def _field(value) -> str:
  """A receptive-field cell: ``(5, 5)`` -> ``'5'``, ``(3, 1)`` -> ``'3x1'``."""
  if value is None:
    return '-'
  if isinstance(value, str):
    return value
  return str(value[0]) if len(set(value)) == 1 else dims(value)


def _si(n: int) -> str:
  """``8202504168`` -> ``'8.2 G'``."""
  for scale, prefix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
    if n >= scale:
      return f'{n / scale:.3g} {prefix}'
  return f'{n} '


def _count(tree) -> int:
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


@dataclasses.dataclass
class _Call:
  """One layer call as traced; the fields of its input and output come from the walk."""
  module: nn.Module
  name: str
  in_shape: tuple[int, ...]
  out_shape: tuple[int, ...]
  params: int
  in_field: tuple | str | None = None
  out_field: tuple | str | None = None


class _Axis(NamedTuple):
  """Receptive field of a tensor along one axis: the geometry chain and its result."""
  chain: tuple[LayerGeometry, ...]
  size: int
  jump: int


def summarize(model: nn.Module, input_shape: Sequence[int], dtype=jnp.float32) -> Summary:
  """Summarises a model layer by layer without running it.

  Args:
    model: a Flax module whose ``init(key, x)`` runs it in evaluation mode (every
      model of :mod:`cnn_jax.models`; auxiliary heads built only at ``init`` are
      included).
    input_shape: one example's shape, e.g. ``(224, 224, 3)`` or ``(40, 1)``.
    dtype: input dtype.

  Returns:
    A :class:`Summary`.

  Raises:
    ValueError: if the input does not fit the model, naming the layer (module path)
      where it stops fitting.
  """
  input_shape = tuple(input_shape)
  calls: list[_Call] = []

  def intercept(next_fun, args, kwargs, context):
    module = context.module
    if context.method_name != '__call__' or not isinstance(module, _LAYERS):
      return next_fun(*args, **kwargs)
    # The markers let the jaxpr walk below see which values enter and leave the layer.
    x = lax.optimization_barrier(args[0])
    y = next_fun(x, *args[1:], **kwargs)
    name = '/'.join(module.path) or type(module).__name__
    calls.append(_Call(module, name, tuple(x.shape), tuple(y.shape),
                       _count(module.variables.get('params', {}))))
    return lax.optimization_barrier(y)

  def init(x):
    return model.init_with_output(jax.random.key(0), x)

  with nn.intercept_methods(intercept):
    closed, (output, variables) = jax.make_jaxpr(init, return_shape=True)(
        jax.ShapeDtypeStruct((1,) + input_shape, dtype))
  _walk(closed.jaxpr, calls, input_shape[:-1])

  rows = []
  for call in calls:
    field = call.out_field
    if isinstance(field, tuple):
      size, jump = tuple(a.size for a in field), tuple(a.jump for a in field)
    else:
      size, jump = field, None
    rows.append(Row(call.name, type(call.module).__name__, call.out_shape[1:], call.params,
                    _flops(call), size or None, jump or None))
  params = _count(variables.get('params', {}))
  state = _count({k: v for k, v in variables.items() if k != 'params'})
  return Summary(type(model).__name__, input_shape, tuple(output.shape[1:]), rows, params, state,
                 sum(r.flops for r in rows))


def _walk(jaxpr, calls: list[_Call], spatial: tuple[int, ...]) -> None:
  """Sets ``in_field``/``out_field`` of every call by following the jaxpr's data flow."""
  nsp = len(spatial)
  fields = {jaxpr.invars[0]: tuple(_Axis((), 1, 1) for _ in spatial)}
  markers = 0
  for eqn in jaxpr.eqns:
    inputs = [fields[v] for v in eqn.invars if isinstance(v, Var) and v in fields]
    if eqn.primitive.name == 'optimization_barrier':
      call = calls[markers // 2]
      if markers % 2 == 0:
        call.in_field = inputs[0] if inputs else None
        out = call.in_field
      else:
        call.out_field = out = _through(call, spatial)
      markers += 1
      fields[eqn.outvars[0]] = out
    elif inputs:
      merged = _merge(inputs)
      for v in eqn.outvars:
        fields[v] = merged if v.aval.ndim == nsp + 2 else _ALL
  if markers != 2 * len(calls):
    raise RuntimeError(f'summarize: found {markers} layer markers for {len(calls)} layer '
                       f'calls; layers inside transformed modules (nn.jit, nn.remat, '
                       f'nn.scan) are not supported')


def _merge(fields: list):
  """Per axis, the largest field among the inputs of an operation."""
  if any(f == _ALL for f in fields):
    return _ALL
  return tuple(max(axes, key=lambda a: a.size) for axes in zip(*fields))


def _through(call: _Call, spatial: tuple[int, ...]):
  """The field of a layer's output given the field of its input."""
  module, field = call.module, call.in_field
  if field is None or field == _ALL:
    return field
  if isinstance(module, _GLOBAL_POOLS):
    return _ALL
  if not isinstance(module, _WINDOWED):
    # BatchNorm and Dropout act per element in evaluation mode, a Dense layer on
    # (N, *spatial, C) per position; on flattened features the field is already 'all'.
    return field
  nsp = len(spatial)
  if isinstance(module, layers.Conv):
    kernel = tuple(module.kernel_size)
    strides = normalize_tuple(module.strides, nsp, 'strides')
    dilation = normalize_tuple(module.dilation, nsp, 'dilation')
  else:
    kernel = normalize_tuple(module.window, nsp, 'window')
    strides = kernel if module.strides is None else normalize_tuple(module.strides, nsp,
                                                                     'strides')
    dilation = (1,) * nsp
  pads = resolve_padding(module.padding, call.in_shape[1:-1], kernel, strides, dilation)
  out = []
  for axis, n in enumerate(spatial):
    chain = field[axis].chain + (LayerGeometry(kernel[axis], strides[axis], pads[axis],
                                               dilation[axis], call.name),)
    last = receptive_field(chain, n)[-1]
    out.append(_Axis(chain, last.size, last.jump))
  return tuple(out)


def _flops(call: _Call) -> int:
  """FLOPs of one call per example (see the module docstring for the conventions)."""
  module = call.module
  out = math.prod(call.out_shape[1:])
  if isinstance(module, layers.Conv):
    macs = math.prod(module.kernel_size) * (call.in_shape[-1] // module.groups) * out
    return 2 * macs + (out if module.use_bias else 0)
  if isinstance(module, layers.Dense):
    return 2 * call.in_shape[-1] * out + (out if module.use_bias else 0)
  if isinstance(module, (layers.MaxPool, layers.AvgPool)):
    return out * math.prod(normalize_tuple(module.window, len(call.in_shape) - 2, 'window'))
  if isinstance(module, _GLOBAL_POOLS):
    return math.prod(call.in_shape[1:])
  if isinstance(module, layers.BatchNorm):
    return 2 * out
  return 0


def main(argv: Sequence[str] | None = None) -> None:
  """Command line: builds the model from a config or a name and prints its summary."""
  parser = argparse.ArgumentParser(prog='python -m cnn_jax.summary',
                                   description=__doc__.split('\n\n')[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument('--config', help='experiment config file: its model and dataset')
  source.add_argument('--model', help=f'a registered model: {", ".join(models.names())}')
  parser.add_argument('--input-shape',
                      help='one example\'s shape, e.g. 224,224,3 or 40,1 (default with '
                           '--config: the dataset\'s)')
  args = parser.parse_args(argv)
  try:
    if args.config:
      config = config_utils.load_config(args.config)
      kwargs = dict(config.model)
      name = kwargs.pop('name')
      default_shape = catalog.model_input_shape(config.dataset)
    else:
      name, kwargs, default_shape = args.model, {}, None
    if args.input_shape:
      shape = tuple(int(s) for s in args.input_shape.split(','))
    elif default_shape:
      shape = default_shape
    else:
      parser.error('--input-shape is needed (the config\'s dataset has no fixed input '
                   'shape)' if args.config else '--input-shape is needed with --model')
    summary = summarize(models.create(name, **kwargs), shape)
  except ValueError as e:
    raise SystemExit(f'error: {e}') from e
  print(f'{name}: {summary.table()}')


if __name__ == '__main__':
  main()
