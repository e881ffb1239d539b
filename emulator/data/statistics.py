"""Out-of-core, area-weighted statistics of a store's channels with dask.

Each statistic is a sum of per-chunk partial sums reduced by dask, so the result
does not depend on chunking and memory does not grow with the store. Tendencies
``x(t + dt) - x(t)`` are taken only between consecutive times one interval apart;
pairs that straddle a gap in the time axis are left out.
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import xarray as xr

from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.errors import EmulatorError

SPACE = ("latitude", "longitude")


def time_step(times: pd.DatetimeIndex) -> pd.Timedelta:
    """The store's sampling interval: the most common spacing of its times."""
    if len(times) < 2:
        raise EmulatorError("a store needs at least two times to define a time step")
    return pd.Series(np.diff(times.values)).mode().iloc[0]


def _weighted_moments(field: xr.DataArray, weights: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Area-weighted mean and variance over time and space, per channel."""
    mean = field.weighted(weights).mean(("time", *SPACE))
    mean_square = (field**2).weighted(weights).mean(("time", *SPACE))
    return mean, mean_square - mean**2


def compute_statistics(source: ZarrSource, indices: np.ndarray) -> Normalizer:
    """Mean, std and tendency std of every channel over the given time indices."""
    if len(indices) < 2:
        raise EmulatorError(
            f"{source.store}: the statistics period holds {len(indices)} time(s); at least two are needed"
        )
    field = source.as_dataarray().isel(time=indices).astype(np.float64)
    weights = xr.DataArray(source.grid.area_weights, dims="latitude")
    times = source.times[indices]
    consecutive = np.diff(times.values) == time_step(source.times).to_timedelta64()
    if not consecutive.any():
        raise EmulatorError(f"{source.store}: no two consecutive times in the statistics period")
    tendency = (field.isel(time=slice(1, None)).data - field.isel(time=slice(None, -1)).data)[consecutive]
    tendency = xr.DataArray(tendency, dims=field.dims)
    mean, variance = _weighted_moments(field, weights)
    _, tendency_variance = _weighted_moments(tendency, weights)
    mean, variance, tendency_variance = dask.compute(mean, variance, tendency_variance)
    return Normalizer(
        tuple(source.names),
        mean.values,
        np.sqrt(np.maximum(variance.values, 0.0)),
        np.sqrt(np.maximum(tendency_variance.values, 0.0)),
    )


def compute_climatology(source: ZarrSource, indices: np.ndarray) -> xr.DataArray:
    """The time-mean field of every channel over the given indices, ``(channel, latitude, longitude)``."""
    if len(indices) == 0:
        raise EmulatorError(f"{source.store}: the climatology period holds no time")
    mean = source.as_dataarray().isel(time=indices).astype(np.float64).mean("time").compute()
    return mean.assign_coords(latitude=source.grid.latitudes, longitude=source.grid.longitudes).rename("climatology")
