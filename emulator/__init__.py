"""An autoregressive weather and climate emulator on the sphere."""

__version__ = "0.1.0"
