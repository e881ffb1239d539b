"""Benchmarks: ``python -m benchmarks NAME [--quick] [--device cpu|cuda]``, JSON lines on stdout."""
