"""The north-south mirror augmentation: the world is symmetric, and the trainer mirrors what it says."""

from pathlib import Path

import numpy as np
import pytest
import torch

from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.training.mirror import Mirror, MirrorConfig
from emulator.world.shallow_water import ForcedShallowWater
from tests.conftest import CHANNELS, TINY_PHYSICS
from tests.test_training import tiny_trainer

ODD = MirrorConfig(odd=["v_component_of_wind@250"])


IDENTITY = Normalizer(tuple(CHANNELS), np.zeros(3), np.ones(3), np.ones(3))


def physical_mirror() -> Mirror:
    """A mirror of physical fields (a normalizer that changes nothing)."""
    return Mirror(ODD, IDENTITY, seed=0)


def grid_state(world: ForcedShallowWater) -> torch.Tensor:
    fields = world.grid_fields()
    return torch.stack([fields[name.split("@")[0]] for name in CHANNELS])


def set_grid_state(world: ForcedShallowWater, state: torch.Tensor) -> None:
    solver = world.solver
    spectral = torch.cat([solver.grid2spec(state[:1]), solver.vrtdivspec(state[1:])]).to(torch.complex64)
    world.state = torch.tril(spectral)


def test_the_world_without_its_random_forcing_commutes_with_the_mirror() -> None:
    """Stepping the mirror image equals mirroring the step: the premise of the augmentation."""
    world = ForcedShallowWater(TINY_PHYSICS, seed=5)
    world.step(400)  # jets and eddies, and an asymmetric state
    calm = TINY_PHYSICS.model_copy(update={"forcing_amplitude": 0.0})
    mirror = physical_mirror()
    start = grid_state(world)
    assert (mirror.reflect(start) - start).abs().amax(dim=(-2, -1)).min() > 0.05 * start.std(dim=(-2, -1)).min()
    direct, mirrored = ForcedShallowWater(calm, seed=0), ForcedShallowWater(calm, seed=0)
    set_grid_state(direct, start)
    set_grid_state(mirrored, mirror.reflect(start))
    direct.step(100)
    mirrored.step(100)
    expected, found = mirror.reflect(grid_state(direct)), grid_state(mirrored)
    scale = expected.std(dim=(-2, -1), keepdim=True)
    assert float(((found - expected) / scale).abs().max()) < 1e-3


def test_mirror_flips_latitude_and_the_odd_channels_of_the_chosen_windows() -> None:
    mirror = physical_mirror()
    state, forcing = torch.randn(64, 2, 3, 8, 16), torch.zeros(64, 2, 0, 8, 16)
    chosen = mirror.chosen(64, step=7)
    assert 16 < int(chosen.sum()) < 48 and torch.equal(chosen, mirror.chosen(64, step=7))
    assert not torch.equal(chosen, mirror.chosen(64, step=8))
    result, _ = mirror((state, forcing), step=7)
    torch.testing.assert_close(result[~chosen], state[~chosen], rtol=0, atol=0)
    torch.testing.assert_close(result[chosen][:, :, :2], state[chosen][:, :, :2].flip(-2), rtol=0, atol=0)
    torch.testing.assert_close(result[chosen][:, :, 2], -state[chosen][:, :, 2].flip(-2), rtol=0, atol=0)
    torch.testing.assert_close(mirror.reflect(mirror.reflect(state)), state)


def test_normalized_odd_channels_flip_about_their_physical_zero() -> None:
    normalizer = Normalizer(tuple(CHANNELS), np.array([5.0, 2.0, 1.0]), np.array([2.0, 4.0, 0.5]), np.ones(3))
    mirror = Mirror(ODD, normalizer, seed=0)
    physical = torch.randn(3, 8, 16)
    expected = physical.flip(-2) * torch.tensor([1.0, 1.0, -1.0])[:, None, None]
    torch.testing.assert_close(normalizer.denormalize(mirror.reflect(normalizer.normalize(physical))), expected)


def test_an_unknown_odd_channel_is_one_line() -> None:
    with pytest.raises(EmulatorError, match=r"train\.mirror\.odd: 'vorticity@250' is not one of geopotential@250"):
        Mirror(MirrorConfig(odd=["vorticity@250"]), IDENTITY, seed=0)


def test_training_on_mirrored_windows_is_training_on_their_mirror_image(world_store: Path, tmp_path: Path) -> None:
    """With every window mirrored, a step is the plain step on the mirrored batch."""
    mirrored_run, batches = tiny_trainer(world_store, tmp_path, mirror={"odd": ODD.odd, "probability": 1.0})
    plain_run, _ = tiny_trainer(world_store, tmp_path)
    batch = next(batches.epoch(0))
    assert mirrored_run.mirror is not None
    reflected = (mirrored_run.mirror.reflect(batch[0]), batch[1])  # no forcing channels
    assert mirrored_run.optimize(batch, 1e-3, 0) == plain_run.optimize(reflected, 1e-3, 0)
    assert mirrored_run.optimize(batch, 1e-3, 1) != plain_run.optimize(batch, 1e-3, 1)
