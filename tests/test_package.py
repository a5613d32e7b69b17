"""The package works installed, outside the repository: it never reads experiments/."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_installed_package_imports_and_summarizes_from_an_empty_directory(tmp_path):
  site, empty = tmp_path / 'site', tmp_path / 'empty'
  empty.mkdir()
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                  '--no-build-isolation', '--target', str(site), ROOT],
                 check=True, capture_output=True)
  assert not (site / 'experiments').exists()
  env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS='cpu')
  code = ('import importlib, pkgutil, cnn_jax\n'
          'assert cnn_jax.__file__.startswith(%r), cnn_jax.__file__\n'
          'for m in pkgutil.walk_packages(cnn_jax.__path__, "cnn_jax."):\n'
          '  importlib.import_module(m.name)\n' % str(site))
  subprocess.run([sys.executable, '-c', code], cwd=empty, env=env, check=True,
                 capture_output=True)
  out = subprocess.run([sys.executable, '-m', 'cnn_jax.summary', '--model', 'lenet5',
                        '--input-shape', '32,32,1'], cwd=empty, env=env, check=True,
                       capture_output=True, text=True).stdout
  # LeNet-5 on 32x32x1: LeCun et al. 1998's 61,706 parameters.
  assert 'total: 61,706 parameters' in out
