"""Networks from normalized tensors to normalized tensors, built by name."""
