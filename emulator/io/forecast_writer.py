"""CF-conventions forecast NetCDF, written a block of lead steps at a time.

The layout is :class:`~emulator.io.layout.ForecastLayout`'s. netCDF4 defines the
file (dimensions, coordinates, variables with their filters, attributes); h5py
then writes each chunk as bytes encoded by :mod:`emulator.io.chunks`, one lead
step of one member (and level) per chunk. The lead time dimension is unlimited
and its coordinate is written with each block (:mod:`emulator.io.blocks`), so
memory does not grow with the number of steps and a partial file holds exactly
the steps written so far.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import h5py
import netCDF4
import numpy as np

from emulator.files import atomic_path
from emulator.io.blocks import Members
from emulator.io.chunks import ENCODERS
from emulator.io.layout import ForecastLayout

FILL = np.float32(np.nan)
LEAD_AXIS = 2
HDF5_FORMATS = ("earliest", "v110")
"""Objects h5py changes keep formats that HDF5 1.10 (netCDF-C 4.6 on) reads."""


def define_forecast(path: Path, layout: ForecastLayout) -> None:
    """Create ``path`` with ``layout``'s dimensions, coordinates (lead times empty), variables and attributes."""
    lead_name = layout.names.lead_time
    grid = layout.grid
    with netCDF4.Dataset(path, "w", format="NETCDF4") as dataset:
        for coordinate in layout.coordinates:
            is_lead = coordinate.name == lead_name
            dataset.createDimension(coordinate.name, None if is_lead else len(coordinate.values))
            variable = dataset.createVariable(coordinate.name, coordinate.values.dtype, (coordinate.name,))
            variable.setncatts(coordinate.attrs)
            if not is_lead:
                variable[:] = coordinate.values
        for name, (dims, attrs) in layout.variables.items():
            variable = dataset.createVariable(
                name,
                "f4",
                dims,
                compression=None if layout.compression == "none" else layout.compression,
                complevel=1,
                shuffle=True,  # netCDF4 applies the byte shuffle with zlib only
                chunksizes=[1] * (len(dims) - 2) + [grid.nlat, grid.nlon],
                fill_value=FILL,
            )
            variable.setncatts(attrs)
        dataset.setncatts(layout.attrs)


class ForecastWriter:
    """Writes blocks ``(member, lead, channel, lat, lon)`` as lead steps of one initial time."""

    def __init__(self, path: Path, layout: ForecastLayout) -> None:
        define_forecast(path, layout)
        self.file = h5py.File(path, "r+", libver=HDF5_FORMATS)
        self.layout = layout
        self._encode = ENCODERS[layout.compression]
        channels = sum(len(target.channels) for target in layout.targets)
        self._step_shape = (channels, layout.grid.nlat, layout.grid.nlon)
        sizes = layout.dimension_sizes()
        self._member_rows = np.arange(sizes[layout.names.member])
        self._lead_hours = next(c.values for c in layout.coordinates if c.name == layout.names.lead_time)

    def write_block(self, first_lead: int, block: np.ndarray, members: Members) -> None:
        """Write lead steps from ``first_lead`` of ``members`` (rows of the member dimension).

        The lead time's coordinate comes last: it marks steps whose fields are written.
        """
        if block.shape[2:] != self._step_shape:
            raise ValueError(
                f"{self.file.filename}: lead steps from index {first_lead} are (channel, lat, lon) "
                f"{block.shape[2:]}, the forecast's are {self._step_shape}"
            )
        end = first_lead + block.shape[1]
        rows = self._member_rows[members]
        for target in self.layout.targets:
            variable = self.file[target.variable]
            variable.resize(max(end, variable.shape[LEAD_AXIS]), axis=LEAD_AXIS)
            levels = [()] if target.level_indices is None else [(level,) for level in target.level_indices]
            fields = target.values(block).reshape(len(rows), block.shape[1], len(levels), *block.shape[-2:])
            for row, member_fields in zip(rows, fields, strict=True):
                for lead, lead_fields in enumerate(member_fields, start=first_lead):
                    for level, field in zip(levels, lead_fields, strict=True):
                        variable.id.write_direct_chunk((row, 0, lead, *level, 0, 0), self._encode(field))
        lead_time = self.file[self.layout.names.lead_time]
        lead_time.resize((max(end, len(lead_time)),))
        lead_time[first_lead:end] = self._lead_hours[first_lead:end]
        self.file.flush()

    def set_status(self, status: str) -> None:
        self.file.attrs["rollout_status"] = np.bytes_(status.encode())

    def close(self) -> None:
        self.file.close()


@contextlib.contextmanager
def netcdf_forecast(path: str | Path, layout: ForecastLayout) -> Iterator[ForecastWriter]:
    """A :class:`ForecastWriter` for ``path + '.partial'``, renamed to ``path`` on success.

    On an exception the partial file is closed and stays readable under its temporary name.
    """
    with atomic_path(path) as temporary:
        writer = ForecastWriter(temporary, layout)
        try:
            yield writer
        finally:
            writer.close()
