"""The architecture gallery: LeNet-5, AlexNet, GoogLeNet, ResNet-18 and ResNet-50, each
as a block diagram, a per-layer table and totals, all from :func:`cnn_jax.summary.summarize`.

  python -m cnn_jax.viz.architectures --out docs

writes ``docs/architectures.md`` and its figures under ``docs/figures/``. The diagrams
are drawn from the summary's rows (the traced model's layer calls, grouped by their
top-level module), never by hand; the published accuracies in the chart are quoted,
with their sources, in :data:`GALLERY`.
"""

from __future__ import annotations

import argparse
import os
from typing import NamedTuple, Sequence

import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from cnn_jax import models
from cnn_jax.summary import Row, Summary, summarize
from cnn_jax.viz.common import DPI, WIDTH, Plot, new_figure

_TORCHVISION = 'https://pytorch.org/vision/stable/models.html'


class Architecture(NamedTuple):
  """One gallery entry.

  Attributes:
    title: display name.
    model: registry name (:func:`cnn_jax.models.create`).
    input_shape: one example's shape.
    idea: the one idea the architecture introduced.
    top1: published top-1 accuracy (%) of the architecture on ``benchmark``.
    benchmark: the dataset and protocol of ``top1``.
    source: where ``top1`` is published.
  """
  title: str
  model: str
  input_shape: tuple[int, ...]
  idea: str
  top1: float
  benchmark: str
  source: str


GALLERY = (
    Architecture(
        'LeNet-5', 'lenet5', (28, 28, 1),
        '5x5 convolutions with learned weights shared over the image, alternating with '
        '2x2 subsampling (average pooling), trained end to end by backpropagation '
        '(LeCun et al. 1998).',
        99.05, 'MNIST test, no distortions (0.95% error)',
        'LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document '
        'recognition", Proc. IEEE 86(11)'),
    Architecture(
        'AlexNet', 'alexnet', (224, 224, 3),
        'Depth and scale on GPUs: ReLU instead of saturating activations (several times '
        'faster training), dropout in the large dense layers against overfitting, '
        'overlapping max pooling, and training split over two GPUs (Krizhevsky et al. 2012).',
        56.522, 'ImageNet-1k val, one 224 crop (torchvision weights)', _TORCHVISION),
    Architecture(
        'GoogLeNet', 'googlenet', (224, 224, 3),
        'Inception modules: 1x1, 3x3 and 5x5 convolutions and a pool side by side, with '
        '1x1 convolutions reducing the channels before the expensive ones, so a 22-layer '
        'network costs fewer parameters than AlexNet (Szegedy et al. 2015).',
        69.778, 'ImageNet-1k val, one 224 crop (torchvision weights)', _TORCHVISION),
    Architecture(
        'ResNet-18', 'resnet18', (224, 224, 3),
        'Residual connections: each block adds its input to its output (y = x + F(x)), so '
        'very deep networks still train (He et al. 2016). ResNet-18 stacks basic blocks '
        'of two 3x3 convolutions.',
        69.758, 'ImageNet-1k val, one 224 crop (torchvision weights)', _TORCHVISION),
    Architecture(
        'ResNet-50', 'resnet50', (224, 224, 3),
        'Residual connections with bottleneck blocks: 1x1 (reduce) -> 3x3 -> 1x1 (expand), '
        'which makes 50 layers affordable (He et al. 2016).',
        76.13, 'ImageNet-1k val, one 224 crop (torchvision weights)', _TORCHVISION),
)

# Box colours of the block diagrams, by the main layer kind of a group.
_KIND_COLORS = {'Conv': '#9ecae1', 'MaxPool': '#fdae6b', 'AvgPool': '#fdd0a2',
                'GlobalAvgPool': '#fdd0a2', 'GlobalMaxPool': '#fdae6b',
                'Dense': '#a1d99b', 'Dropout': '#d9d9d9', 'BatchNorm': '#dadaeb'}


class Group(NamedTuple):
  """Consecutive layer calls under one top-level module (a block, or one layer)."""
  name: str
  rows: tuple[Row, ...]

  @property
  def params(self) -> int:
    return sum(r.params for r in self.rows)

  @property
  def flops(self) -> int:
    return sum(r.flops for r in self.rows)


def groups(summary: Summary) -> list[Group]:
  """The summary's rows grouped by the first part of their module path, in call order.

  A BatchNorm directly after a conv (``stem_conv_bn`` after ``stem_conv``) joins it.
  """
  out: list[list] = []
  for row in summary.rows:
    top = row.name.split('/')[0]
    if out and (out[-1][0] == top or (row.kind == 'BatchNorm' and top.startswith(out[-1][0]))):
      out[-1][1].append(row)
    else:
      out.append([top, [row]])
  return [Group(name, tuple(rows)) for name, rows in out]


def _kinds(group: Group) -> str:
  """``'Conv x6, MaxPool'``: the layer kinds of a group, with counts."""
  counts: dict[str, int] = {}
  for r in group.rows:
    counts[r.kind] = counts.get(r.kind, 0) + 1
  return ', '.join(k if n == 1 else f'{k} x{n}' for k, n in counts.items())


def _si(n: float) -> str:
  for scale, prefix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
    if n >= scale:
      return f'{n / scale:.3g}{prefix}'
  return f'{n:g}'


def block_diagram(title: str, summary: Summary) -> Plot:
  """The model as a column of boxes, one per top-level module, input at the top.

  Each box names the module, its layers, its output shape and its parameters; the
  colour is its first layer's kind.

  Returns:
    Plot with ``data = {'groups': [(name, output shape, params, FLOPs), ...]}``.
  """
  gs = groups(summary)
  height = 0.42 * (len(gs) + 1) + 0.6
  fig, axes = new_figure(1, 1, height)
  ax = axes[0, 0]
  n = len(gs) + 1
  ax.set_xlim(0, WIDTH)
  ax.set_ylim(n, -0.3)
  ax.axis('off')
  labels = [(f'input {"x".join(map(str, summary.input_shape))}', '#ffffff')]
  for g in gs:
    shape = 'x'.join(map(str, g.rows[-1].output_shape))
    labels.append((f'{g.name}: {_kinds(g)}  ->  {shape},  {g.params:,} params,  '
                   f'{_si(g.flops)}FLOPs', _KIND_COLORS.get(g.rows[0].kind, '#ffffff')))
  for i, (text, color) in enumerate(labels):
    ax.add_patch(FancyBboxPatch((0.3, i + 0.12), WIDTH - 0.6, 0.62,
                                boxstyle='round,pad=0.02', fc=color, ec='black', lw=0.6))
    ax.text(0.45, i + 0.43, text, va='center', fontsize=8, family='monospace')
    if i:
      ax.add_patch(FancyArrowPatch((WIDTH / 2, i - 0.26), (WIDTH / 2, i + 0.12),
                                   arrowstyle='-|>', mutation_scale=8, lw=0.6))
  ax.set_title(f'{title}: {summary.params:,} parameters, {_si(summary.flops)}FLOPs per '
               f'image (multiply-add = 2); one box per top-level module, colour = its '
               f'first layer (blue conv, orange pool, green dense, grey dropout)',
               fontsize=8, wrap=True)
  data = {'groups': [(g.name, g.rows[-1].output_shape, g.params, g.flops) for g in gs]}
  return Plot(fig, data)


def cost_chart(entries: Sequence[Architecture], summaries: Sequence[Summary]) -> Plot:
  """Parameters against FLOPs (ours, from the summaries), each point labelled with its
  published top-1 accuracy.

  Returns:
    Plot with ``data = {'names', 'params', 'flops', 'top1'}``.
  """
  params = np.array([s.params for s in summaries], np.float64)
  flops = np.array([s.flops for s in summaries], np.float64)
  fig, axes = new_figure(1, 1, 4.6)
  ax = axes[0, 0]
  for i, (entry, p, f) in enumerate(zip(entries, params, flops)):
    imagenet = 'ImageNet' in entry.benchmark
    ax.scatter(f, p, s=60, color=f'C{i}', marker='o' if imagenet else 's',
               label=f'{entry.title}: top-1 {entry.top1:g}% '
                     f'({"ImageNet" if imagenet else "MNIST"})')
    # A point with a neighbour above it (within 2x on both axes) is labelled below-left.
    crowded = any(q > p and f / 2 < g < f * 2 and q < p * 2 for g, q in zip(flops, params))
    ax.annotate(f'{entry.title}\n{entry.top1:g}%', (f, p),
                xytext=(-8, -10) if crowded else (6, 4), textcoords='offset points',
                fontsize=8, ha='right' if crowded else 'left', va='top' if crowded else 'bottom')
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xlim(flops.min() / 4, flops.max() * 6)
  ax.set_ylim(params.min() / 4, params.max() * 6)
  ax.set_xlabel('FLOPs per image (forward, multiply-add = 2; cnn_jax.summary)')
  ax.set_ylabel('parameters (cnn_jax.summary)')
  ax.set_title('Cost and published top-1 accuracy (LeNet-5: MNIST; the others: '
               'ImageNet-1k, one crop)', fontsize=9)
  ax.grid(True, which='major', alpha=0.3)
  ax.legend(fontsize=7, loc='lower right')
  return Plot(fig, {'names': [e.title for e in entries], 'params': params, 'flops': flops,
                    'top1': np.array([e.top1 for e in entries])})


def write_gallery(out_dir: str, entries: Sequence[Architecture] = GALLERY,
                  dpi: int = DPI) -> list[str]:
  """Writes ``architectures.md`` into ``out_dir`` and its PNGs into ``out_dir/figures``.

  Returns:
    The paths written, the page last.
  """
  fig_dir = os.path.join(out_dir, 'figures')
  os.makedirs(fig_dir, exist_ok=True)
  summaries = [summarize(models.create(e.model), e.input_shape) for e in entries]
  written = []

  def save(plot: Plot, stem: str) -> str:
    path = os.path.join(fig_dir, f'{stem}.png')
    plot.figure.savefig(path, dpi=dpi)
    written.append(path)
    return f'figures/{stem}.png'

  lines = ['# Architecture gallery', '',
           '<!-- Generated by `python -m cnn_jax.viz.architectures --out docs`; do not edit '
           'by hand. -->', '',
           'The classic CNNs of the lesson as this project builds them '
           '(`cnn_jax.models.create(name)`). Every number below comes from '
           '`cnn_jax.summary.summarize` on the built model: output shapes, parameters, '
           'FLOPs per image (a multiply-add counts 2) and the receptive field (RF: input '
           'pixels one unit sees; jump: input pixels between neighbouring units). The '
           'diagrams are drawn from the same rows.', '',
           '| model | registry name | input | parameters | FLOPs / image | published top-1 |',
           '|---|---|---|--:|--:|---|']
  for e, s in zip(entries, summaries):
    lines.append(f'| {e.title} | `{e.model}` | {"x".join(map(str, e.input_shape))} | '
                 f'{s.params:,} | {s.flops:,} | {e.top1:g}% ({e.benchmark}) |')
  chart = save(cost_chart(entries, summaries), 'architectures_cost')
  lines += ['', f'![parameters against FLOPs, with published top-1]({chart})', '',
            'Sources of the published accuracies: ' + '; '.join(
                f'{e.title}: {e.source}' for e in entries) + '.', '']
  for e, s in zip(entries, summaries):
    diagram = save(block_diagram(e.title, s), f'architecture_{e.model}')
    lines += [f'## {e.title}', '', f'**The idea.** {e.idea}', '',
              f'![{e.title} block diagram]({diagram})', '',
              f'Total: **{s.params:,}** parameters'
              + (f' (+{s.state:,} BatchNorm statistics)' if s.state else '')
              + f', **{s.flops:,}** FLOPs per {"x".join(map(str, e.input_shape))} image, '
              f'output {"x".join(map(str, s.output_shape))}. '
              f'`python -m cnn_jax.summary --model {e.model} --input-shape '
              f'{",".join(map(str, e.input_shape))}` prints the same table.', '',
              f'<details><summary>Per-layer table ({len(s.rows)} layers)</summary>', '',
              s.markdown(), '', '</details>', '']
  page = os.path.join(out_dir, 'architectures.md')
  with open(page, 'w') as f:
    f.write('\n'.join(lines))
  written.append(page)
  return written


def main(argv: Sequence[str] | None = None) -> None:
  """Command line: writes the gallery page and its figures."""
  parser = argparse.ArgumentParser(prog='python -m cnn_jax.viz.architectures',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='docs', help='folder for architectures.md (its '
                      'figures go to OUT/figures)')
  parser.add_argument('--dpi', type=int, default=DPI, help='resolution of the PNGs')
  args = parser.parse_args(argv)
  for path in write_gallery(args.out, dpi=args.dpi):
    print(path)


if __name__ == '__main__':
  main()
