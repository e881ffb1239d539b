"""The source reads any orientation of the reanalysis layout into one orientation."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from emulator.data.forcings import compute_forcing
from emulator.data.regrid import RegridConfig, Regridder
from emulator.data.source import Channel, ZarrSource
from emulator.errors import EmulatorError
from emulator.grid import Grid
from tests.conftest import CHANNELS

NAVY_WINDS = Path(__file__).parent / "data" / "navy_winds_1982.zarr"


def rewrite(store: Path, target: Path, transform) -> Path:
    transform(xr.open_zarr(store).load()).to_zarr(target, zarr_format=3)
    return target


def test_channels_come_out_north_to_south(world_store: Path) -> None:
    source = ZarrSource(str(world_store), CHANNELS)
    raw = xr.open_zarr(world_store)
    out = source.read([0, 3])
    assert out.shape == (2, 3, 32, 64) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, 1], raw.u_component_of_wind.isel(time=3, level=0).values[::-1])
    assert source.grid.kind == "equiangular"
    assert source.grid.latitudes[0] == pytest.approx(90.0)


def test_descending_latitude_and_signed_longitude_give_the_same_arrays(world_store: Path, tmp_path: Path) -> None:
    def flip(ds: xr.Dataset) -> xr.Dataset:
        ds = ds.isel(latitude=slice(None, None, -1))
        ds = ds.assign_coords(longitude=((ds.longitude + 180) % 360) - 180)
        return ds.sortby("longitude")

    flipped = rewrite(world_store, tmp_path / "flipped.zarr", flip)
    np.testing.assert_array_equal(
        ZarrSource(str(flipped), CHANNELS).read([0, 5]), ZarrSource(str(world_store), CHANNELS).read([0, 5])
    )


def test_static_field_is_repeated_along_time(world_store: Path, tmp_path: Path) -> None:
    def add_mask(ds: xr.Dataset) -> xr.Dataset:
        mask = (ds.latitude > 0).astype("float32") * xr.ones_like(ds.longitude, dtype="float32")
        return ds.assign(land_sea_mask=mask.transpose("latitude", "longitude"))

    store = rewrite(world_store, tmp_path / "static.zarr", add_mask)
    out = ZarrSource(str(store), ["land_sea_mask"]).read([0, 7])
    np.testing.assert_array_equal(out[0], out[1])
    assert out[0, 0, 0].min() == 1.0 and out[0, 0, -1].max() == 0.0, "north is first"


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("temperature@250", "variable 'temperature' not in store"),
        ("geopotential@500", "level 500 of 'geopotential' not in store"),
        ("geopotential", "has levels"),
        ("geopotential@abc", "is not of the form"),
    ],
)
def test_bad_channels_are_named(world_store: Path, channel: str, message: str) -> None:
    with pytest.raises(EmulatorError, match=message):
        ZarrSource(str(world_store), [channel])


def test_missing_store_and_unknown_time(world_store: Path, tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="no Zarr store"):
        ZarrSource(str(tmp_path / "absent.zarr"), CHANNELS)
    with pytest.raises(EmulatorError, match="initial time 1999-01-01 00:00:00 not in store"):
        ZarrSource(str(world_store), CHANNELS).time_index("1999-01-01")


def test_channel_round_trip() -> None:
    assert str(Channel.parse("temperature@850")) == "temperature@850"
    assert Channel.parse("2m_temperature") == Channel("2m_temperature", None)


def world(store: Path) -> xr.Dataset:
    """The built-in world in memory, with no encoding carried over from its Zarr v3 store."""
    dataset = xr.open_zarr(store).load()
    for variable in dataset.variables.values():
        variable.encoding = {}
    return dataset


def reference(world_store: Path) -> np.ndarray:
    return ZarrSource(str(world_store), CHANNELS).read(np.arange(16))


@pytest.mark.parametrize("consolidated", [True, False])
def test_zarr_v2_stores_consolidated_or_not_read_the_same(
    world_store: Path, tmp_path: Path, consolidated: bool
) -> None:
    world(world_store).to_zarr(tmp_path / "v2.zarr", zarr_format=2, consolidated=consolidated)
    np.testing.assert_array_equal(
        ZarrSource(str(tmp_path / "v2.zarr"), CHANNELS).read(np.arange(16)), reference(world_store)
    )


def test_fsspec_urls_read_the_same(world_store: Path, tmp_path: Path) -> None:
    url = f"memory://{tmp_path.name}/world.zarr"
    world(world_store).to_zarr(url, zarr_format=3)
    np.testing.assert_array_equal(ZarrSource(url, CHANNELS).read(np.arange(16)), reference(world_store))
    np.testing.assert_array_equal(ZarrSource(f"file://{world_store}", CHANNELS).read([3]), reference(world_store)[3:4])


def test_numeric_time_with_cf_units_is_decoded(world_store: Path, tmp_path: Path) -> None:
    dataset = world(world_store)
    dataset.time.encoding = {
        "units": "hours since 1959-01-01 00:00:00",
        "calendar": "proleptic_gregorian",
        "dtype": "int64",
    }
    dataset.to_zarr(tmp_path / "cf.zarr", zarr_format=3)
    assert xr.open_zarr(tmp_path / "cf.zarr", decode_times=False).time.dtype == np.int64
    source = ZarrSource(str(tmp_path / "cf.zarr"), CHANNELS)
    assert source.times.equals(ZarrSource(str(world_store), CHANNELS).times)


def test_time_without_units_is_refused(world_store: Path, tmp_path: Path) -> None:
    dataset = world(world_store)
    dataset.assign_coords(time=np.arange(16.0)).to_zarr(tmp_path / "raw.zarr", zarr_format=3)
    with pytest.raises(EmulatorError, match=r"raw.zarr: time is not decoded as dates \(float64\); give it CF units"):
        ZarrSource(str(tmp_path / "raw.zarr"), CHANNELS)


@pytest.mark.parametrize(
    ("encoding", "tolerance"),
    [
        ({"dtype": "int16", "scale_factor": 0.05, "add_offset": 0.0, "_FillValue": -32768}, 0.025),
        ({"dtype": "float16"}, 0.05),
        ({"dtype": "float64"}, 0.0),
    ],
    ids=["scale-offset", "float16", "float64"],
)
def test_packed_and_other_precisions_decode_to_float32(
    world_store: Path, tmp_path: Path, encoding: dict, tolerance: float
) -> None:
    dataset = world(world_store)
    dataset.to_zarr(tmp_path / "packed.zarr", zarr_format=3, encoding={"u_component_of_wind": encoding})
    out = ZarrSource(str(tmp_path / "packed.zarr"), CHANNELS).read(np.arange(16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference(world_store), atol=tolerance, rtol=1e-3 if tolerance else 0)


@pytest.mark.parametrize(
    ("times", "message"),
    [([0, 1, 1, 3], "time 2000-01-01 06:00:00 appears more than once"), ([0, 2, 1, 3], "not sorted: 2000-01-01 06:00")],
)
def test_repeated_or_unsorted_times_are_named(world_store: Path, tmp_path: Path, times: list, message: str) -> None:
    dataset = world(world_store)
    dataset.isel(time=times).to_zarr(tmp_path / "bad.zarr", zarr_format=3)
    with pytest.raises(EmulatorError, match=message):
        ZarrSource(str(tmp_path / "bad.zarr"), CHANNELS)


def synthetic(latitudes: np.ndarray, longitudes: np.ndarray, times: int = 4) -> xr.Dataset:
    """A smooth field of latitude and longitude, on any grid."""
    phi, lam = np.deg2rad(latitudes)[:, None], np.deg2rad(longitudes)[None, :]
    field = np.sin(phi) + np.cos(phi) * np.cos(lam) + np.zeros((times, 1, 1))
    return xr.Dataset(
        {"2m_temperature": (("time", "latitude", "longitude"), (280.0 + 10 * field).astype(np.float32))},
        coords={
            "time": pd.date_range("2020-01-01", periods=times, freq="6h"),
            "latitude": latitudes,
            "longitude": longitudes,
        },
    )


def test_legendre_gauss_store_without_poles_is_taken_as_is(tmp_path: Path) -> None:
    grid = Grid(24, 48, "legendre-gauss")
    synthetic(grid.latitudes[::-1], grid.longitudes).to_zarr(tmp_path / "gauss.zarr", zarr_format=3)
    source = ZarrSource(str(tmp_path / "gauss.zarr"), ["2m_temperature"])
    assert source.grid == grid


def test_grid_without_quadrature_needs_regridding(tmp_path: Path) -> None:
    latitudes, longitudes = np.linspace(-87.1875, 87.1875, 32), np.arange(64) * 5.625 - 180.0
    synthetic(latitudes, longitudes).to_zarr(tmp_path / "wb2.zarr", zarr_format=3)
    with pytest.raises(EmulatorError, match=r"wb2.zarr: the 32 latitudes match no grid.*set data.regrid"):
        ZarrSource(str(tmp_path / "wb2.zarr"), ["2m_temperature"])
    regrid = RegridConfig(nlat=32, nlon=64, kind="legendre-gauss", method="bilinear")
    source = ZarrSource(str(tmp_path / "wb2.zarr"), ["2m_temperature"], regrid)
    out = source.read([0, 1])
    assert out.shape == (2, 1, 32, 64) and source.grid == regrid.grid
    expected = synthetic(regrid.grid.latitudes, regrid.grid.longitudes)["2m_temperature"].values[0]
    np.testing.assert_allclose(out[0, 0], expected, atol=0.2)  # bilinear error at 5.6 degrees


def test_spectral_regridding_in_the_source_and_its_dask_view_agree(world_store: Path) -> None:
    regrid = RegridConfig(nlat=16, nlon=32, kind="legendre-gauss")
    source = ZarrSource(str(world_store), CHANNELS, regrid)
    native = ZarrSource(str(world_store), CHANNELS).read([2, 3])
    np.testing.assert_allclose(
        source.read([2, 3]), Regridder(*native_coords(world_store), regrid, "x")(native), atol=1e-4
    )
    np.testing.assert_allclose(source.as_dataarray().isel(time=[2, 3]).values, source.read([2, 3]), atol=1e-5)


def native_coords(store: Path) -> tuple[np.ndarray, np.ndarray]:
    grid = ZarrSource(str(store), CHANNELS).grid
    return grid.latitudes, grid.longitudes


def test_computed_and_static_forcings_reach_past_the_store(world_store: Path, tmp_path: Path) -> None:
    def add_mask(ds: xr.Dataset) -> xr.Dataset:
        mask = (ds.latitude > 0).astype("float32") * xr.ones_like(ds.longitude, dtype="float32")
        return ds.assign(land_sea_mask=mask.transpose("latitude", "longitude"))

    store = str(rewrite(world_store, tmp_path / "static.zarr", add_mask))
    forcing = ZarrSource(store, ["toa_insolation", "land_sea_mask", "cos_day_of_year"])
    later = pd.DatetimeIndex(["2000-01-01T06:00", "2000-03-01T00:00"])
    out = forcing.read_at(later)
    grid = forcing.grid
    np.testing.assert_array_equal(out[0], forcing.read([1])[0])
    np.testing.assert_allclose(
        out[1, 0], compute_forcing("toa_insolation", later[1:], grid.latitudes, grid.longitudes)[0]
    )
    np.testing.assert_array_equal(out[1, 1], out[0, 1])
    assert forcing.attrs["toa_insolation"]["units"] == "W m-2"
    np.testing.assert_allclose(forcing.as_dataarray().isel(time=[1]).values, forcing.read([1]))
    with pytest.raises(EmulatorError, match=r"2000-03-01 00:00:00 is not in the store.*geopotential is read from it"):
        ZarrSource(store, ["geopotential@250", "toa_insolation"]).read_at(later)


def test_unreadable_chunk_names_store_channel_and_time(world_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "broken.zarr"
    shutil.copytree(world_store, store)
    (store / "v_component_of_wind" / "c" / "5" / "0" / "0" / "0").write_bytes(b"not a compressed chunk")  # time 5
    source = ZarrSource(str(store), CHANNELS)
    source.read([4])
    with pytest.raises(EmulatorError, match=r"broken.zarr: cannot read v_component_of_wind at 2000-01-02 00:00:00 to"):
        source.read([4, 5, 6])


def test_real_navy_winds_stream_in_one_orientation() -> None:
    channels = ["10m_u_component_of_wind", "10m_v_component_of_wind"]
    source = ZarrSource(str(NAVY_WINDS), channels)
    raw = xr.open_zarr(NAVY_WINDS, decode_times=False)
    assert source.grid == Grid(73, 144, "equiangular") and len(source) == 12
    assert source.times[0] == pd.Timestamp("1982-01-16T20:00")
    out = source.read(np.arange(12))
    greenwich = int(np.flatnonzero(raw.longitude.values == 360.0)[0])  # stored from 20 to 377.5 degrees east
    np.testing.assert_array_equal(out[:, 0, :, 0], raw["10m_u_component_of_wind"].values[:, ::-1, greenwich])
    tropics = np.abs(source.grid.latitudes) < 15
    assert out[:, 0, tropics].mean() < -1.0, "trade winds blow from the east"


def test_levels_of_one_variable_are_read_together_in_the_order_asked(world_store: Path, tmp_path: Path) -> None:
    dataset = world(world_store)
    two_levels = xr.concat([dataset, (dataset * 2.0).assign_coords(level=[500])], dim="level")
    two_levels.to_zarr(tmp_path / "levels.zarr", zarr_format=3)
    channels = ["geopotential@500", "u_component_of_wind@250", "geopotential@250"]
    source = ZarrSource(str(tmp_path / "levels.zarr"), channels)
    out = source.read([1, 2])
    single = ZarrSource(str(world_store), CHANNELS).read([1, 2])
    np.testing.assert_array_equal(out[:, 0], 2.0 * single[:, 0])
    np.testing.assert_array_equal(out[:, 1], single[:, 1])
    np.testing.assert_array_equal(out[:, 2], single[:, 0])
    np.testing.assert_array_equal(source.as_dataarray().isel(time=[1, 2]).values, out)
