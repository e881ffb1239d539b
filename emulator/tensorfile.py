"""Reading safetensors files of a known format: tensors plus string metadata, never pickle."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from emulator.errors import EmulatorError


def read_tensor_file(path: Path, expected_format: str, what: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of ``path``, or an error naming the file and what is wrong with it."""
    if not path.is_file():
        raise EmulatorError(f"{path}: {what} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise EmulatorError(f"{path}: not a readable {what} ({error})") from None
    found = metadata.get("format")
    if found != expected_format:
        kind = expected_format.rsplit("-", 1)[0]
        if found and found.rsplit("-", 1)[0] == kind:
            raise EmulatorError(f"{path}: {what} of format {found!r}; this version reads {expected_format!r}")
        raise EmulatorError(f"{path}: not an emulator {what} (format {found!r})")
    return metadata, tensors
