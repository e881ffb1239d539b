"""Checkpoints: self-contained, safe to load, identical outputs, mismatches refused."""

from pathlib import Path

import numpy as np
import pytest
import torch

from emulator.checkpoint import Checkpoint, build_for, load_checkpoint
from emulator.config import Config, config_from_dict
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid

CHANNELS = ["geopotential@250", "u_component_of_wind@250"]
TREE = {
    "data": {"store": "x.zarr", "prognostic": CHANNELS},
    "model": {"name": "sfno", "embed_dim": 8, "num_layers": 2},
}


def make_checkpoint(config: Config) -> Checkpoint:
    grid = Grid(16, 32)
    normalizer = Normalizer(tuple(CHANNELS), np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([0.5, 0.5]))
    torch.manual_seed(0)
    model = build_for(config, CHANNELS, [], grid)
    return Checkpoint(config, normalizer, CHANNELS, [], grid, model, step=17)


def test_round_trip_gives_identical_outputs_and_metadata(tmp_path: Path) -> None:
    original = make_checkpoint(config_from_dict(TREE, "test"))
    path = original.save(tmp_path / "model.ckpt")
    loaded = load_checkpoint(path)
    x = torch.randn(1, 2, 16, 32)
    torch.testing.assert_close(loaded.model(x), original.model(x), rtol=0, atol=0)
    assert loaded.step == 17 and loaded.grid == original.grid and loaded.prognostic == CHANNELS
    np.testing.assert_array_equal(loaded.normalizer.std, original.normalizer.std)
    assert loaded.config == original.config
    assert not list(tmp_path.glob("*.partial"))


def test_different_architecture_is_refused_naming_what_differs(tmp_path: Path) -> None:
    path = make_checkpoint(config_from_dict(TREE, "test")).save(tmp_path / "model.ckpt")
    wider = config_from_dict({**TREE, "model": {"name": "sfno", "embed_dim": 12, "num_layers": 2}}, "test")
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    metadata["config"] = wider.model_dump_json()
    save_file(tensors, str(tmp_path / "mismatch.ckpt"), metadata=metadata)
    with pytest.raises(EmulatorError, match=r"weights do not fit the sfno architecture \(wrong shape: "):
        load_checkpoint(tmp_path / "mismatch.ckpt")


def test_pickles_and_foreign_files_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "pickle.ckpt"
    torch.save({"weights": torch.zeros(2)}, pickled)
    with pytest.raises(EmulatorError, match="not a readable checkpoint"):
        load_checkpoint(pickled)
    with pytest.raises(EmulatorError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.ckpt")
