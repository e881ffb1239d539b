"""Forecast NetCDF: CF layout, lead step by lead step, atomic."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from emulator.grid import Grid
from emulator.io.forecast_reader import forecast_channels, open_forecast
from emulator.io.forecast_writer import ForecastWriter
from emulator.io.netcdf import atomic_netcdf

CHANNELS = ["geopotential@500", "geopotential@850", "2m_temperature"]
GRID = Grid(8, 16)


def write(path: Path, steps: int, fail_at: int | None = None) -> np.ndarray:
    states = np.random.default_rng(0).normal(size=(steps, 2, 3, 8, 16)).astype(np.float32)
    attrs = {"2m_temperature": {"units": "K", "long_name": "2 metre temperature"}}
    with atomic_netcdf(path) as dataset:
        writer = ForecastWriter(
            dataset, CHANNELS, attrs, GRID, pd.Timestamp("2020-01-01T12"), 2, {"checkpoint_sha256": "abc"}
        )
        for lead in range(steps):
            if lead == fail_at:
                raise RuntimeError("killed")
            writer.write(lead, 6.0 * (lead + 1), states[lead])
    return states


def test_forecast_file_is_cf_and_round_trips(tmp_path: Path) -> None:
    states = write(tmp_path / "f.nc", steps=3)
    with open_forecast(tmp_path / "f.nc") as ds:
        assert ds.attrs["Conventions"].startswith("CF-") and ds.attrs["checkpoint_sha256"] == "abc"
        assert ds.geopotential.dims == ("member", "init_time", "lead_time", "level", "latitude", "longitude")
        assert ds.level.values.tolist() == [500, 850]
        assert ds["2m_temperature"].attrs["units"] == "K"
        assert ds.lead_time.values[-1] == np.timedelta64(18, "h")
        assert pd.Timestamp(ds.init_time.values[0]) == pd.Timestamp("2020-01-01T12")
        channels = forecast_channels(ds)
        assert list(channels) == ["geopotential@500", "geopotential@850", "2m_temperature"]
        np.testing.assert_array_equal(channels["geopotential@850"].values[:, 0], states[:, :, 1].transpose(1, 0, 2, 3))


def test_a_killed_write_leaves_no_file_that_looks_complete(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="killed"):
        write(tmp_path / "f.nc", steps=5, fail_at=2)
    assert not (tmp_path / "f.nc").exists()
    with xr.open_dataset(tmp_path / "f.nc.partial", decode_timedelta=True) as partial:
        assert partial.sizes["lead_time"] == 2, "what was written so far stays readable"
