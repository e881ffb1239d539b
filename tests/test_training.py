"""The training loop on the tiny world: exact resume after a kill, curriculum, EMA, bf16, noise."""

import copy
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from safetensors import safe_open

from emulator.checkpoint import load_checkpoint
from emulator.cli import main
from emulator.config import config_from_dict
from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_statistics
from emulator.errors import EmulatorError
from emulator.training.batches import StoreBatches
from emulator.training.state import state_path
from emulator.training.train import Trainer
from tests.conftest import CHANNELS, tiny_config_tree
from tests.test_climate_loss import world_climate_target


def write_config(store: Path, workdir: Path, **train: object) -> Path:
    tree = tiny_config_tree(store, workdir)
    tree["train"] |= train
    workdir.mkdir(exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def metrics(workdir: Path, log: str = "metrics") -> list[dict[str, str]]:
    with open(workdir / f"model.{log}.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def saved_step(path: Path) -> int:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return int(json.loads((handle.metadata() or {})["progress"])["step"])
    except Exception:  # not written yet, or being renamed into place
        return -1


def checkpoint_weights(path: Path) -> list[torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return [handle.get_tensor(name) for name in sorted(handle.keys())]


RUN = {"batch_size": 2, "epochs": 4, "checkpoint_every": 3, "log_every": 1, "input_noise": 0.05, "ema_decay": 0.9}


@pytest.mark.parametrize("climate", [False, True], ids=["plain", "with-climate-loss-and-validation"])
def test_resume_after_a_kill_continues_the_loss_curve_exactly(world_store: Path, tmp_path: Path, climate: bool) -> None:
    """With the climate loss, its chains and running ratio are part of the state that resumes; with climate
    validation, the best error so far (so the same checkpoint is kept)."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run = dict(RUN)
    if climate:
        target = world_climate_target(write_config(world_store, tmp_path / "world"), tmp_path / "climate.nc")
        run["climate"] = {"target": str(target), "chains": 2, "spinup_steps": 2, "weight": 0.5}
        run["climate_validation"] = {"target": str(target), "every": 2, "chains": 2, "spinup_steps": 1, "steps": 2}
    config = write_config(world_store, straight, **run)
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0

    config = write_config(world_store, killed, **run)
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "train", "--config", str(config), "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = state_path(killed / "model.ckpt")
    while saved_step(state) < 5 and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = saved_step(state)
    total = int(metrics(straight)[-1]["step"])
    assert 5 <= stopped_at < total, "the run must be killed part way"

    assert main(["train", "--config", str(config), "--device", "cpu", "--resume"]) == 0
    assert metrics(killed) == metrics(straight)
    if climate:
        assert metrics(killed, "climate") == metrics(straight, "climate"), "each check logged once"
    weights = zip(checkpoint_weights(straight / "model.ckpt"), checkpoint_weights(killed / "model.ckpt"), strict=True)
    assert all(torch.equal(a, b) for a, b in weights)


def test_resume_refuses_a_state_from_another_config(
    world_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(world_store, tmp_path, batch_size=4, epochs=1)
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0
    args = ["train", "--config", str(config), "--device", "cpu", "--resume", "--set", "train.learning_rate=0.1"]
    assert main(args) == 1
    assert "written by a run whose config differs in section 'train'; cannot resume" in capsys.readouterr().err


def test_curriculum_runs_its_stages_in_order(world_store: Path, tmp_path: Path) -> None:
    curriculum = [
        {"epochs": 1, "rollout_steps": 1, "learning_rate": 1e-3, "max_steps": 3},
        {"epochs": 2, "rollout_steps": 3, "learning_rate": 1e-4},
    ]
    config = write_config(world_store, tmp_path, batch_size=4, curriculum=curriculum)
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0
    rows = metrics(tmp_path)
    steps = [(int(row["stage"]), int(row["step"])) for row in rows if row["train_loss"]]
    # 12 training windows of 1 step give 3 batches; 10 windows of 3 steps give 3 a epoch
    assert steps == [(0, 1), (0, 2), (0, 3), *((1, step) for step in range(4, 10))]
    peaks = {
        stage: max(float(r["learning_rate"]) for r in rows if r["stage"] == str(stage) and r["train_loss"])
        for stage in (0, 1)
    }
    assert peaks[0] <= 1e-3 and 0 < peaks[1] <= 1e-4
    assert sum(1 for row in rows if row["validation_loss"]) == 3  # once per epoch of each stage


def tiny_trainer(world_store: Path, tmp_path: Path, **train: object) -> tuple[Trainer, StoreBatches]:
    tree = tiny_config_tree(world_store, tmp_path)
    tree["train"] |= train
    config = config_from_dict(tree, "test")
    source = ZarrSource(str(world_store), CHANNELS)
    normalizer = compute_statistics(source, source.period_indices(config.data.train_period))
    trainer = Trainer(config, normalizer, source.grid, torch.device("cpu"))
    batches = StoreBatches(source, CHANNELS, [], normalizer, config.data.train_period, 2, 4, 0, True)
    return trainer, batches


def test_ema_is_the_exponential_average_of_the_weights(world_store: Path, tmp_path: Path) -> None:
    trainer, batches = tiny_trainer(world_store, tmp_path, ema_decay=0.9)
    after = []
    for step, batch in zip(range(3), batches.epoch(0), strict=False):
        trainer.optimize(batch, 1e-3, step)
        after.append(copy.deepcopy(dict(trainer.model.named_parameters())))
    for name, average in trainer.evaluated_model.named_parameters():
        first, second, third = (weights[name] for weights in after)  # the first update copies the weights
        expected = 0.9 * (0.9 * first + 0.1 * second) + 0.1 * third
        torch.testing.assert_close(average, expected)
        assert not torch.equal(average, third)
    buffers = dict(trainer.model.named_buffers())
    assert all(torch.equal(kept, buffers[name]) for name, kept in trainer.evaluated_model.named_buffers())


def test_bf16_autocast_trains_close_to_fp32(world_store: Path, tmp_path: Path) -> None:
    batch = next(tiny_trainer(world_store, tmp_path)[1].epoch(0))
    fp32, _ = tiny_trainer(world_store, tmp_path)[0].optimize(batch, 1e-3, 0)
    bf16, norm = tiny_trainer(world_store, tmp_path, precision="bf16")[0].optimize(batch, 1e-3, 0)
    assert abs(bf16 - fp32) < 0.05 * fp32 and norm > 0


def test_input_noise_changes_the_loss_and_is_seeded_per_step(world_store: Path, tmp_path: Path) -> None:
    batch = next(tiny_trainer(world_store, tmp_path)[1].epoch(0))
    clean, _ = tiny_trainer(world_store, tmp_path)[0].optimize(batch, 0.0, 0)
    noisy = [
        tiny_trainer(world_store, tmp_path, input_noise=0.5)[0].optimize(batch, 0.0, step)[0] for step in (0, 0, 1)
    ]
    assert noisy[0] == noisy[1] != noisy[2] and noisy[0] != clean


def neighbour_correlation(field: torch.Tensor) -> float:
    """Correlation of a field with itself shifted one grid step east."""
    return float(torch.corrcoef(torch.stack([field.flatten(), field.roll(1, -1).flatten()]))[0, 1])


def test_input_noise_is_white_or_a_random_field_of_the_given_length(world_store: Path, tmp_path: Path) -> None:
    state = next(tiny_trainer(world_store, tmp_path)[1].epoch(0))[0]
    white, field = (
        tiny_trainer(world_store, tmp_path, input_noise=0.5, **length)[0].noisy_inputs(state, 0) - state
        for length in ({}, {"input_noise_length_scale_km": 2000.0})
    )
    for noise in (white, field):
        assert (noise[:, 1:] == 0).all()  # only the first state of each window
        assert 0.4 < float(noise[:, 0].std()) < 0.6
    # 32x64 grid steps are ~600 km: white noise is uncorrelated, a 2000 km field smooth
    assert abs(neighbour_correlation(white[:, 0])) < 0.1 < 0.8 < neighbour_correlation(field[:, 0])


def test_online_training_learns_from_the_solver_with_nothing_on_disk(world_store: Path, tmp_path: Path) -> None:
    tree = tiny_config_tree(tmp_path / "never_written.zarr", tmp_path)
    del tree["data"]["train_period"], tree["data"]["validation_period"]
    tree["world"]["physics"]["dt_seconds"] = 900.0
    online = {"trajectories": 2, "spinup_days": 1, "buffer_windows": 8, "refresh_per_step": 2, "statistics_windows": 12}
    tree["train"] |= {"batch_size": 4, "epochs": 3, "online": online}
    config = tmp_path / "online.yaml"
    config.write_text(yaml.safe_dump(tree))
    # a process of its own: the solver's thread must not abort the interpreter's exit
    finished = subprocess.run(
        [sys.executable, "-m", "emulator", "train", "--config", str(config), "--device", "cpu"],
        capture_output=True,
        text=True,
    )
    assert finished.returncode == 0, finished.stderr[-500:]
    assert not (tmp_path / "never_written.zarr").exists()
    losses = [float(row["train_loss"]) for row in metrics(tmp_path)]
    assert len(losses) == 6 and all(np.isfinite(losses))
    # the statistics estimated online agree with a store of the same world's climate
    source = ZarrSource(str(world_store), CHANNELS)
    stored = compute_statistics(source, np.arange(len(source)))
    estimated = load_checkpoint(tmp_path / "model.ckpt").normalizer
    np.testing.assert_allclose(estimated.mean[0], stored.mean[0], rtol=0.01)  # geopotential: g times depth
    np.testing.assert_allclose(estimated.std, stored.std, rtol=0.5)


def test_online_training_without_a_world_is_refused(tmp_path: Path) -> None:
    tree = tiny_config_tree(tmp_path / "store.zarr", tmp_path)
    del tree["world"]
    tree["train"]["online"] = {}
    with pytest.raises(EmulatorError, match=r"train.online simulates the built-in world: the config needs a world"):
        config_from_dict(tree, "test")


def test_nan_met_in_a_dataloader_worker_is_one_line(
    world_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with xr.open_zarr(world_store) as dataset:
        broken = dataset.load()
    broken["u_component_of_wind"][13, 0, 5, 5] = np.nan  # in the validation period: statistics pass
    broken.to_zarr(tmp_path / "nan.zarr", zarr_format=3)
    config = write_config(tmp_path / "nan.zarr", tmp_path, num_workers=1, batch_size=4, epochs=1)
    assert main(["train", "--config", str(config), "--device", "cpu", "--set", "train.seed=1"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("emulator train: error: ") and "NaN or infinite values in u_component_of_wind@250" in error
    assert "Traceback" not in error
