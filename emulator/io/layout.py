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
    """Where some channels of a state go: one variable, and each one's level index if it has levels.

    A variable's channels are written in one call (a 13-level variable: one, not 13).
    """

    variable: str
    channels: list[int]
    level_indices: list[int] | None

    def values(self, block: np.ndarray) -> np.ndarray:
        """This variable's part of ``block`` ``(member, lead, channel, lat, lon)``, shaped as its region."""
        return block[:, :, self.channels] if self.level_indices is not None else block[:, :, self.channels[0]]

    def levels(self) -> slice | np.ndarray:
        """The level index: a slice where the levels are consecutive (the fast case)."""
        assert self.level_indices is not None
        first = self.level_indices[0]
        if self.level_indices == list(range(first, first + len(self.level_indices))):
            return slice(first, first + len(self.level_indices))
        return np.asarray(self.level_indices)


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
        channel_indices: dict[str, list[int]] = {}
        level_indices: dict[str, list[int]] = {}
        for index, channel in enumerate(parsed):
            if channel.variable not in self.variables:
                level = ("level",) if channel.level is not None else ()
                dims = (names.member, names.init_time, names.lead_time, *level, "latitude", "longitude")
                stored = channel_attrs.get(str(channel), {})
                self.variables[channel.variable] = (
                    dims,
                    {k: v for k, v in stored.items() if isinstance(v, (str, int, float))},
                )
            channel_indices.setdefault(channel.variable, []).append(index)
            if channel.level is not None:
                level_indices.setdefault(channel.variable, []).append(self.levels.index(channel.level))
        self.targets = [Target(name, indices, level_indices.get(name)) for name, indices in channel_indices.items()]
        self.attrs = {"Conventions": "CF-1.8", "featureType": "grid", **attrs}

    def dimension_sizes(self) -> dict[str, int]:
        return {c.name: len(c.values) for c in self.coordinates}

    def region(self, members: np.ndarray | slice, leads: slice, target: Target) -> tuple[np.ndarray | slice | int, ...]:
        """The index of one variable's lead steps of ``members``: where :meth:`Target.values` goes."""
        level = () if target.level_indices is None else (target.levels(),)
        return (members, 0, leads, *level)
