"""The layout of a forecast file, shared by the NetCDF and Zarr writers.

``variable(member, init_time, lead_time, [level,] latitude, longitude)``, variables
by their store names, channels of one variable at several pressure levels sharing
the ``level`` dimension (WeatherBench2's layout). With ``naming="weatherbench2"``
the first three dimensions are called as WeatherBench2 forecasts call them:
``realization``, ``time`` (the initial time) and ``prediction_timedelta``.
``compression`` is the NetCDF writer's filter (Zarr stores keep Zarr's default codec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from emulator.data.source import Channel
from emulator.grid import Grid

TIME_UNITS = "hours since 1970-01-01 00:00:00"
Naming = Literal["cf", "weatherbench2"]
Compression = Literal["zlib", "zstd", "none"]


@dataclass(frozen=True)
class DimensionNames:
    member: str
    init_time: str
    lead_time: str


DIMENSION_NAMES: dict[str, DimensionNames] = {
    "cf": DimensionNames("member", "init_time", "lead_time"),
    "weatherbench2": DimensionNames("realization", "time", "prediction_timedelta"),
}


@dataclass(frozen=True)
class Coordinate:
    name: str
    values: np.ndarray
    attrs: dict[str, str]


@dataclass(frozen=True)
class Target:
    """Where channel ``i`` of a state goes: a variable, and its level index if it has levels."""

    variable: str
    level_index: int | None


class ForecastLayout:
    """Dimensions, coordinates, variables, attributes and compression of one initial time's forecast."""

    def __init__(
        self,
        channels: Sequence[str],
        channel_attrs: Mapping[str, Mapping[str, object]],
        grid: Grid,
        init_time: pd.Timestamp,
        member_ids: Sequence[int],
        lead_hours: Sequence[float],
        attrs: Mapping[str, str],
        naming: Naming = "cf",
        compression: Compression = "zlib",
    ) -> None:
        self.names = DIMENSION_NAMES[naming]
        self.compression = compression
        self.grid = grid
        parsed = [Channel.parse(name) for name in channels]
        self.levels = sorted({c.level for c in parsed if c.level is not None})
        names = self.names
        init_hours = (init_time - pd.Timestamp("1970-01-01")) / pd.Timedelta(hours=1)
        self.coordinates = [
            Coordinate(names.member, np.asarray(member_ids, dtype="i4"), {"long_name": "ensemble member"}),
            Coordinate(
                names.init_time,
                np.array([init_hours], dtype="f8"),
                {"units": TIME_UNITS, "standard_name": "forecast_reference_time", "calendar": "proleptic_gregorian"},
            ),
            Coordinate(
                names.lead_time,
                np.asarray(lead_hours, dtype="f8"),
                {"units": "hours", "long_name": "forecast lead time", "standard_name": "forecast_period"},
            ),
            Coordinate(
                "latitude", grid.latitudes.astype("f8"), {"units": "degrees_north", "standard_name": "latitude"}
            ),
            Coordinate(
                "longitude", grid.longitudes.astype("f8"), {"units": "degrees_east", "standard_name": "longitude"}
            ),
        ]
        if self.levels:
            self.coordinates.append(
                Coordinate(
                    "level",
                    np.asarray(self.levels, dtype="i4"),
                    {"units": "hPa", "long_name": "pressure level", "positive": "down"},
                )
            )
        self.variables: dict[str, tuple[tuple[str, ...], dict[str, str | int | float]]] = {}
        self.targets: list[Target] = []
        for channel in parsed:
            if channel.variable not in self.variables:
                level = ("level",) if channel.level is not None else ()
                dims = (names.member, names.init_time, names.lead_time, *level, "latitude", "longitude")
                stored = channel_attrs.get(str(channel), {})
                self.variables[channel.variable] = (
                    dims,
                    {k: v for k, v in stored.items() if isinstance(v, (str, int, float))},
                )
            index = self.levels.index(channel.level) if channel.level is not None else None
            self.targets.append(Target(channel.variable, index))
        self.attrs = {"Conventions": "CF-1.8", "featureType": "grid", **attrs}

    def dimension_sizes(self) -> dict[str, int]:
        return {c.name: len(c.values) for c in self.coordinates}

    def region(
        self, members: np.ndarray | slice, lead_index: int, target: Target
    ) -> tuple[np.ndarray | slice | int, ...]:
        """The index of one channel's lead step of ``members`` in its variable."""
        level = () if target.level_index is None else (target.level_index,)
        return (members, 0, lead_index, *level)
