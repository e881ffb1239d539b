"""A climate target file (``emulator world-climate``): one of its variables, checked and loaded."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from emulator.errors import EmulatorError


def target_variable(path: str, name: str, key: str) -> xr.DataArray:
    """Variable ``name`` of the target file ``path``, loaded; errors name the file and the config ``key``."""
    if not Path(path).is_file():
        raise EmulatorError(f"{key}: {path} does not exist (emulator world-climate writes one)")
    with xr.open_dataset(path) as dataset:
        if name not in dataset:
            raise EmulatorError(f"{key}: {path} has no variable {name!r} (emulator world-climate writes it)")
        return dataset[name].load()
