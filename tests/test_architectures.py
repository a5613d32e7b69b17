"""The architecture gallery (cnn_jax.viz.architectures): its numbers against hand counts,
published parameter counts and cnn_jax.summary, generated into a temporary folder; and
the committed docs/architectures.md against summary."""

import os
import re

import pytest

from cnn_jax import models
from cnn_jax.summary import summarize
from cnn_jax.viz import architectures

DOCS = os.path.join(os.path.dirname(__file__), '..', 'docs')
LENET5, RESNET18 = architectures.GALLERY[0], architectures.GALLERY[3]


def _conv(k, c_in, c_out):
  return k * k * c_in * c_out + c_out


def test_lenet5_page_rows_by_hand(tmp_path):
  paths = architectures.write_gallery(str(tmp_path), [LENET5], dpi=40)
  assert paths[-1] == str(tmp_path / 'architectures.md')
  assert all(os.path.getsize(p) > 0 for p in paths)
  page = (tmp_path / 'architectures.md').read_text()
  # Per layer: params by the conv/dense formulas, FLOPs = outputs x (2 x fan-in + 1).
  assert '| `c1` | Conv | 28x28x6 | 156 | 239,904 | 5 | 1 |' in page
  assert f'| `c3` | Conv | 10x10x16 | {_conv(5, 6, 16):,} |' in page
  assert f'| `c5` | Conv | 1x1x120 | {_conv(5, 16, 120):,} | {120 * (2 * 400 + 1):,} |' in page
  total = _conv(5, 1, 6) + _conv(5, 6, 16) + _conv(5, 16, 120) + 120 * 84 + 84 + 84 * 10 + 10
  assert f'Total: **{total:,}** parameters' in page
  assert 'figures/architecture_lenet5.png' in page


def test_block_diagram_groups_cover_every_layer():
  s = summarize(models.create('resnet18'), RESNET18.input_shape)
  plot = architectures.block_diagram('ResNet-18', s)
  groups = plot.data['groups']
  assert sum(g[2] for g in groups) == s.params == 11_689_512  # torchvision resnet18
  assert sum(g[3] for g in groups) == s.flops
  # stem, its pool, 8 basic blocks, global pool, dropout, head.
  assert [g[0] for g in groups][:3] == ['stem_conv', 'stem_pool', 'stage1_block0']
  assert len(groups) == 2 + 8 + 3
  assert groups[-1][1] == (1000,)


def test_cost_chart_points_are_the_summaries():
  entries = [LENET5, RESNET18]
  summaries = [summarize(models.create(e.model), e.input_shape) for e in entries]
  data = architectures.cost_chart(entries, summaries).data
  assert list(data['params']) == [61_706, 11_689_512]
  assert list(data['top1']) == [99.05, 69.758]


@pytest.mark.parametrize('entry', architectures.GALLERY, ids=lambda e: e.model)
def test_committed_page_matches_summary(entry):
  with open(os.path.join(DOCS, 'architectures.md')) as f:
    page = f.read()
  s = summarize(models.create(entry.model), entry.input_shape)
  row = re.search(rf'^\| {re.escape(entry.title)} \| `{entry.model}` \| [^|]+ \| ([\d,]+) \| '
                  rf'([\d,]+) \|', page, flags=re.M)
  assert row, f'{entry.title} missing from the summary table'
  assert (row.group(1), row.group(2)) == (f'{s.params:,}', f'{s.flops:,}')
  assert s.markdown() in page
