"""Read forecast files (NetCDF or Zarr, CF or WeatherBench2 names) back as channels."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from emulator.errors import EmulatorError
from emulator.io.layout import DIMENSION_NAMES

FIELD_DIMS = ("member", "init_time", "lead_time", "latitude", "longitude")


def open_forecast(path: str | Path) -> xr.Dataset:
    """Open a forecast lazily, lead times decoded as timedeltas, dimensions by their CF names."""
    engine = "zarr" if Path(path).suffix == ".zarr" else None
    try:
        forecast = xr.open_dataset(path, engine=engine, decode_timedelta=True)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise EmulatorError(f"{path}: cannot open forecast ({error})") from None
    cf, weatherbench2 = DIMENSION_NAMES["cf"], DIMENSION_NAMES["weatherbench2"]
    if weatherbench2.lead_time in forecast.dims:
        forecast = forecast.rename(
            {getattr(weatherbench2, name): getattr(cf, name) for name in ("member", "init_time", "lead_time")}
        )
    return forecast


def forecast_channels(forecast: xr.Dataset) -> dict[str, xr.DataArray]:
    """Every channel of the forecast as a ``(member, init_time, lead_time, lat, lon)`` array."""
    fields = {}
    for name, variable in forecast.data_vars.items():
        if set(FIELD_DIMS) - set(variable.dims):
            continue
        if "level" in variable.dims:
            for level in variable.level.values:
                fields[f"{name}@{int(level)}"] = variable.sel(level=level, drop=True)
        else:
            fields[str(name)] = variable
    return fields
