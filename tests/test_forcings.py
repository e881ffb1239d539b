"""Computed forcings against closed forms: the Sun's position, the global mean of insolation."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from emulator.cli import main
from emulator.data.forcings import COMPUTED, SOLAR_CONSTANT, compute_forcing
from emulator.grid import Grid
from tests.conftest import tiny_config_tree

GRID = Grid(91, 180)
SPACING = 2.0


def subsolar_point(time: str) -> tuple[float, float]:
    field = compute_forcing("cos_zenith", pd.DatetimeIndex([time]), GRID.latitudes, GRID.longitudes)[0]
    row, column = np.unravel_index(field.argmax(), field.shape)
    assert field.max() == pytest.approx(1.0, abs=2e-4), "the Sun is overhead somewhere"
    return float(GRID.latitudes[row]), float(GRID.longitudes[column])


def test_the_sun_is_overhead_at_the_tropic_at_the_solstices_and_at_noon_meridian() -> None:
    latitude, longitude = subsolar_point("2024-06-20T12:00")
    assert latitude == pytest.approx(23.44, abs=SPACING) and longitude == pytest.approx(0.0, abs=SPACING)
    latitude, longitude = subsolar_point("2024-12-21T00:00")
    assert latitude == pytest.approx(-23.44, abs=SPACING) and longitude == pytest.approx(180.0, abs=SPACING)
    latitude, longitude = subsolar_point("2024-03-20T06:00")  # equinox; the equation of time is -7.5 min
    assert latitude == pytest.approx(0.0, abs=SPACING) and longitude == pytest.approx(90.0 + 1.9, abs=SPACING)


def test_global_mean_insolation_is_a_quarter_of_the_solar_constant_times_the_distance_factor() -> None:
    times = pd.DatetimeIndex(["2024-01-03T05:00", "2024-07-05T17:00"])  # perihelion and aphelion
    insolation = compute_forcing("toa_insolation", times, GRID.latitudes, GRID.longitudes).astype(np.float64)
    mean = (insolation * GRID.area_weights[:, None]).mean(axis=(1, 2))
    distance_ratio = np.array([0.98329, 1.01671])  # r / r0 at perihelion, aphelion
    np.testing.assert_allclose(mean, SOLAR_CONSTANT / 4 / distance_ratio**2, rtol=1e-3)


def test_polar_night_has_no_sunlight_and_time_of_day_follows_longitude() -> None:
    times = pd.DatetimeIndex(["2024-12-21T12:00"])
    insolation = compute_forcing("toa_insolation", times, GRID.latitudes, GRID.longitudes)[0]
    assert insolation[GRID.latitudes > 67.0].max() == 0.0 and insolation[GRID.latitudes < -67.0].min() > 0.0
    sin_day = compute_forcing("sin_time_of_day", times, GRID.latitudes, GRID.longitudes)[0]
    cos_day = compute_forcing("cos_time_of_day", times, GRID.latitudes, GRID.longitudes)[0]
    noon = GRID.longitudes == 0.0  # 12:00 UTC: local noon on the meridian, midnight at 180
    assert cos_day[0, noon] == pytest.approx(-1.0) and cos_day[0, GRID.longitudes == 180.0] == pytest.approx(1.0)
    np.testing.assert_allclose(sin_day**2 + cos_day**2, 1.0, rtol=1e-6)


def test_day_of_year_runs_once_around_the_circle_per_year() -> None:
    times = pd.DatetimeIndex(["2023-01-01T00:00", "2023-07-02T12:00", "2024-01-01T00:00"])
    sin_year = compute_forcing("sin_day_of_year", times, GRID.latitudes, GRID.longitudes)[:, 0, 0]
    cos_year = compute_forcing("cos_day_of_year", times, GRID.latitudes, GRID.longitudes)[:, 0, 0]
    np.testing.assert_allclose(cos_year, [1.0, -1.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(sin_year, [0.0, 0.0, 0.0], atol=1e-2)
    assert set(COMPUTED) >= {"cos_zenith", "toa_insolation", "sin_day_of_year"}


def test_a_model_with_computed_forcings_trains_and_forecasts_past_the_store(
    world_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tiny_config_tree(world_store, tmp_path)
    tree["data"]["forcing"] = ["toa_insolation", "cos_time_of_day", "sin_time_of_day"]
    tree["train"].update(epochs=1, max_steps=2)
    tree["forecast"].update(init_time="latest", lead_steps=4)
    config = tmp_path / "forced.yaml"
    config.write_text(yaml.safe_dump(tree))
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0
    assert main(["forecast", "--config", str(config), "--device", "cpu"]) == 0
    forecast = next((tmp_path / "outputs").glob("forecast_*.nc"))
    with xr.open_dataset(forecast) as dataset:
        assert dataset.sizes["lead_time"] == 4 and bool(np.isfinite(dataset["geopotential"]).all())
    tree["data"]["forcing"] = ["geopotential@250"]
    config.write_text(yaml.safe_dump(tree))
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0
    assert main(["forecast", "--config", str(config), "--device", "cpu"]) == 1
    assert "2000-01-05 00:00:00 is not in the store (it ends at 2000-01-04 18:00:00)" in capsys.readouterr().err
