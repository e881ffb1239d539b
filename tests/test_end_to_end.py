"""The whole chain through the CLI on a tiny world, and its one-line errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from emulator.cli import main
from emulator.io.forecast_reader import open_forecast

SUBCOMMANDS = ["synth", "ingest", "train", "forecast", "ensemble", "nightly", "spectra", "evaluate", "plot"]


def run(*args: str) -> int:
    return main(list(args))


def test_train_writes_checkpoint_and_metrics(trained: tuple[Path, Path]) -> None:
    _, workdir = trained
    assert (workdir / "model.ckpt").is_file()
    lines = (workdir / "model.metrics.csv").read_text().splitlines()
    assert lines[0] == "step,stage,epoch,learning_rate,train_loss,gradient_norm,validation_loss,climate_error"
    validation = [float(line.split(",")[6]) for line in lines[1:] if line.split(",")[6]]
    assert len(validation) == 2 and all(np.isfinite(validation))


def test_forecast_spectra_plot_evaluate(
    trained: tuple[Path, Path], world_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, workdir = trained
    assert run("forecast", "--config", str(config), "--device", "cpu") == 0
    forecast = workdir / "outputs" / "forecast_20000102T0000.nc"
    spectra = workdir / "outputs" / "spectra_20000102T0000.nc"
    with open_forecast(forecast) as ds:
        assert ds.sizes["lead_time"] == 6 and ds.attrs["rollout_status"] == "complete: 1 member(s), 6 steps"
        assert "checkpoint_sha256" in ds.attrs and ds.attrs["stepper_residual"] == "true"
        assert np.isfinite(ds.geopotential.values).all()
    with xr.open_dataset(spectra) as ds:
        assert ds.power.dims == ("channel", "member", "init_time", "lead_time", "degree")
        assert "kinetic_energy" in ds and (ds.kinetic_energy.values >= 0).all()
    assert run("spectra", str(forecast), "--output", str(workdir / "again.nc")) == 0
    assert run("plot", str(forecast), "--spectra", str(spectra), "--output", str(workdir / "plots")) == 0
    pngs = sorted(p.name for p in (workdir / "plots").glob("*.png"))
    assert pngs == ["map_geopotential_250.png", "spectrum.png"]
    assert all((workdir / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)
    assert run("evaluate", str(forecast), "--store", str(world_store), "--output", str(workdir / "scores.nc")) == 0
    with xr.open_dataset(workdir / "scores.nc", decode_timedelta=True) as scores:
        assert scores.rmse.dims == ("lead_time", "channel") and scores.sizes["lead_time"] == 6
        assert (scores.rmse_persistence.isel(lead_time=0) > 0).all()


def test_output_every_writes_every_kth_step_of_the_same_rollout(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = trained
    common = ["--config", str(config), "--device", "cpu", "--lead", "6"]
    assert run("forecast", *common, "--output", str(tmp_path / "all")) == 0
    assert run("forecast", *common, "--output", str(tmp_path / "every"), "--set", "forecast.output_every=2") == 0
    name = "forecast_20000102T0000.nc"
    with open_forecast(tmp_path / "all" / name) as full, open_forecast(tmp_path / "every" / name) as thinned:
        assert thinned.lead_time.values.tolist() == full.lead_time.values[1::2].tolist()  # 12, 24 and 36 h
        for variable in full.data_vars:
            np.testing.assert_array_equal(thinned[variable].values, full[variable].isel(lead_time=[1, 3, 5]).values)
    assert run("forecast", *common, "--output", str(tmp_path / "bad"), "--set", "forecast.output_every=4") == 1
    assert "lead of 6 steps is not a whole number of forecast.output_every=4" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("forecast", ["--set", "data.store=/nonexistent.zarr"], "/nonexistent.zarr: no Zarr store at this path"),
        ("ingest", ["--set", "data.prognostic=[temperature@850]"], "variable 'temperature' not in store"),
        ("forecast", ["--set", "data.prognostic=[geopotential@250]"], "checkpoint prognostic channels"),
        ("forecast", ["--set", "forecast.init_time=1990-01-01"], "initial time 1990-01-01 00:00:00 not in store"),
        ("train", ["--set", "train.lead_stepz=3"], "train.lead_stepz: unknown key"),
        ("forecast", ["--set", "forecast.checkpoint=/absent.ckpt"], "/absent.ckpt: checkpoint not found"),
    ],
)
def test_bad_input_gives_one_clear_line(
    trained: tuple[Path, Path], command: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = trained
    assert run(command, "--config", str(config), *args) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"emulator {command}: error: ") and message in error[0]


def test_ingest_statistics_and_climatology_give_the_acc(
    trained: tuple[Path, Path], world_store: Path, tiny_config_file: Path, tmp_path: Path
) -> None:
    stats, climatology = tmp_path / "stats.nc", tmp_path / "climatology.nc"
    assert (
        run("ingest", "--config", str(tiny_config_file), "--output", str(stats), "--climatology", str(climatology)) == 0
    )
    with xr.open_dataset(stats) as ds:
        assert (ds["std"] > 0).all() and ds.channel.size == 3
    config, _ = trained
    out = tmp_path / "forecast"
    assert run("forecast", "--config", str(config), "--output", str(out), "--device", "cpu") == 0
    forecast = next(out.glob("forecast_*.nc"))
    scores = tmp_path / "scores.nc"
    assert (
        run(
            "evaluate",
            str(forecast),
            "--store",
            str(world_store),
            "--climatology",
            str(climatology),
            "--output",
            str(scores),
        )
        == 0
    )
    with xr.open_dataset(scores, decode_timedelta=True) as ds:
        assert ds.acc.dims == ("lead_time", "channel") and ((ds.acc >= -1) & (ds.acc <= 1)).all()
        assert not ds.acc.attrs, "no units of the forecast variable leak into scores"


def test_console_script_help_describes_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(sys.executable).with_name("emulator")
    top = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert name in top
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        text = capsys.readouterr().out
        assert exited.value.code == 0 and text.startswith(f"usage: emulator {name}") and "options:" in text


def test_notebook_executes_on_the_forecast_outputs(trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    config, workdir = trained
    if not list((workdir / "outputs").glob("forecast_*.nc")):
        assert run("forecast", "--config", str(config), "--device", "cpu") == 0
    monkeypatch.setenv("EMULATOR_OUTPUTS", str(workdir / "outputs"))
    notebook = nbformat.read("notebooks/forecast_products.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}
    ).execute()
    images = [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 2, "a map and a spectrum"


def test_ensemble_members_are_recorded_and_member_zero_is_the_control(
    trained: tuple[Path, Path], world_store: Path
) -> None:
    import json

    config, workdir = trained
    out = workdir / "ens"
    assert run("forecast", "--config", str(config), "--lead", "12h", "--output", str(out), "--device", "cpu") == 0
    args = [
        "--members",
        "3",
        "--lead",
        "12h",
        "--output",
        str(out),
        "--device",
        "cpu",
        "--set",
        "ensemble.batch_size=2",
    ]
    assert run("ensemble", "--config", str(config), *args) == 0
    with (
        open_forecast(out / "ensemble_20000102T0000.nc") as ens,
        open_forecast(out / "forecast_20000102T0000.nc") as det,
    ):
        assert ens.sizes["member"] == 3 and ens.sizes["lead_time"] == 2
        np.testing.assert_allclose(
            ens.geopotential.isel(member=0).values, det.geopotential.isel(member=0).values, rtol=1e-5
        )
        spread = ens.geopotential.std("member").isel(lead_time=-1)
        assert float(spread.mean()) > 0
        recipes = json.loads(ens.attrs["member_recipes"])
        assert [r["member"] for r in recipes] == [0, 1, 2] and recipes[2]["initial_generator_seed"] == [0, 2]
        assert recipes[0]["initial"] is None and recipes[2]["initial"]["kind"] == "gaussian_random_field"
    assert (out / "ensemble_spectra_20000102T0000.nc").is_file()
    scores = out / "ensemble_scores.nc"
    assert (
        run("evaluate", str(out / "ensemble_20000102T0000.nc"), "--store", str(world_store), "--output", str(scores))
        == 0
    )
    with xr.open_dataset(scores, decode_timedelta=True) as ds:
        assert ds.attrs["members"] == 3 and {"crps", "spread", "spread_skill", "bias"} <= set(ds.data_vars)
        assert (ds.crps > 0).all() and (ds.spread > 0).all()


@pytest.mark.parametrize(("lead", "message"), [("5x", "neither a number of steps"), ("7h", "not a whole number")])
def test_bad_lead_is_refused(
    trained: tuple[Path, Path], lead: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = trained
    assert run("ensemble", "--config", str(config), "--lead", lead) == 1
    assert message in capsys.readouterr().err


def test_fine_tuning_starts_from_a_checkpoint_and_checks_it(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, workdir = trained
    start = ["--set", f"train.init_checkpoint={workdir / 'model.ckpt'}", "--set", "train.epochs=1", "--device", "cpu"]
    tuned = ["--set", "train.rollout_steps=2", "--set", f"train.checkpoint={workdir / 'tuned.ckpt'}"]
    assert run("train", "--config", str(config), *start, *tuned) == 0
    assert (workdir / "tuned.ckpt").is_file()
    wider = ["--set", "model.embed_dim=12", "--set", f"train.checkpoint={workdir / 'wide.ckpt'}"]
    assert run("train", "--config", str(config), *start, *wider) == 1
    assert "differs from the config's" in capsys.readouterr().err
