"""Read forecast NetCDF files back as channels (``variable`` or ``variable@level``)."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from emulator.errors import EmulatorError

FIELD_DIMS = ("member", "init_time", "lead_time", "latitude", "longitude")


def open_forecast(path: str | Path) -> xr.Dataset:
    """Open a forecast file lazily, lead times decoded as timedeltas."""
    try:
        return xr.open_dataset(path, decode_timedelta=True)
    except (FileNotFoundError, OSError, ValueError) as error:
        raise EmulatorError(f"{path}: cannot open forecast ({error})") from None


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
