# Shortcuts for the README's two commands.
.PHONY: setup train test
setup:
	bash setup.sh
train: setup
	.venv/bin/python -m experiments.train
test: setup
	.venv/bin/python -m pytest -q tests
