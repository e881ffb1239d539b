"""Out-of-core, area-weighted statistics of a store's channels with dask.

Each statistic is a sum of per-chunk partial sums reduced by dask, so the result
does not depend on chunking and memory does not grow with the store. Tendencies
``x(t + dt) - x(t)`` are taken only between consecutive times one interval apart;
pairs that straddle a gap in the time axis are left out. The same pass counts
non-finite values per time and channel, so that a NaN is reported with its time
and channel instead of poisoning the statistics.

The work runs on dask's local threaded scheduler, or on a ``dask.distributed``
cluster when its scheduler address is given (the workers must see the store).
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask.diagnostics import ProgressBar
from distributed import Client, progress

from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.errors import EmulatorError

SPACE = ("latitude", "longitude")


def time_step(times: pd.DatetimeIndex) -> pd.Timedelta:
    """The store's sampling interval: the most common spacing of its times."""
    if len(times) < 2:
        raise EmulatorError("a store needs at least two times to define a time step")
    return pd.Series(np.diff(times.values)).mode().iloc[0]


def find_gaps(times: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Pairs of consecutive times further apart than the store's time step."""
    if len(times) < 2:
        return []
    wide = np.flatnonzero(np.diff(times.values) > time_step(times).to_timedelta64())
    return [(times[i], times[i + 1]) for i in wide]


def run_dask(*collections: Any, scheduler: str | None = None, show_progress: bool = False) -> tuple[Any, ...]:
    """Compute dask collections locally (threads) or on the cluster at ``scheduler``, with a progress bar."""
    if scheduler is None:
        if not show_progress:
            return dask.compute(*collections)
        with ProgressBar(dt=1.0):
            return dask.compute(*collections)
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as error:
        raise EmulatorError(f"dask scheduler {scheduler}: cannot connect ({error})") from None
    with client:
        futures = client.compute(list(collections))
        if show_progress:
            progress(futures)
        return tuple(client.gather(futures))


def _first_nonfinite(counts: np.ndarray, source: ZarrSource, indices: np.ndarray) -> None:
    """Raise naming the first time and channel holding NaN or infinite values, if any."""
    bad = np.argwhere(counts > 0)
    if len(bad):
        t, c = bad[0]
        raise EmulatorError(
            f"{source.store}: {int(counts.sum())} NaN or infinite value(s); first in {source.names[c]} "
            f"at {source.times[indices[t]]}"
        )


def _weighted_moments(field: xr.DataArray, weights: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Area-weighted mean and variance over time and space, per channel."""
    mean = field.weighted(weights).mean(("time", *SPACE))
    mean_square = (field**2).weighted(weights).mean(("time", *SPACE))
    return mean, mean_square - mean**2


def compute_statistics(
    source: ZarrSource, indices: np.ndarray, scheduler: str | None = None, show_progress: bool = False
) -> Normalizer:
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
    nonfinite = (~xr.ufuncs.isfinite(field)).sum(SPACE)
    mean, variance, tendency_variance, nonfinite = run_dask(
        mean, variance, tendency_variance, nonfinite, scheduler=scheduler, show_progress=show_progress
    )
    _first_nonfinite(nonfinite.values, source, indices)
    return Normalizer(
        tuple(source.names),
        mean.values,
        np.sqrt(np.maximum(variance.values, 0.0)),
        np.sqrt(np.maximum(tendency_variance.values, 0.0)),
    )


def compute_climatology(
    source: ZarrSource, indices: np.ndarray, scheduler: str | None = None, show_progress: bool = False
) -> xr.DataArray:
    """The time-mean field of every channel over the given indices, ``(channel, latitude, longitude)``."""
    if len(indices) == 0:
        raise EmulatorError(f"{source.store}: the climatology period holds no time")
    lazy = source.as_dataarray().isel(time=indices).astype(np.float64).mean("time")
    (mean,) = run_dask(lazy, scheduler=scheduler, show_progress=show_progress)
    return mean.rename("climatology")
