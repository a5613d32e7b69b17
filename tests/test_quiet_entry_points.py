"""The entry points' default output holds our lines only: no TensorFlow, TFDS or orbax
start-up or INFO lines, and no empty results; ``--verbose`` brings the libraries' logs
back.

One module-wide run builds Fashion-MNIST from the Debian package's IDX files into a
fresh data dir (the path a newcomer's first run takes, which used to print TFDS's
"Downloading and preparing dataset Unknown size" although nothing is downloaded), then
trains the tiny config on a few hundred of its images.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from subprocess_env import subprocess_env

from cnn_jax.data import idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = {
    'absl/glog line': r'^[IWEF]\d{4} \d\d:\d\d:\d\d',  # TFDS, orbax, TensorFlow C++
    'absl C++ preamble': r'absl::InitializeLog',
    'oneDNN notice': r'oneDNN',
    'OpenCV notice': r'OpenCV',
    'TFDS download line': r'Downloading and preparing|downloaded and prepared',
    'TFDS progress bar': r'Generating splits|Shuffling',
    'empty result row': r'\|\s*None\s*\|',
}


def _run(*args):
  env = subprocess_env()  # what a user's shell has: none of our switches set
  out = subprocess.run([sys.executable, '-m', *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return out


def _noise(text):
  return {name: re.findall(f'.*(?:{pattern}).*', text, flags=re.M)
          for name, pattern in NOISE.items() if re.search(pattern, text, flags=re.M)}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  if not os.path.isdir(idx.DEBIAN_FASHION_MNIST_DIR):
    pytest.skip(f'needs the Debian package dataset-fashion-mnist '
                f'({idx.DEBIAN_FASHION_MNIST_DIR}); setup.sh installs it')
  data_dir, workdir = tmp_path_factory.mktemp('tfds'), tmp_path_factory.mktemp('run')
  out = _run('experiments.train', f'--config=tests/configs/tiny.py:{data_dir}',
             f'--workdir={workdir}', f'--config.dataset.prepare_from_dir='
             f'{idx.DEBIAN_FASHION_MNIST_DIR}', "--config.dataset.train_split=train[:384]",
             '--config.dataset.eval_split=', '--config.num_epochs=1',
             # TensorBoard imports TensorFlow, whose C++ start-up notices must stay hidden.
             '--config.tensorboard=True')
  return str(workdir), out


def test_train_prints_one_line_of_ours_and_its_results(trained):
  _, out = trained
  assert _noise(out.stdout + out.stderr) == {}
  assert out.stderr.count('building fashion_mnist from the local IDX files') == 1
  assert '| test_accuracy |' in out.stdout
  # No eval split: the eval rows have no value and are left out, not printed as None.
  assert 'best_eval' not in out.stdout


def test_evaluate_prints_its_result_only(trained):
  workdir, _ = trained
  out = _run('experiments.evaluate', f'--workdir={workdir}')
  assert _noise(out.stdout + out.stderr) == {}
  assert out.stderr == ''
  result = json.loads(out.stdout)
  assert 0 <= result['accuracy'] <= 1


def test_verbose_brings_the_library_logs_back(trained):
  workdir, _ = trained
  out = _run('experiments.evaluate', f'--workdir={workdir}', '--verbose')
  # orbax logs every restore at INFO.
  assert 'absl/glog line' in _noise(out.stderr)
