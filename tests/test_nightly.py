"""The nightly job: complete, idempotent, resumable after a kill, locked, scoring old cycles."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from emulator.checkpoint import file_hash
from emulator.cli import main
from emulator.lock import LockedError
from emulator.nightly import manifest_is_complete, product_hash


def nightly_config(trained: tuple[Path, Path], store: Path, tmp_path: Path) -> Path:
    config, _ = trained
    tree = yaml.safe_load(config.read_text())
    tree["data"]["store"] = str(store)
    tree["forecast"]["init_time"] = "latest"
    tree["forecast"]["lead_steps"] = 4
    tree["ensemble"] = {"members": 3}
    path = tmp_path / "nightly.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def nightly(config: Path, output: Path) -> int:
    return main(["nightly", "--config", str(config), "--output", str(output), "--device", "cpu"])


def truncated_store(world_store: Path, tmp_path: Path, times: int) -> Path:
    target = tmp_path / f"first_{times}.zarr"
    xr.open_zarr(world_store).isel(time=slice(0, times)).load().to_zarr(target, zarr_format=3)
    return target


def test_run_twice_then_finish_a_killed_cycle(
    trained: tuple[Path, Path],
    world_store: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, output = nightly_config(trained, world_store, tmp_path), tmp_path / "nightly"
    assert nightly(config, output) == 0
    cycle = output / "20000104T1800"
    manifest = json.loads((cycle / "manifest.json").read_text())
    assert sorted(manifest["products"]) == [
        "ensemble_20000104T1800.nc", "ensemble_spectra_20000104T1800.nc",
        "forecast_20000104T1800.nc", "spectra_20000104T1800.nc",
    ]  # fmt: skip
    assert all(file_hash(cycle / name) == digest for name, digest in manifest["products"].items())
    stamps = {p.name: p.stat().st_mtime_ns for p in cycle.iterdir()}

    caplog.clear()
    caplog.set_level(logging.INFO)
    assert nightly(config, output) == 0
    assert "nothing to do" in caplog.text and "nothing to do" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in cycle.iterdir()} == stamps

    # as if killed while the ensemble was being written: no manifest, a partial file
    (cycle / "manifest.json").unlink()
    (cycle / "ensemble_spectra_20000104T1800.nc").unlink()
    (cycle / "ensemble_20000104T1800.nc").rename(cycle / "ensemble_20000104T1800.nc.partial")
    assert nightly(config, output) == 0
    assert (cycle / "manifest.json").is_file() and (cycle / "ensemble_20000104T1800.nc").is_file()
    assert (cycle / "forecast_20000104T1800.nc").stat().st_mtime_ns == stamps["forecast_20000104T1800.nc"]


def test_a_zarr_ensemble_is_in_the_manifest_by_the_checksum_of_its_files(
    trained: tuple[Path, Path], world_store: Path, tmp_path: Path
) -> None:
    config, output = nightly_config(trained, world_store, tmp_path), tmp_path / "nightly"
    assert main(["nightly", "--config", str(config), "--output", str(output), "--device", "cpu",
                 "--set", "ensemble.output_format=zarr"]) == 0  # fmt: skip
    cycle = output / "20000104T1800"
    manifest = json.loads((cycle / "manifest.json").read_text())["products"]
    assert manifest["ensemble_20000104T1800.zarr"] == product_hash(cycle / "ensemble_20000104T1800.zarr")
    assert manifest_is_complete(cycle)
    chunk = next(p for p in (cycle / "ensemble_20000104T1800.zarr" / "geopotential").rglob("*") if p.is_file())
    chunk.write_bytes(chunk.read_bytes() + b"x")
    assert not manifest_is_complete(cycle), "a changed chunk is seen"


def test_a_later_run_scores_the_cycles_that_became_verifiable(
    trained: tuple[Path, Path], world_store: Path, tmp_path: Path
) -> None:
    output = tmp_path / "nightly"
    early = nightly_config(trained, truncated_store(world_store, tmp_path, 10), tmp_path)
    assert nightly(early, output) == 0
    assert not list(output.glob("*/scores_*.nc"))
    assert nightly(nightly_config(trained, world_store, tmp_path), output) == 0
    scores = output / "20000103T0600" / "scores_20000103T0600.nc"
    with xr.open_dataset(scores, decode_timedelta=True) as ds:
        assert ds.sizes["lead_time"] == 4 and float(ds.rmse.min()) > 0


def test_a_live_lock_refuses_and_a_stale_lock_is_taken_over(
    trained: tuple[Path, Path], world_store: Path, tmp_path: Path
) -> None:
    config, output = nightly_config(trained, world_store, tmp_path), tmp_path / "nightly"
    cycle = output / "20000104T1800"
    cycle.mkdir(parents=True)
    (cycle / ".lock").write_text(str(os.getpid()))
    assert nightly(config, output) == LockedError.exit_code == 3
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    (cycle / ".lock").write_text(finished.stdout.strip())
    assert nightly(config, output) == 0
    assert not (cycle / ".lock").exists() and (cycle / "manifest.json").is_file()


def test_the_pipeline_entry_is_the_cli_subcommand() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "pipelines.nightly", "--help"], capture_output=True, text=True, check=True
    )
    assert shown.stdout.startswith("usage: emulator nightly") and "--output" in shown.stdout
