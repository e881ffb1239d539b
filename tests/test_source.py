"""The source reads any orientation of the reanalysis layout into one orientation."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from emulator.data.source import Channel, ZarrSource
from emulator.errors import EmulatorError
from tests.conftest import CHANNELS


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
