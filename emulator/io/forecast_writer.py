"""CF-conventions forecast NetCDF, written a block of lead steps at a time.

The layout is :class:`~emulator.io.layout.ForecastLayout`'s. The lead time
dimension is unlimited and its coordinate is written with each block
(:mod:`emulator.io.blocks`), so memory does not grow with the number of steps
and a partial file holds exactly the steps written so far. Chunks hold one lead
step of one member.
"""

from __future__ import annotations

import netCDF4
import numpy as np

from emulator.io.blocks import Members
from emulator.io.layout import ForecastLayout

FILL = np.float32(np.nan)


class ForecastWriter:
    """Writes blocks ``(member, lead, channel, lat, lon)`` as lead steps of one initial time."""

    def __init__(self, dataset: netCDF4.Dataset, layout: ForecastLayout) -> None:
        self.dataset, self.layout = dataset, layout
        lead_name = layout.names.lead_time
        for coordinate in layout.coordinates:
            is_lead = coordinate.name == lead_name
            dataset.createDimension(coordinate.name, None if is_lead else len(coordinate.values))
            variable = dataset.createVariable(coordinate.name, coordinate.values.dtype, (coordinate.name,))
            variable.setncatts(coordinate.attrs)
            if not is_lead:
                variable[:] = coordinate.values
        self._lead_hours = next(c.values for c in layout.coordinates if c.name == lead_name)
        grid = layout.grid
        for name, (dims, attrs) in layout.variables.items():
            chunks = [1] * (len(dims) - 2) + [grid.nlat, grid.nlon]
            variable = dataset.createVariable(
                name,
                "f4",
                dims,
                compression=None if layout.compression == "none" else layout.compression,
                complevel=1,
                shuffle=True,  # netCDF4 applies the byte shuffle with zlib only
                chunksizes=chunks,
                fill_value=FILL,
            )
            variable.setncatts(attrs)
        dataset.setncatts(layout.attrs)

    def write_block(self, first_lead: int, block: np.ndarray, members: Members) -> None:
        """Write lead steps from ``first_lead`` of ``members`` (rows of the member dimension).

        The lead time's coordinate comes last: it marks steps whose fields are written.
        """
        leads = slice(first_lead, first_lead + block.shape[1])
        for target in self.layout.targets:
            self.dataset.variables[target.variable][self.layout.region(members, leads, target)] = target.values(block)
        self.dataset.variables[self.layout.names.lead_time][leads] = self._lead_hours[leads]
        self.dataset.sync()

    def set_status(self, status: str) -> None:
        self.dataset.setncattr("rollout_status", status)
