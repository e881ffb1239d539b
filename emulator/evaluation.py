"""Score a forecast file against the truth in a store, next to persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from emulator.data.source import ZarrSource
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.io.forecast_reader import forecast_channels, open_forecast
from emulator.metrics import acc, bias, crps, rmse, spread


def _climatology(path: str | Path, channels: list[str], grid: Grid) -> xr.DataArray:
    """The climatology of ``channels`` on ``grid``, or an error naming what is missing."""
    try:
        with xr.open_dataarray(path) as stored:
            climatology = stored.load()
    except (FileNotFoundError, OSError, ValueError) as error:
        raise EmulatorError(f"{path}: cannot read climatology ({error})") from None
    missing = sorted(set(channels) - {str(c) for c in climatology.channel.values})
    if missing:
        raise EmulatorError(f"{path}: climatology lacks channels {missing}")
    if climatology.sizes["latitude"] != grid.nlat or climatology.sizes["longitude"] != grid.nlon:
        raise EmulatorError(f"{path}: climatology grid differs from the forecast's {grid.nlat}x{grid.nlon}")
    return climatology.sel(channel=channels).assign_coords(latitude=grid.latitudes, longitude=grid.longitudes)


def evaluate_forecast(forecast_path: str | Path, store: str, climatology: str | Path | None = None) -> xr.Dataset:
    """Scores of a forecast or ensemble file, per channel and lead time, next to persistence.

    RMSE and bias (of the ensemble mean), and for several members spread,
    spread/skill and CRPS, and with a climatology file (from ``emulator ingest``) the
    ACC (see :mod:`emulator.metrics`). Only lead times whose valid time is in the
    store are scored.
    """
    with open_forecast(forecast_path) as forecast:
        fields = {name: field.isel(init_time=0).load() for name, field in forecast_channels(forecast).items()}
        init = pd.Timestamp(forecast.init_time.values[0])
        grid = Grid.from_coordinates(forecast.latitude.values, forecast.longitude.values, str(forecast_path))
        leads = pd.to_timedelta(forecast.lead_time.values)
    source = ZarrSource(store, list(fields))
    if source.grid != grid:
        raise EmulatorError(f"{forecast_path}: forecast grid differs from store {store} grid")
    valid = [lead for lead in leads if init + lead in source.times]
    if not valid:
        raise EmulatorError(f"{forecast_path}: no lead time of the forecast is in store {store}")
    truth = source.read([source.time_index(init + lead) for lead in valid])
    initial = source.read([source.time_index(init)])
    dims = ("lead_time", "channel", "latitude", "longitude")
    coords = {"lead_time": valid, "channel": list(fields), "latitude": grid.latitudes, "longitude": grid.longitudes}
    truth_array = xr.DataArray(truth, dims=dims, coords=coords)
    ensemble = xr.concat([f.sel(lead_time=valid) for f in fields.values()], dim="channel")
    ensemble = ensemble.transpose("member", *dims).assign_coords(coords)
    mean = ensemble.mean("member")
    persistence = xr.DataArray(np.broadcast_to(initial, truth.shape), dims=dims, coords=coords)
    scores = {
        "rmse": rmse(mean, truth_array, grid),
        "bias": bias(mean, truth_array, grid),
        "rmse_persistence": rmse(persistence, truth_array, grid),
    }
    if ensemble.sizes["member"] > 1:
        scores["spread"] = spread(ensemble, grid)
        scores["spread_skill"] = scores["spread"] / scores["rmse"]
        scores["crps"] = crps(ensemble, truth_array, grid)
    if climatology is not None:
        scores["acc"] = acc(mean, truth_array, _climatology(climatology, list(fields), grid), grid)
    attrs = {"forecast": Path(forecast_path).name, "truth_store": store, "init_time": init.isoformat()}
    return xr.Dataset(
        {name: score.drop_attrs() for name, score in scores.items()},
        attrs=attrs | {"members": ensemble.sizes["member"]},
    )
