"""The default checkpoint, with the controls of configs/world.yaml, on a held-out realisation of the world."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from emulator.cli import main
from emulator.config import load_config
from emulator.ensemble import reproduce_members, run_ensemble
from emulator.evaluation import evaluate_forecast
from emulator.forecast import RolloutOptions, run_forecast
from emulator.io.forecast_reader import open_forecast
from emulator.world.store import write_world_store


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides of configs/world.yaml for two days of a realisation never trained on, written to a store."""
    workdir = tmp_path_factory.mktemp("held_out")
    overrides = [
        f"data.store={workdir / 'held_out.zarr'}",
        "world.seed=11",  # training used seed 1; this realisation was never seen
        "world.spinup_days=15",
        "world.record_days=2",
        "forecast.init_time=2000-01-01T00:00",
        "forecast.lead_steps=4",
    ]
    config = load_config("configs/world.yaml", overrides)
    assert config.world is not None
    write_world_store(config.world, config.data.store)
    return overrides


def test_default_checkpoint_beats_persistence_at_24_hours(held_out: list[str], tmp_path: Path) -> None:
    config = load_config("configs/world.yaml", [*held_out, f"forecast.output_dir={tmp_path}"])
    products = run_forecast(config, RolloutOptions(device="cpu"))
    scores = evaluate_forecast(products["forecast"], config.data.store).sel(lead_time=pd.Timedelta(hours=24))
    ratio = scores.rmse / scores.rmse_persistence
    assert (ratio < 0.9).all(), ratio.to_series().to_dict()


def test_a_climate_run_adds_the_config_s_forcing_and_a_forecast_does_not(held_out: list[str], tmp_path: Path) -> None:
    overrides = [part for override in held_out for part in ("--set", override)]
    forecasts = {}
    for name, flags in (("forecast", []), ("climate", ["--climate"])):
        output = tmp_path / name
        assert main(["forecast", "--config", "configs/world.yaml", *overrides, "--output", str(output), *flags]) == 0
        (path,) = output.glob("forecast_*.nc")
        forecasts[name] = xr.load_dataset(path)
    forcing = load_config("configs/world.yaml").climate.stochastic_forcing
    assert forcing is not None
    recorded = {name: json.loads(data.attrs.pop("stepper_stochastic_forcing")) for name, data in forecasts.items()}
    assert recorded == {"forecast": None, "climate": forcing.model_dump(mode="json")}
    assert forecasts["climate"].attrs == forecasts["forecast"].attrs  # every other control the same
    z = {name: forecast["geopotential"].sel(level=250).values for name, forecast in forecasts.items()}
    assert np.isfinite(z["climate"]).all()
    assert not np.allclose(z["climate"], z["forecast"])


def test_an_ensemble_through_the_climate_forcing_is_reproduced_from_its_recipes(
    held_out: list[str], tmp_path: Path
) -> None:
    config = load_config("configs/world.yaml", [*held_out, "ensemble.climate_forcing=true"])
    options = RolloutOptions(output_dir=str(tmp_path), device="cpu")
    path = run_ensemble(config, members=3, options=options)["ensemble"]
    with open_forecast(path) as ensemble:
        z = ensemble["geopotential"].values
        recorded = json.loads(ensemble.attrs["stepper_stochastic_forcing"])
    assert recorded == config.climate.stochastic_forcing.model_dump(mode="json")  # type: ignore[union-attr]
    assert np.isfinite(z).all() and len({float(z[m, 0, -1].std()) for m in range(3)}) == 3
    again = reproduce_members(config, path, [0, 2], options)
    with open_forecast(again) as members:
        np.testing.assert_array_equal(members["geopotential"].values, z[[0, 2]])
