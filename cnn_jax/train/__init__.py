"""Training: state, pure steps, optimizers and the loop."""
