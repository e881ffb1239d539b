"""Choose the torch device in one place, and say so."""

from __future__ import annotations

import logging

import torch

from emulator.errors import EmulatorError

LOG = logging.getLogger(__name__)


def choose_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise EmulatorError("--device cuda was asked for, but torch sees no CUDA device")
    device = torch.device(name)
    LOG.info("running on %s", torch.cuda.get_device_name(device) if device.type == "cuda" else "the CPU")
    return device
