# Shortcuts for the README's two commands.
.PHONY: setup train test
setup:
	bash setup.sh
train: setup
	.venv/bin/python -m experiments.train --workdir runs/fashion_mnist_cnn
test: setup
	.venv/bin/python -m pytest -q tests
