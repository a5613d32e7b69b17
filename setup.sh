#!/usr/bin/env bash
# Creates ./.venv with the pinned requirements and makes sure the offline dataset is
# installed. Safe to re-run: it only reinstalls when requirements.txt or
# requirements-docs.txt changed.
#
#   bash setup.sh && .venv/bin/python -m experiments.train     # main job
#   bash setup.sh && .venv/bin/python -m pytest -q -n 2 --dist loadfile tests         # tests
set -euo pipefail
cd "$(dirname "$0")"

# Another interpreter: PYTHON=$(pyenv root)/versions/3.12.1/bin/python3.12 bash setup.sh
# (Python >= 3.12 gets the newest jax and flax, see requirements.txt).
PYTHON_GIVEN=${PYTHON:-}
PYTHON=${PYTHON:-python3}
FASHION_MNIST_DIR=/usr/share/datasets/fashion-mnist

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup.sh: need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_install() {
  # Update the package lists only when an install is actually needed.
  as_root apt-get install -y -q "$@" >/dev/null 2>&1 \
    || { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "$@"; }
}

if ! command -v "$PYTHON" >/dev/null; then
  echo "setup.sh: installing python3" >&2
  apt_install python3 python3-venv
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: Python >= 3.11 is required, $PYTHON is $("$PYTHON" --version)" >&2
  exit 1
fi
minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
if [ -n "$PYTHON_GIVEN" ] && [ -x .venv/bin/python ] \
    && [ "$(minor .venv/bin/python)" != "$(minor "$PYTHON")" ]; then
  echo "setup.sh: .venv has Python $(minor .venv/bin/python) but PYTHON=$PYTHON is" \
       "$(minor "$PYTHON"); remove .venv to rebuild it with $PYTHON" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  # Debian splits venv/ensurepip into python3-venv.
  if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    echo "setup.sh: installing python3-venv" >&2
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi

# requirements-docs.txt: what the tests need to execute the tutorial notebook.
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-docs.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup.sh: installing requirements into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-docs.txt
  echo "$want" > "$stamp"
fi

if [ ! -d "$FASHION_MNIST_DIR" ]; then
  echo "setup.sh: installing the Debian package dataset-fashion-mnist" >&2
  apt_install dataset-fashion-mnist
fi
