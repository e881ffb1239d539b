"""Read channels from a reanalysis-layout Zarr store, lazily, in one orientation.

The store has dims ``time, [level,] latitude, longitude`` and variables by long
name (WeatherBench2's ERA5 layout): Zarr v2 or v3, consolidated or not, a local
path or any fsspec URL (``memory://``, ``file://``, ``gs://`` with gcsfs). A channel
is ``variable`` or ``variable@level``, or one of the computed forcings of
:mod:`emulator.data.forcings` (``cos_zenith``, ``toa_insolation``, ...).

Whatever the store's layout, arrays come out as ``(time, channel, lat, lon)``
float32 with latitude north to south and longitude east from 0 degrees, on the
model's grid: the store's own when it is one the model can take, else the grid of
``data.regrid``. Latitude may run either way, longitude 0..360 or -180..180;
times may be datetime64 or numbers with CF units (xarray decodes them); values
may be float16/32/64 or integers with ``scale_factor``/``add_offset`` (decoded by
xarray too). Static variables (no ``time``) are repeated along time.

Nothing is read until asked for: small reads (training windows, initial states)
go straight through xarray's lazy indexing to zarr; whole-store reductions get a
dask view chunked along time (:meth:`ZarrSource.as_dataarray`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from emulator.data.forcings import COMPUTED, UNITS, compute_forcing
from emulator.data.regrid import RegridConfig, Regridder
from emulator.errors import EmulatorError
from emulator.grid import TOLERANCE_DEG, Grid


@dataclass(frozen=True)
class Channel:
    """One 2-D field: a store variable, at a pressure level if it has levels, or a computed forcing."""

    variable: str
    level: int | None = None

    @classmethod
    def parse(cls, name: str) -> Channel:
        variable, sep, level = name.partition("@")
        if not variable or (sep and not level.lstrip("-").isdigit()):
            raise EmulatorError(f"channel {name!r} is not of the form 'variable' or 'variable@level'")
        return cls(variable, int(level) if sep else None)

    @property
    def computed(self) -> bool:
        return self.level is None and self.variable in COMPUTED

    def __str__(self) -> str:
        return self.variable if self.level is None else f"{self.variable}@{self.level}"


CHUNK_BYTES = 64 * 2**20
CONSOLIDATION_FALLBACK = "Failed to open Zarr store with consolidated metadata"


def open_store(store: str) -> xr.Dataset:
    """Open a Zarr store lazily (no data read), consolidated or not, local path or fsspec URL."""
    if "://" not in store and not Path(store).exists():
        raise EmulatorError(f"{store}: no Zarr store at this path")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=CONSOLIDATION_FALLBACK, category=RuntimeWarning)
            return xr.open_zarr(store, chunks=None)
    except (FileNotFoundError, KeyError, ValueError, OSError, ImportError) as error:
        raise EmulatorError(f"{store}: cannot open as a Zarr store ({error})") from None


def _orient(dataset: xr.Dataset, store: str) -> xr.Dataset:
    """Latitude north to south; longitude wrapped to [0, 360) and ascending.

    A store already in that orientation is indexed with plain slices (reversed for
    ascending latitude), so reads stay whole-chunk reads.
    """
    for name in ("time", "latitude", "longitude"):
        if name not in dataset.coords:
            raise EmulatorError(f"{store}: no {name!r} coordinate (dims are {', '.join(map(str, dataset.dims))})")
    latitude = dataset.latitude.values
    if np.all(np.diff(latitude) > 0):
        dataset = dataset.isel(latitude=slice(None, None, -1))
    elif not np.all(np.diff(latitude) < 0):
        raise EmulatorError(f"{store}: latitudes are neither strictly ascending nor strictly descending")
    if np.abs(latitude).max() > 90.0 + TOLERANCE_DEG:
        raise EmulatorError(f"{store}: latitudes reach {np.abs(latitude).max()}, beyond the poles")
    longitude = dataset.longitude.values % 360.0
    if len(np.unique(longitude)) != len(longitude):
        raise EmulatorError(f"{store}: longitudes repeat modulo 360 degrees (e.g. both -180 and 180)")
    order = np.argsort(longitude, kind="stable")
    dataset = dataset.assign_coords(longitude=longitude)
    return dataset if np.array_equal(order, np.arange(len(order))) else dataset.isel(longitude=order)


def _times(dataset: xr.Dataset, store: str) -> pd.DatetimeIndex:
    """The decoded time axis, checked to be dates, unique and increasing."""
    values = dataset.time.values
    if not np.issubdtype(values.dtype, np.datetime64):
        raise EmulatorError(
            f"{store}: time is not decoded as dates ({values.dtype}); "
            "give it CF units such as 'hours since 1959-01-01' and a standard calendar"
        )
    times = pd.DatetimeIndex(values)
    repeated = times[times.duplicated()]
    if len(repeated):
        raise EmulatorError(f"{store}: time {repeated[0]} appears more than once")
    backwards = np.flatnonzero(np.diff(times.values) <= np.timedelta64(0))
    if len(backwards):
        i = backwards[0]
        raise EmulatorError(f"{store}: times are not sorted: {times[i + 1]} comes after {times[i]}")
    return times


def as_slice(indices: Sequence[int] | np.ndarray) -> slice | np.ndarray:
    """A slice for consecutive indices (a basic selection in zarr, a plain copy in numpy), else the indices."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
        return slice(int(indices[0]), int(indices[0]) + len(indices))
    return indices


@dataclass
class StoredVariable:
    """A store variable and the channels read from it: their positions in the output and level indices."""

    field: xr.DataArray
    positions: list[int]
    levels: list[int]
    has_levels: bool

    @property
    def time_dependent(self) -> bool:
        return "time" in self.field.dims


class ZarrSource:
    """Channels of one store, served as ``(time, channel, lat, lon)`` float32 arrays on the model's grid."""

    def __init__(self, store: str, channels: Sequence[str], regrid: RegridConfig | None = None) -> None:
        self.store = store
        self.channels = [Channel.parse(name) for name in channels]
        dataset = _orient(open_store(store), store)
        self.times = _times(dataset, store)
        latitudes, longitudes = dataset.latitude.values, dataset.longitude.values
        self.regridder = Regridder(latitudes, longitudes, regrid, store) if regrid else None
        self.grid = regrid.grid if regrid else Grid.from_coordinates(latitudes, longitudes, store)
        self.variables: dict[str, StoredVariable] = {}
        for position, channel in enumerate(self.channels):
            if not channel.computed:
                field, level = self._select(dataset, channel)
                variable = self.variables.setdefault(channel.variable, StoredVariable(field, [], [], level is not None))
                variable.positions.append(position)
                variable.levels.extend([] if level is None else [level])
        self.computed = [(position, channel) for position, channel in enumerate(self.channels) if channel.computed]
        self.attrs = {
            str(channel): {"units": UNITS[channel.variable]}
            if channel.computed
            else dict(self.variables[channel.variable].field.attrs)
            for channel in self.channels
        }

    def _select(self, dataset: xr.Dataset, channel: Channel) -> tuple[xr.DataArray, int | None]:
        """The channel's variable ``([time,] [level,] latitude, longitude)`` and the index of its level."""
        if channel.variable not in dataset.data_vars:
            raise EmulatorError(f"{self.store}: variable {channel.variable!r} not in store")
        field = dataset[channel.variable]
        spatial = {"latitude", "longitude"}
        if not spatial <= set(field.dims) or not set(field.dims) <= spatial | {"time", "level"}:
            raise EmulatorError(
                f"{self.store}: variable {channel.variable!r} has dims {field.dims}, "
                "expected [time,] [level,] latitude, longitude"
            )
        has_level = "level" in field.dims
        if has_level and channel.level is None:
            raise EmulatorError(
                f"{self.store}: variable {channel.variable!r} has levels; name one as '{channel.variable}@LEVEL'"
            )
        if not has_level and channel.level is not None:
            raise EmulatorError(
                f"{self.store}: variable {channel.variable!r} has no levels, but level {channel.level} was asked for"
            )
        level = None
        if has_level:
            if channel.level not in field.level.values:
                raise EmulatorError(f"{self.store}: level {channel.level} of {channel.variable!r} not in store")
            level = int(np.flatnonzero(field.level.values == channel.level)[0])
        return field.transpose(*[dim for dim in ("time", "level", "latitude", "longitude") if dim in field.dims]), level

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

    def _on_grid(self, values: np.ndarray) -> np.ndarray:
        return values if self.regridder is None else self.regridder(values)

    def _computed(self, channel: Channel, times: pd.DatetimeIndex) -> np.ndarray:
        return compute_forcing(channel.variable, times, self.grid.latitudes, self.grid.longitudes)

    def _stored(self, name: str, variable: StoredVariable, selection: slice | np.ndarray) -> np.ndarray:
        """A variable's channels at the selected time indices, ``(time or 1, channel, lat, lon)``, decoded.

        All its levels are read in one selection, so a chunk holding several is decoded once.
        Errors name the store, the variable and the times.
        """
        field = variable.field
        indexers = {"level": as_slice(variable.levels)} if variable.has_levels else {}
        if variable.time_dependent:
            indexers["time"] = selection
        try:
            values = field.variable.isel(indexers).values
        except Exception as error:  # zarr, numcodecs and fsspec raise many types for a bad chunk
            times = self.times[selection]
            where = f"{times[0]}" if len(times) == 1 else f"{times[0]} to {times[-1]}"
            message = str(error).splitlines()[0] if str(error) else ""
            raise EmulatorError(
                f"{self.store}: cannot read {name} at {where}: {type(error).__name__} {message}"
            ) from None
        if not variable.has_levels:
            values = values[..., None, :, :]
        if not variable.time_dependent:
            values = values[None]
        return self._on_grid(values)

    def _assemble(self, times: pd.DatetimeIndex, selection: slice | np.ndarray) -> np.ndarray:
        out = np.empty((len(times), len(self.channels), *self.grid.shape), dtype=np.float32)
        for name, variable in self.variables.items():
            out[:, as_slice(variable.positions)] = self._stored(name, variable, selection)
        for position, channel in self.computed:
            out[:, position] = self._computed(channel, times)
        return out

    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Read the given time indices as a ``(time, channel, lat, lon)`` float32 array."""
        indices = np.asarray(indices, dtype=np.int64)
        return self._assemble(self.times[indices], as_slice(indices))

    def read_at(self, times: pd.DatetimeIndex) -> np.ndarray:
        """Like :meth:`read`, by time; times past the store's end are fine for computed and static channels."""
        indices = self.times.get_indexer(times)
        absent = indices < 0
        stored = [name for name, variable in self.variables.items() if variable.time_dependent]
        if absent.any() and stored:
            raise EmulatorError(
                f"{self.store}: {times[absent][0]} is not in the store (it ends at {self.times[-1]}), "
                f"and {stored[0]} is read from it"
            )
        return self._assemble(times, indices)

    def _lazy_computed(self, channel: Channel, rows: int) -> da.Array:
        """A computed channel as a dask ``(time, lat, lon)`` array, ``rows`` times a chunk."""
        stamps = da.from_array(self.times.asi8, chunks=rows)
        return stamps.map_blocks(
            lambda block: self._computed(channel, pd.DatetimeIndex(block)),
            new_axis=[1, 2],
            chunks=(stamps.chunks[0], (self.grid.nlat,), (self.grid.nlon,)),
            dtype=np.float32,
        )

    def _lazy_stored(self, name: str, variable: StoredVariable, rows: int) -> da.Array:
        """A variable's channels as a dask ``(time, channel, lat, lon)`` array on the model's grid."""
        shape = (len(self.times), len(variable.positions), *self.grid.shape)
        if not variable.time_dependent:
            static = da.from_array(self._stored(name, variable, slice(None)))
            return da.broadcast_to(static, shape, chunks=(rows, -1, -1, -1))
        field = variable.field.isel(level=variable.levels) if variable.has_levels else variable.field
        data = field.variable.chunk({"time": rows}).data
        data = data if variable.has_levels else data[:, None]
        if self.regridder is not None:
            data = data.map_blocks(self._on_grid, chunks=(*data.chunks[:2], (shape[2],), (shape[3],)), dtype=np.float32)
        return data.astype(np.float32)

    def as_dataarray(self) -> xr.DataArray:
        """All channels as one dask ``(time, channel, latitude, longitude)`` array, about 64 MiB a chunk."""
        rows = max(1, CHUNK_BYTES // (4 * self.grid.nlat * self.grid.nlon * len(self.channels)))
        pieces: list[da.Array | None] = [None] * len(self.channels)
        for name, variable in self.variables.items():
            data = self._lazy_stored(name, variable, rows)
            for j, position in enumerate(variable.positions):
                pieces[position] = data[:, j]
        for position, channel in self.computed:
            pieces[position] = self._lazy_computed(channel, rows)
        stacked = da.stack(pieces, axis=1)
        return xr.DataArray(
            stacked,
            dims=("time", "channel", "latitude", "longitude"),
            coords={
                "time": self.times,
                "channel": self.names,
                "latitude": self.grid.latitudes,
                "longitude": self.grid.longitudes,
            },
        )
