"""Open a forecast output by its name: ``*.zarr`` is a Zarr store, anything else NetCDF."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from emulator.io.background import in_background
from emulator.io.blocks import BlockWriter, StepBuffer, in_blocks
from emulator.io.forecast_writer import netcdf_forecast
from emulator.io.layout import ForecastLayout
from emulator.io.zarr_writer import ZarrForecastWriter, atomic_zarr


@contextlib.contextmanager
def forecast_output(path: Path, layout: ForecastLayout, background: bool = False) -> Iterator[StepBuffer]:
    """Lead steps for ``path``, written under a temporary name that is renamed when the context succeeds.

    Steps are written in blocks (:mod:`emulator.io.blocks`); ``background``: by a
    thread of their own (:mod:`emulator.io.background`).
    """
    with contextlib.ExitStack() as stack:
        writer: BlockWriter
        if path.suffix == ".zarr":
            writer = ZarrForecastWriter(stack.enter_context(atomic_zarr(path)), layout)
        else:
            writer = stack.enter_context(netcdf_forecast(path, layout))
        if background:
            writer = stack.enter_context(in_background(writer))
        yield stack.enter_context(in_blocks(writer))
