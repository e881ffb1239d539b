"""Area-weighted scores, xarray in and xarray out (WeatherBench2's conventions).

Each score is an area-weighted mean over latitude and longitude of a pointwise
statistic, with ``w`` the quadrature weights of the grid's latitudes; other dims
(channel, lead_time) are kept. For an ensemble (dim ``member``, ``M`` members):

* ``rmse`` of the ensemble mean, ``bias = mean(mean_m(f) - t)``;
* ``spread = sqrt(mean(var_m(f)))`` with the unbiased member variance, and
  ``spread_skill = spread / rmse`` (1 for a reliable ensemble, up to a factor
  ``sqrt((M + 1) / M)``);
* ``crps``, the fair ensemble estimator
  ``mean_m |f_m - t| - sum_{m != n} |f_m - f_n| / (2 M (M - 1))``.

``acc``, the anomaly correlation against a climatology ``c``:
``mean((f - c)(t - c)) / sqrt(mean((f - c)^2) mean((t - c)^2))``.
"""

from __future__ import annotations

import xarray as xr

from emulator.grid import Grid

SPACE = ("latitude", "longitude")


def latitude_weights(grid: Grid) -> xr.DataArray:
    return xr.DataArray(grid.area_weights, dims="latitude")


def area_mean(field: xr.DataArray, grid: Grid) -> xr.DataArray:
    return field.weighted(latitude_weights(grid)).mean(SPACE)


def rmse(forecast: xr.DataArray, truth: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Root-mean-square error over the sphere; ``forecast`` and ``truth`` share the grid order."""
    return area_mean((forecast - truth) ** 2, grid) ** 0.5


def bias(forecast: xr.DataArray, truth: xr.DataArray, grid: Grid) -> xr.DataArray:
    return area_mean(forecast - truth, grid)


def spread(ensemble: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Square root of the area mean of the unbiased variance across members."""
    return area_mean(ensemble.var("member", ddof=1), grid) ** 0.5


def crps(ensemble: xr.DataArray, truth: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Fair continuous ranked probability score of an ensemble, area-weighted."""
    members = ensemble.sizes["member"]
    skill = abs(ensemble - truth).mean("member")
    other = ensemble.rename(member="other")
    pairs = abs(ensemble - other).sum(("member", "other"))
    return area_mean(skill - pairs / (2 * members * (members - 1)), grid)


def acc(forecast: xr.DataArray, truth: xr.DataArray, climatology: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Area-weighted anomaly correlation coefficient."""
    forecast_anomaly, truth_anomaly = forecast - climatology, truth - climatology
    covariance = area_mean(forecast_anomaly * truth_anomaly, grid)
    return covariance / (area_mean(forecast_anomaly**2, grid) * area_mean(truth_anomaly**2, grid)) ** 0.5
