"""Read channels from a reanalysis-layout Zarr store, lazily, in one orientation.

The store has dims ``time, [level,] latitude, longitude`` and variables by long
name (WeatherBench2's ERA5 layout). A channel is ``variable`` or
``variable@level``. Whatever the store's orientation (latitude ascending or
descending, longitude 0..360 or -180..180), arrays come out as
``(time, channel, lat, lon)`` float32 with latitude north to south and longitude
east from 0 degrees. Static variables (no ``time``) are repeated along time.
Nothing is read until asked for: small reads (training windows, initial states)
go straight through xarray's lazy indexing to zarr; whole-store reductions get a
dask view chunked along time (:meth:`ZarrSource.as_dataarray`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from emulator.errors import EmulatorError
from emulator.grid import Grid


@dataclass(frozen=True)
class Channel:
    """One 2-D field of the store: a variable, at a pressure level if it has levels."""

    variable: str
    level: int | None = None

    @classmethod
    def parse(cls, name: str) -> Channel:
        variable, sep, level = name.partition("@")
        if not variable or (sep and not level.lstrip("-").isdigit()):
            raise EmulatorError(f"channel {name!r} is not of the form 'variable' or 'variable@level'")
        return cls(variable, int(level) if sep else None)

    def __str__(self) -> str:
        return self.variable if self.level is None else f"{self.variable}@{self.level}"


CHUNK_BYTES = 64 * 2**20


def open_store(store: str) -> xr.Dataset:
    """Open a Zarr store lazily (no data read), consolidated or not, local path or fsspec URL."""
    if "://" not in store and not Path(store).exists():
        raise EmulatorError(f"{store}: no Zarr store at this path")
    try:
        return xr.open_zarr(store, chunks=None)
    except (FileNotFoundError, KeyError, ValueError, OSError) as error:
        raise EmulatorError(f"{store}: cannot open as a Zarr store ({error})") from None


def _orient(dataset: xr.Dataset) -> xr.Dataset:
    """Latitude north to south; longitude wrapped to [0, 360) and ascending."""
    dataset = dataset.assign_coords(longitude=dataset.longitude % 360.0)
    return dataset.sortby("longitude").sortby("latitude", ascending=False)


class ZarrSource:
    """Channels of one store, served as ``(time, channel, lat, lon)`` float32 arrays."""

    def __init__(self, store: str, channels: Sequence[str]) -> None:
        self.store = store
        self.channels = [Channel.parse(name) for name in channels]
        dataset = _orient(open_store(store))
        self.fields = [self._select(dataset, channel) for channel in self.channels]
        self.times = pd.DatetimeIndex(dataset.time.values)
        if not self.times.is_monotonic_increasing or self.times.has_duplicates:
            raise EmulatorError(f"{store}: time coordinate is not strictly increasing")
        self.grid = Grid.from_coordinates(dataset.latitude.values, dataset.longitude.values, store)
        self.attrs = {
            str(channel): dict(field.attrs) for channel, field in zip(self.channels, self.fields, strict=True)
        }

    def _select(self, dataset: xr.Dataset, channel: Channel) -> xr.DataArray:
        if channel.variable not in dataset.data_vars:
            raise EmulatorError(f"{self.store}: variable {channel.variable!r} not in store")
        field = dataset[channel.variable]
        has_level = "level" in field.dims
        if has_level and channel.level is None:
            raise EmulatorError(
                f"{self.store}: variable {channel.variable!r} has levels; name one as '{channel.variable}@LEVEL'"
            )
        if not has_level and channel.level is not None:
            raise EmulatorError(
                f"{self.store}: variable {channel.variable!r} has no levels, but level {channel.level} was asked for"
            )
        if has_level:
            if channel.level not in field.level.values:
                raise EmulatorError(f"{self.store}: level {channel.level} of {channel.variable!r} not in store")
            field = field.sel(level=channel.level)
        return field

    @property
    def names(self) -> list[str]:
        return [str(channel) for channel in self.channels]

    def __len__(self) -> int:
        return len(self.times)

    def time_index(self, time: str | pd.Timestamp) -> int:
        """Index of ``time`` in the store, or an error naming the store and the range."""
        stamp = pd.Timestamp(time)
        if stamp not in self.times:
            raise EmulatorError(
                f"{self.store}: initial time {stamp} not in store (it has {self.times[0]} to {self.times[-1]})"
            )
        return int(self.times.get_loc(stamp))

    def period_indices(self, period: tuple[str, str] | None) -> np.ndarray:
        """Indices of the times within ``[start, end]`` (all times when ``None``)."""
        if period is None:
            return np.arange(len(self.times))
        start, end = pd.Timestamp(period[0]), pd.Timestamp(period[1])
        return np.flatnonzero((self.times >= start) & (self.times <= end))

    def as_dataarray(self) -> xr.DataArray:
        """All channels as one dask ``(time, channel, latitude, longitude)`` array, about 64 MiB a chunk."""
        rows = max(1, CHUNK_BYTES // (4 * self.grid.nlat * self.grid.nlon))
        fields = [
            field.drop_vars("level", errors="ignore").chunk({"time": rows} if "time" in field.dims else {})
            for field in self.fields
        ]
        fields = [
            field if "time" in field.dims else field.expand_dims(time=self.times).chunk({"time": rows})
            for field in fields
        ]
        stacked = xr.concat(fields, dim=pd.Index(self.names, name="channel"), coords="minimal", compat="override")
        return stacked.transpose("time", "channel", "latitude", "longitude").astype(np.float32)

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Read the given time indices as a ``(time, channel, lat, lon)`` float32 array."""
        indices = np.asarray(indices)
        out = np.empty((len(indices), len(self.fields), *self.grid.shape), dtype=np.float32)
        for c, field in enumerate(self.fields):
            out[:, c] = field.isel(time=indices).values if "time" in field.dims else field.values
        return out
