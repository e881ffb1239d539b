"""CF-conventions forecast NetCDF, written one lead step at a time.

Layout: ``variable(member, init_time, lead_time, [level,] latitude, longitude)``,
variables by their store names, channels of one variable at several pressure
levels sharing the ``level`` dimension (WeatherBench2's layout). ``lead_time`` is
unlimited, so memory does not grow with the number of steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import netCDF4
import numpy as np
import pandas as pd

from emulator.data.source import Channel
from emulator.grid import Grid

TIME_UNITS = "hours since 1970-01-01 00:00:00"
FILL = np.float32(np.nan)


class ForecastWriter:
    """Writes states ``(member, channel, lat, lon)`` as lead steps of one initial time."""

    def __init__(
        self,
        dataset: netCDF4.Dataset,
        channels: Sequence[str],
        channel_attrs: Mapping[str, Mapping[str, object]],
        grid: Grid,
        init_time: pd.Timestamp,
        members: int,
        attrs: Mapping[str, str],
    ) -> None:
        self.dataset = dataset
        parsed = [Channel.parse(name) for name in channels]
        levels = sorted({c.level for c in parsed if c.level is not None})
        dataset.createDimension("member", members)
        dataset.createDimension("init_time", 1)
        dataset.createDimension("lead_time", None)
        if levels:
            dataset.createDimension("level", len(levels))
        dataset.createDimension("latitude", grid.nlat)
        dataset.createDimension("longitude", grid.nlon)
        self._coordinate("member", ("member",), np.arange(members), {"long_name": "ensemble member"}, "i4")
        init_hours = (init_time - pd.Timestamp("1970-01-01")) / pd.Timedelta(hours=1)
        self._coordinate(
            "init_time",
            ("init_time",),
            [init_hours],
            {"units": TIME_UNITS, "standard_name": "forecast_reference_time", "calendar": "proleptic_gregorian"},
            "f8",
        )
        self._coordinate(
            "latitude", ("latitude",), grid.latitudes, {"units": "degrees_north", "standard_name": "latitude"}, "f8"
        )
        self._coordinate(
            "longitude", ("longitude",), grid.longitudes, {"units": "degrees_east", "standard_name": "longitude"}, "f8"
        )
        if levels:
            self._coordinate(
                "level", ("level",), levels, {"units": "hPa", "long_name": "pressure level", "positive": "down"}, "i4"
            )
        lead = dataset.createVariable("lead_time", "f8", ("lead_time",))
        lead.setncatts({"units": "hours", "long_name": "forecast lead time", "standard_name": "forecast_period"})
        self._lead = lead
        self._targets: list[tuple[netCDF4.Variable, int | None]] = []
        for channel in parsed:
            if channel.variable not in dataset.variables:
                dims = (
                    "member",
                    "init_time",
                    "lead_time",
                    *(("level",) if channel.level is not None else ()),
                    "latitude",
                    "longitude",
                )
                chunks = [1] * (len(dims) - 2) + [grid.nlat, grid.nlon]
                variable = dataset.createVariable(
                    channel.variable, "f4", dims, zlib=True, complevel=1, chunksizes=chunks, fill_value=FILL
                )
                variable.setncatts(
                    {k: v for k, v in channel_attrs.get(str(channel), {}).items() if isinstance(v, (str, int, float))}
                )
            level_index = levels.index(channel.level) if channel.level is not None else None
            self._targets.append((dataset.variables[channel.variable], level_index))
        dataset.setncatts({"Conventions": "CF-1.8", "featureType": "grid", **attrs})

    def _coordinate(
        self, name: str, dims: tuple[str, ...], values: Sequence[float] | np.ndarray, attrs: dict[str, str], dtype: str
    ) -> None:
        variable = self.dataset.createVariable(name, dtype, dims)
        variable.setncatts(attrs)
        variable[:] = np.asarray(values)

    def write(self, lead_index: int, lead_hours: float, state: np.ndarray, members: slice = slice(None)) -> None:
        """Write one lead step of ``members``; ``state`` is ``(member, channel, lat, lon)``, physical units."""
        self._lead[lead_index] = lead_hours
        for channel_index, (variable, level_index) in enumerate(self._targets):
            if level_index is None:
                variable[members, 0, lead_index] = state[:, channel_index]
            else:
                variable[members, 0, lead_index, level_index] = state[:, channel_index]
        self.dataset.sync()
