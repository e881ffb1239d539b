"""Open a forecast output by its name: ``*.zarr`` is a Zarr store, anything else NetCDF."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from emulator.io.background import FieldWriter, in_background
from emulator.io.forecast_writer import ForecastWriter
from emulator.io.layout import ForecastLayout
from emulator.io.netcdf import atomic_netcdf
from emulator.io.zarr_writer import ZarrForecastWriter, atomic_zarr


@contextlib.contextmanager
def forecast_output(path: Path, layout: ForecastLayout, background: bool = False) -> Iterator[FieldWriter]:
    """A writer for ``path``, written under a temporary name and renamed when the block succeeds.

    ``background``: steps are written by a thread of their own (:mod:`emulator.io.background`).
    """
    with contextlib.ExitStack() as stack:
        writer: FieldWriter
        if path.suffix == ".zarr":
            writer = ZarrForecastWriter(stack.enter_context(atomic_zarr(path)), layout)
        else:
            writer = ForecastWriter(stack.enter_context(atomic_netcdf(path)), layout)
        yield stack.enter_context(in_background(writer)) if background else writer
