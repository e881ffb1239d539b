"""The ERA5 configs fit WeatherBench2's layout: a store with its names, levels and grids ingests."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from emulator.cli import main
from emulator.config import load_config
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError

CONFIGS = Path(__file__).parents[1] / "configs"
LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
UPPER = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity"]
SURFACE = ["2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind", "mean_sea_level_pressure"]
GRIDS = {  # WeatherBench2's grids: latitude ascending, longitude from 0
    "64x32": (np.linspace(-87.1875, 87.1875, 32), np.arange(64) * 5.625),
    "240x121": (np.linspace(-90.0, 90.0, 121), np.arange(240) * 1.5),
}


def weatherbench2_like(path: Path, latitudes: np.ndarray, longitudes: np.ndarray) -> Path:
    """Three 6-hourly times in WeatherBench2's layout, names and levels; random values."""
    rng = np.random.default_rng(0)
    times = pd.date_range("1979-01-01", periods=3, freq="6h")
    shape = (len(times), len(LEVELS), len(latitudes), len(longitudes))
    upper = {
        name: (("time", "level", "latitude", "longitude"), rng.normal(size=shape).astype("float32")) for name in UPPER
    }
    surface = {
        name: (("time", "latitude", "longitude"), rng.normal(size=(shape[0], *shape[2:])).astype("float32"))
        for name in SURFACE
    }
    static = {
        name: (("latitude", "longitude"), rng.uniform(size=shape[2:]).astype("float32"))
        for name in ("land_sea_mask", "geopotential_at_surface")
    }
    coords = {"time": times, "level": LEVELS, "latitude": latitudes, "longitude": longitudes}
    xr.Dataset({**upper, **surface, **static}, coords=coords).to_zarr(path, zarr_format=2, consolidated=True)
    return path


@pytest.mark.parametrize("name", list(GRIDS))
def test_era5_config_ingests_a_store_of_weatherbench2_layout(name: str, tmp_path: Path) -> None:
    config = load_config(CONFIGS / f"era5_{name}.yaml")
    assert len(config.data.prognostic) == 69 and "toa_insolation" in config.data.forcing
    store = weatherbench2_like(tmp_path / f"era5_{name}.zarr", *GRIDS[name])
    stats = tmp_path / "stats.nc"
    arguments = ["ingest", "--config", str(CONFIGS / f"era5_{name}.yaml"), "--set", f"data.store={store}"]
    arguments += ["--set", "data.train_period=[1979-01-01, 1979-01-01T12:00]", "--output", str(stats)]
    assert main([*arguments, "--climatology", str(tmp_path / "climatology.nc")]) == 0
    assert len(Normalizer.load(stats).channels) == 69 + 7


def test_overlapping_periods_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="data: Value error, train_period and test_period overlap"):
        load_config(CONFIGS / "era5_64x32.yaml", ["data.test_period=[2017-06-01, 2017-07-01]"])
