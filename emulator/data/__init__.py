"""Data access: stores, channels, normalization and training windows."""
