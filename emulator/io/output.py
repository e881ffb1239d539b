"""Open a forecast output by its name: ``*.zarr`` is a Zarr store, anything else NetCDF."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from emulator.io.forecast_writer import ForecastWriter
from emulator.io.layout import ForecastLayout
from emulator.io.netcdf import atomic_netcdf
from emulator.io.zarr_writer import ZarrForecastWriter, atomic_zarr


class FieldWriter(Protocol):
    """Where lead steps of members go."""

    def write(self, lead_index: int, state: np.ndarray, members: np.ndarray | slice = ...) -> None: ...

    def set_status(self, status: str) -> None: ...


@contextlib.contextmanager
def forecast_output(path: Path, layout: ForecastLayout) -> Iterator[FieldWriter]:
    """A writer for ``path``, written under a temporary name and renamed when the block succeeds."""
    if path.suffix == ".zarr":
        with atomic_zarr(path) as group:
            yield ZarrForecastWriter(group, layout)
    else:
        with atomic_netcdf(path) as dataset:
            yield ForecastWriter(dataset, layout)
