"""The built-in world: reproducible, in the reanalysis layout, physically sane."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from emulator.errors import EmulatorError
from emulator.world.shallow_water import ForcedShallowWater
from emulator.world.store import write_world_store
from tests.conftest import TINY_PHYSICS, TINY_WORLD

ROOT = Path(__file__).resolve().parent.parent


def test_store_has_reanalysis_layout(world_store: Path) -> None:
    ds = xr.open_zarr(world_store)
    assert set(ds.data_vars) == {"geopotential", "u_component_of_wind", "v_component_of_wind"}
    assert ds.geopotential.dims == ("time", "level", "latitude", "longitude")
    assert np.issubdtype(ds.time.dtype, np.datetime64)
    assert (np.diff(ds.time.values) == np.timedelta64(6, "h")).all()
    assert pd.Timestamp(ds.time.values[0]) == pd.Timestamp(TINY_WORLD.start)
    assert len(ds.time) == 16
    assert (np.diff(ds.latitude.values) > 0).all(), "latitude ascending, as WeatherBench2 stores it"
    assert ds.latitude.attrs["units"] == "degrees_north" and ds.longitude.attrs["units"] == "degrees_east"
    assert ds.u_component_of_wind.attrs["standard_name"] == "eastward_wind"
    assert ds.level.values.tolist() == [250]
    spinup = xr.open_zarr(world_store, group="spinup")
    assert len(spinup.time) == TINY_WORLD.spinup_days
    assert spinup.time.values[-1] < ds.time.values[0]


def test_same_seed_same_store_other_seed_differs(world_store: Path, tmp_path: Path) -> None:
    again = write_world_store(TINY_WORLD, tmp_path / "again.zarr")
    other = write_world_store(TINY_WORLD.model_copy(update={"seed": 4}), tmp_path / "other.zarr")
    reference = xr.open_zarr(world_store).load()
    xr.testing.assert_identical(reference, xr.open_zarr(again).load())
    assert not np.array_equal(reference.u_component_of_wind.values, xr.open_zarr(other).u_component_of_wind.values)


def test_a_cpu_with_other_instruction_sets_writes_the_same_store(world_store: Path, tmp_path: Path) -> None:
    """oneMKL held to SSE4.2 and torch to AVX2, as on an older CPU, give this CPU's store to the bit."""
    older_cpu = {**os.environ, "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "avx2"}
    write = "import sys; from emulator.world.store import write_world_store; from tests.conftest import TINY_WORLD; "
    write += "write_world_store(TINY_WORLD, sys.argv[1])"
    other = tmp_path / "older_cpu.zarr"
    subprocess.run([sys.executable, "-c", write, str(other)], env=older_cpu, check=True, cwd=ROOT)
    xr.testing.assert_identical(xr.open_zarr(world_store).load(), xr.open_zarr(other).load())


def test_stepping_in_pieces_equals_stepping_at_once() -> None:
    whole, pieces = ForcedShallowWater(TINY_PHYSICS, seed=1), ForcedShallowWater(TINY_PHYSICS, seed=1)
    whole.step(30)
    pieces.step(11)
    pieces.step(19)
    torch.testing.assert_close(whole.state, pieces.state, rtol=0, atol=0)


def test_a_batch_of_seeds_runs_each_seed_s_own_world() -> None:
    batch = ForcedShallowWater(TINY_PHYSICS, seed=[3, 1])
    singles = [ForcedShallowWater(TINY_PHYSICS, seed=seed) for seed in (3, 1)]
    batch.step(40)
    for single in singles:
        single.step(40)
    fields = batch.grid_fields()
    assert fields["u_component_of_wind"].shape == (2, TINY_PHYSICS.nlat, TINY_PHYSICS.nlon)
    for member, single in enumerate(singles):
        scale = single.state.abs().amax(dim=(-2, -1), keepdim=True)
        torch.testing.assert_close(batch.state[member] / scale, single.state / scale, rtol=0, atol=1e-4)
    vorticity = batch.state[:, 1]
    assert float((vorticity[0] - vorticity[1]).abs().max()) > 0.1 * float(vorticity.abs().max())


def test_mass_is_conserved_and_flow_stays_bounded() -> None:
    world = ForcedShallowWater(TINY_PHYSICS, seed=2)
    weights = world.solver.quad_weights.float()

    def global_mean_geopotential() -> float:
        phi = world.grid_fields()["geopotential"]
        return float((phi * weights).sum() / (weights.sum() * phi.shape[-1]))

    initial = global_mean_geopotential()
    world.step(5 * 144)  # five days
    fields = world.grid_fields()
    assert abs(global_mean_geopotential() - initial) / initial < 1e-5
    speed = torch.sqrt(fields["u_component_of_wind"] ** 2 + fields["v_component_of_wind"] ** 2)
    assert torch.isfinite(speed).all()
    assert 1.0 < float(speed.mean()) < 100.0, "the forcing keeps a flow of atmospheric magnitude"


def test_existing_store_is_not_overwritten_by_default(world_store: Path) -> None:
    with pytest.raises(EmulatorError, match="exists already"):
        write_world_store(TINY_WORLD, world_store)
