"""Area-weighted scores, xarray in and xarray out (WeatherBench2's conventions).

``rmse = sqrt(sum_ij w_i (f - t)^2 / sum_ij w_i)`` with ``w`` the quadrature
weights of the grid's latitudes, reduced over latitude and longitude only; other
dims (channel, lead_time, member) are kept.
"""

from __future__ import annotations

import xarray as xr

from emulator.grid import Grid

SPACE = ("latitude", "longitude")


def latitude_weights(grid: Grid) -> xr.DataArray:
    return xr.DataArray(grid.area_weights, dims="latitude")


def rmse(forecast: xr.DataArray, truth: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Root-mean-square error over the sphere; ``forecast`` and ``truth`` share the grid order."""
    squared = (forecast - truth) ** 2
    return squared.weighted(latitude_weights(grid)).mean(SPACE) ** 0.5
