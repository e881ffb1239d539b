"""Training: losses, the optimisation loop, logging."""
