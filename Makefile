# Shortcuts for the README's two commands, and the PyTorch side-by-side benchmark.
.PHONY: setup train test bench-torch
setup:
	bash setup.sh
train: setup
	.venv/bin/python -m experiments.train
test: setup
	.venv/bin/python -m pytest -q -n 2 --dist loadfile tests
bench-torch: setup
	.venv/bin/pip install -r requirements-bench.txt
	.venv/bin/python -m experiments.benchmark \
	    --config experiments/configs/fashion_mnist_cnn.py,experiments/configs/lenet5_fashion_mnist.py,experiments/configs/fashion_mnist_fast.py \
	    --model resnet20 --input_shape 28,28,1 --input_shape 32,32,3 --batch_sizes 128 \
	    --steps 20 --repeats 5 --rounds 3 --torch --out experiments/results/benchmarks/cpu_torch_side_by_side
