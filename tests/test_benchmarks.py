"""Every benchmark runs in quick mode and prints well-formed JSON lines; one_step_bias on a given store."""

import json
import math
import os
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from benchmarks.__main__ import BENCHMARKS
from benchmarks.skill import (
    STEPS_PER_DAY,
    YEAR_DAYS,
    RolloutScores,
    truth_climate,
    truth_store,
    world_checkpoint,
)
from emulator.config import StepperConfig
from emulator.data.source import ZarrSource
from emulator.grid import Grid
from tests.conftest import CHANNELS

LOW_MODES = {f"{degree},{order}" for degree in (1, 2, 3) for order in range(degree + 1)}


def quick_records(name: str, *options: str) -> list[dict]:
    """The JSON records of ``python -m benchmarks NAME --quick OPTIONS``, checked for form; the run leaves no
    temporary file behind."""
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks", name, "--quick", *options],
            capture_output=True, text=True, check=True, timeout=300, env=os.environ | {"TMPDIR": scratch},
        )  # fmt: skip
        assert not list(Path(scratch).iterdir()), f"{name} left {sorted(Path(scratch).iterdir())}"
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records, result.stderr
    for record in records:
        assert record["bench"] == name and record["device"] == "cpu"
        assert isinstance(record["value"], float) and math.isfinite(record["value"])
        assert isinstance(record["config"], dict)
    return records


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_quick_prints_json_figures(name: str) -> None:
    quick_records(name)


def test_climate_takes_config_overrides_and_records_them() -> None:
    records = quick_records(
        "climate",
        "--set", "stepper.balance={strength: 0.2, min_degree: 8}",
        "--set", "stepper.divergent_wind={strength: 0.5, max_degree: 3, more_bands: [{min_degree: 16}]}",
    )  # fmt: skip
    controls = json.loads(next(r for r in records if r["figure"] == "steps_to_nonfinite")["config"]["controls"])
    orders = {"min_order": 0, "max_order": None}
    assert controls["balance"] == {"strength": 0.2, "min_degree": 8, "max_degree": None, "more_bands": []} | orders
    upper = {"strength": 0.1, "min_degree": 16, "max_degree": None} | orders
    lower = {"strength": 0.5, "min_degree": 1, "max_degree": 3, "more_bands": [upper]} | orders
    assert controls["divergent_wind"] == lower
    shares = {r["figure"]: r for r in records if r["figure"].endswith("_end") and "truth" in r["config"]}
    assert set(shares) == {"unbalanced_geopotential_end", "divergent_kinetic_energy_end", "tilt_wave_coherence_end"}
    assert all(r["config"]["truth"] >= 0 and r["value"] >= 0 for r in shares.values())
    within = next(r for r in records if r["figure"] == "bands_within_tolerance_end")
    assert within["config"]["tolerance"] == 0.1 and 0 <= within["value"] <= within["config"]["bands"] == 20
    gap = next(r for r in records if r["figure"] == "zonal_band_gap_end")
    quantity, _, band = gap["config"]["band"].rpartition(" ")
    assert quantity in [*CHANNELS, "kinetic_energy@250"] and band in {"1-1", "2-3", "4-7", "8-15", "16-31"}
    assert gap["value"] == pytest.approx(abs(gap["config"]["share"] - gap["config"]["truth_share"]), abs=2e-4)
    for whole, departures in (("share", "variability_share"), ("truth_share", "truth_variability_share")):
        assert 0 <= gap["config"][departures] <= gap["config"][whole] + 1e-4
    zonal = {(r["figure"], r["config"]["channel"]): r for r in records if "channel" in r["config"]}
    scores = ("offset", "spread", "persistence_1d")  # the truth of --quick has four days: no longer lag
    assert set(zonal) == {(f"zonal_{score}_end", channel) for score in scores for channel in CHANNELS}
    assert all(zonal[f"zonal_{score}_end", channel]["value"] > 0 for score in scores[:2] for channel in CHANNELS)
    persistence = [zonal["zonal_persistence_1d_end", channel] for channel in CHANNELS]
    assert all(-1 <= r["value"] <= 1 and -1 <= r["config"]["truth_autocorrelation"] <= 1 for r in persistence)
    for figure, quantities in (
        ("planetary_mode_factor_end", {"geopotential", "rotational kinetic energy"}),
        ("divergent_mode_factor_end", {"divergent kinetic energy"}),
    ):
        modes = next(r for r in records if r["figure"] == figure)
        quantity, _, mode = modes["config"]["worst"].rpartition(" ")
        assert modes["value"] >= 1 and quantity in quantities and mode in LOW_MODES
    coherence = shares["tilt_wave_coherence_end"]
    assert coherence["value"] <= 1 + 1e-9 and coherence["config"]["truth"] <= 1


def test_one_step_bias_of_a_trained_checkpoint_on_a_given_store(trained: tuple[Path, Path], world_store: Path) -> None:
    _, workdir = trained
    records = quick_records("one_step_bias", "--checkpoint", str(workdir / "model.ckpt"), "--store", str(world_store))
    figures = {(r["figure"], r["config"].get("channel")): r for r in records}
    truth = figures[("axial_rotation_truth", None)]
    assert truth["config"]["steps"] == 15 and truth["config"]["level"] == "250"
    # the targets' super-rotation, from the store with xarray: u's projection on cos(latitude) by quadrature
    u = xr.open_zarr(world_store)["u_component_of_wind"].sel(level=250).isel(time=slice(1, None))
    u = u.sortby("latitude", ascending=False)
    grid = Grid.from_coordinates(u.latitude.values, u.longitude.values, str(world_store))
    weight = xr.DataArray(grid.area_weights, dims="latitude") * np.cos(np.deg2rad(u.latitude))
    speed = (u * weight).mean("longitude").sum("latitude") / (weight * np.cos(np.deg2rad(u.latitude))).sum()
    assert truth["value"] == pytest.approx(float(speed.mean()), rel=1e-3)
    assert figures[("axial_rotation_one_step_change_stderr", None)]["value"] > 0
    modes = {(r["config"]["quantity"], r["config"]["mode"]): r["value"] for r in records if "mode" in r["config"]}
    assert {mode for _, mode in modes} == LOW_MODES and len(modes) == 3 * len(LOW_MODES)
    # a power over another, minus one: -1 (no power) only where the default controls remove the divergent wind's
    # departure from the normalizer's mean at order 0
    removed = {key for key in modes if key[0] == "divergent kinetic energy" and key[1].endswith(",0")}
    assert all(change >= -1 for change in modes.values())
    assert all(change > -1 for key, change in modes.items() if key not in removed)
    shares = [figures[("systematic_share", channel)]["value"] for channel in CHANNELS]
    assert all(0 < share < 1 for share in shares)


def test_skill_scores_deterministic_forecasts_and_runs_its_long_rollouts_with_a_given_forcing() -> None:
    forcing = "{components: [stream_function@250], min_degree: 8, max_degree: 12, balanced_geopotential: 0.4}"
    plain = quick_records("skill", "--off-years", "0.05")
    forced = quick_records("skill", "--set", f"stepper.stochastic_forcing={forcing}")
    off = [r for r in plain if r["figure"].startswith("steps_to_failure_without_")]
    assert len(off) == 9 and all(r["config"]["rollout_steps"] == 73 for r in off)  # 0.05 years of 6-hour steps

    def scored(records: list[dict]) -> dict[tuple[str, str], float]:
        return {(r["figure"], r["config"]["channel"]): r["value"] for r in records if r["figure"].startswith("rmse_")}

    assert scored(plain) and scored(forced) == scored(plain)
    controls = json.loads(next(r for r in forced if r["figure"] == "steps_to_nonfinite")["config"]["controls"])
    assert controls["stochastic_forcing"]["balanced_geopotential"] == 0.4


def test_the_long_rollout_s_marks_wait_for_a_truth_climate_still_being_simulated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, loaded = world_checkpoint(None)
    store = truth_store(quick=True)
    days = torch.from_numpy(ZarrSource(store, loaded.prognostic).read(np.arange(8)))
    climate = truth_climate(loaded, quick=True)

    def lines(simulated: Future) -> list[str]:
        """What scoring ``days`` as an 8-day rollout prints: before, then after, the climate is there."""
        scores = RolloutScores(loaded, StepperConfig(), simulated, days, 8 / YEAR_DAYS, 1, "skill", torch.device("cpu"))
        capsys.readouterr()
        for day, state in enumerate(days, start=1):
            scores.add(STEPS_PER_DAY * day, state[None])
        before = capsys.readouterr().out.splitlines()
        if not simulated.done():
            simulated.set_result(climate)
        scores.finish(STEPS_PER_DAY * len(days), 1.0)
        return [*before, "|", *sorted(capsys.readouterr().out.splitlines())]

    ready: Future = Future()
    ready.set_result(climate)
    simulating: Future = Future()
    stuck = threading.Timer(60, simulating.set_result, [climate])  # a rollout that waited fails here, not hangs
    stuck.start()
    waited, at_once = lines(simulating), lines(ready)
    stuck.cancel()
    assert waited[0] == "|" and any('"spectrum_error_end"' in line for line in at_once[: at_once.index("|")])
    assert sorted(waited[1:]) == sorted(line for line in at_once if line != "|")
