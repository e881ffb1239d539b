"""Shared fixtures: a tiny built-in world store, written once per session.

The session runs torch on one thread, and so do the processes it starts (the
environment is inherited): tests that compare runs bit for bit across processes
(resume after a kill, members on gloo ranks) need every process to reduce in the
same order, which CPU kernels guarantee only for the same thread count.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

from pathlib import Path

import pytest
import torch
import yaml

from emulator.cli import main
from emulator.config import WorldConfig
from emulator.world.shallow_water import WorldPhysics
from emulator.world.store import write_world_store

torch.set_num_threads(1)

CHANNELS = ["geopotential@250", "u_component_of_wind@250", "v_component_of_wind@250"]
TINY_PHYSICS = WorldPhysics(nlat=32, nlon=64, truncation=16, dt_seconds=600.0)
TINY_WORLD = WorldConfig(seed=3, spinup_days=2, record_days=4, physics=TINY_PHYSICS)


@pytest.fixture(scope="session")
def world_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days (16 samples) of a 32x64 world after two days of spin-up."""
    return write_world_store(TINY_WORLD, tmp_path_factory.mktemp("world") / "world.zarr")


def tiny_config_tree(store: Path, workdir: Path) -> dict:
    return {
        "world": TINY_WORLD.model_dump(mode="json"),
        "data": {
            "store": str(store),
            "prognostic": CHANNELS,
            "train_period": ["2000-01-01", "2000-01-03T18:00"],
            "validation_period": ["2000-01-04", "2000-01-04T18:00"],
        },
        "model": {"name": "sfno", "embed_dim": 8, "num_layers": 2},
        "stepper": {"max_abs_normalized": 1000.0, "max_mean_square_normalized": 1.0e6},
        "train": {"batch_size": 4, "epochs": 2, "checkpoint": str(workdir / "model.ckpt"), "log_every": 1},
        "forecast": {
            "checkpoint": str(workdir / "model.ckpt"),
            "init_time": "2000-01-02T00:00",
            "lead_steps": 6,
            "output_dir": str(workdir / "outputs"),
        },
    }


@pytest.fixture
def tiny_config_file(world_store: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config_tree(world_store, tmp_path)))
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, world_store: Path) -> tuple[Path, Path]:
    """A config file and the checkpoint trained by ``emulator train`` on the tiny world."""
    workdir = tmp_path_factory.mktemp("e2e")
    config = workdir / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_tree(world_store, workdir)))
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0
    return config, workdir
