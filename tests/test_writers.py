"""Forecast NetCDF: CF layout, lead step by lead step, atomic."""

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from emulator.grid import Grid
from emulator.io.forecast_reader import FIELD_DIMS, forecast_channels, open_forecast
from emulator.io.layout import Compression, ForecastLayout, Naming
from emulator.io.output import forecast_output

CHANNELS = ["geopotential@500", "geopotential@850", "2m_temperature"]
GRID = Grid(8, 16)


def write(
    path: Path,
    steps: int,
    fail_at: int | None = None,
    naming: Naming = "cf",
    compression: Compression = "zlib",
    background: bool = False,
) -> np.ndarray:
    states = np.random.default_rng(0).normal(size=(steps, 2, 3, 8, 16)).astype(np.float32)
    attrs = {"2m_temperature": {"units": "K", "long_name": "2 metre temperature"}}
    leads = [6.0 * (lead + 1) for lead in range(steps)]
    layout = ForecastLayout(
        CHANNELS,
        attrs,
        GRID,
        pd.Timestamp("2020-01-01T12"),
        [0, 1],
        leads,
        {"checkpoint_sha256": "abc"},
        naming,
        compression,
    )
    with forecast_output(path, layout, background) as writer:
        for lead in range(steps):
            if lead == fail_at:
                raise RuntimeError("killed")
            for member in (1, 0):  # rows in any order
                writer.write(lead, states[lead][member : member + 1], np.array([member]))
    return states


@pytest.mark.parametrize("background", [False, True])
def test_forecast_file_is_cf_and_round_trips(tmp_path: Path, background: bool) -> None:
    states = write(tmp_path / "f.nc", steps=3, background=background)
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


@pytest.mark.parametrize(("compression", "filter_name"), [("zlib", "zlib"), ("zstd", "zstd"), ("none", None)])
def test_each_compression_is_the_file_filter_and_round_trips(
    tmp_path: Path, compression: Compression, filter_name: str | None
) -> None:
    states = write(tmp_path / "f.nc", steps=2, compression=compression)
    with netCDF4.Dataset(tmp_path / "f.nc") as dataset:
        filters = dataset.variables["geopotential"].filters()
    assert [name for name in ("zlib", "zstd") if filters[name]] == ([filter_name] if filter_name else [])
    with open_forecast(tmp_path / "f.nc") as ds:
        read = forecast_channels(ds)["2m_temperature"].values[:, 0]
    np.testing.assert_array_equal(read, states[:, :, 2].transpose(1, 0, 2, 3))


@pytest.mark.parametrize("background", [False, True])
def test_a_killed_write_leaves_no_file_that_looks_complete(tmp_path: Path, background: bool) -> None:
    with pytest.raises(RuntimeError, match="killed"):
        write(tmp_path / "f.nc", steps=5, fail_at=2, background=background)
    assert not (tmp_path / "f.nc").exists()
    with xr.open_dataset(tmp_path / "f.nc.partial", decode_timedelta=True) as partial:
        assert partial.sizes["lead_time"] == 2, "what was written so far stays readable"


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_variables_levels_listed_in_any_order_go_to_their_levels(tmp_path: Path, suffix: str) -> None:
    channels = ["geopotential@850", "2m_temperature", "geopotential@250", "geopotential@500"]
    layout = ForecastLayout(channels, {}, GRID, pd.Timestamp("2020-01-01"), [0, 1], [6.0], {})
    assert [(t.variable, t.channels, t.level_indices) for t in layout.targets] == [
        ("geopotential", [0, 2, 3], [2, 0, 1]), ("2m_temperature", [1], None),
    ]  # fmt: skip
    state = np.random.default_rng(1).normal(size=(2, 4, 8, 16)).astype(np.float32)
    with forecast_output(tmp_path / f"f{suffix}", layout) as writer:
        writer.write(0, state[1:], np.array([1]))
        writer.write(0, state[:1], np.array([0]))
    with open_forecast(tmp_path / f"f{suffix}") as ds:
        read = forecast_channels(ds)
        for index, channel in enumerate(channels):
            np.testing.assert_array_equal(read[channel].values[:, 0, 0], state[:, index])


def test_a_failed_background_write_is_raised_in_the_caller_and_keeps_the_steps_before(tmp_path: Path) -> None:
    layout = ForecastLayout(CHANNELS, {}, GRID, pd.Timestamp("2020-01-01"), [0], [6.0, 12.0, 18.0], {})
    good = np.zeros((1, 3, 8, 16), np.float32)
    with pytest.raises(ValueError), forecast_output(tmp_path / "f.nc", layout, background=True) as writer:
        writer.write(0, good)
        writer.write(1, good[:, :, :4])  # half a grid: fails in the writer's thread
        writer.write(2, good)  # raises here, or when the block ends
    assert not (tmp_path / "f.nc").exists()
    with xr.open_dataset(tmp_path / "f.nc.partial", decode_timedelta=True) as partial:
        assert partial.sizes["lead_time"] == 1


def test_a_background_status_is_set_after_every_queued_step(tmp_path: Path) -> None:
    layout = ForecastLayout(CHANNELS, {}, GRID, pd.Timestamp("2020-01-01"), [0], [6.0, 12.0, 18.0], {})
    states = np.random.default_rng(2).normal(size=(3, 1, 3, 8, 16)).astype(np.float32)
    with pytest.raises(RuntimeError, match="diverged"), forecast_output(tmp_path / "f.nc", layout, True) as writer:
        for lead, state in enumerate(states):
            writer.write(lead, state)
        writer.set_status("diverged after step 3")
        raise RuntimeError("diverged")
    with open_forecast(tmp_path / "f.nc.partial") as partial:
        assert partial.attrs["rollout_status"] == "diverged after step 3"
        read = forecast_channels(partial)["2m_temperature"].values[0, 0]
    np.testing.assert_array_equal(read, states[:, 0, 2])


@pytest.mark.parametrize("naming", ["cf", "weatherbench2"])
def test_zarr_output_matches_netcdf_and_weatherbench2_names_read_back(tmp_path: Path, naming: Naming) -> None:
    states = write(tmp_path / "f.nc", steps=3, naming=naming)
    write(tmp_path / "f.zarr", steps=3, naming=naming)
    assert not (tmp_path / "f.zarr.partial").exists()
    raw = xr.open_zarr(tmp_path / "f.zarr", decode_timedelta=True)
    expected = ("realization", "time", "prediction_timedelta") if naming == "weatherbench2" else FIELD_DIMS[:3]
    assert raw.geopotential.dims == (*expected, "level", "latitude", "longitude")
    assert raw.geopotential.encoding["chunks"] == (1, 1, 1, 1, 8, 16), "one chunk per member, lead and level"
    assert raw[expected[2]].values[-1] == np.timedelta64(18, "h")
    with open_forecast(tmp_path / "f.nc") as netcdf, open_forecast(tmp_path / "f.zarr") as zarr:
        assert zarr.attrs == netcdf.attrs and zarr.geopotential.dims == netcdf.geopotential.dims == (
            *FIELD_DIMS[:3],
            "level",
            "latitude",
            "longitude",
        )
        assert zarr["2m_temperature"].attrs["units"] == "K"
        xr.testing.assert_identical(zarr.load(), netcdf.load())
        np.testing.assert_array_equal(
            forecast_channels(zarr)["2m_temperature"].values[:, 0], states[:, :, 2].transpose(1, 0, 2, 3)
        )


def test_a_killed_zarr_write_leaves_no_store_that_looks_complete(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="killed"):
        write(tmp_path / "f.zarr", steps=5, fail_at=2)
    assert not (tmp_path / "f.zarr").exists() and (tmp_path / "f.zarr.partial").is_dir()
    write(tmp_path / "f.zarr", steps=2)
    assert (tmp_path / "f.zarr").is_dir() and not (tmp_path / "f.zarr.partial").exists()
