"""Ensemble members: reproducible from their recipes, bred, noisy, lagged, over checkpoints and ranks."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import xarray as xr

from emulator import ensemble
from emulator.breeding import bred_vector, rescale
from emulator.checkpoint import file_hash, load_checkpoint
from emulator.cli import main
from emulator.config import Config, load_config
from emulator.ensemble import reproduce_members, roll_out_recipes, run_ensemble
from emulator.errors import EmulatorError
from emulator.forecast import RolloutOptions, prepare_forecast, run_forecast
from emulator.io.forecast_reader import open_forecast
from emulator.members import MemberRecipe
from emulator.perturbations import InitialPerturbationConfig, RandomFieldPerturbation, seeded_generator

INIT = "2000-01-02T00:00"


def options(out: Path, lead: int = 2) -> RolloutOptions:
    return RolloutOptions(init_time=INIT, lead=lead, output_dir=str(out), device="cpu")


def ensemble_config(trained: tuple[Path, Path], *overrides: str) -> Config:
    config, _ = trained
    return load_config(config, ["ensemble.batch_size=2", *overrides])


@pytest.fixture(scope="module")
def second_checkpoint(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained checkpoint with every weight scaled by 1.05: same channels and grid, another model."""
    checkpoint = load_checkpoint(trained[1] / "model.ckpt")
    with torch.no_grad():
        for parameter in checkpoint.model.parameters():
            parameter.mul_(1.05)
    return checkpoint.save(tmp_path_factory.mktemp("second") / "other.ckpt")


def members(path: Path) -> tuple[np.ndarray, list[MemberRecipe]]:
    with open_forecast(path) as forecast:
        values = forecast.geopotential.values
        recipes = [MemberRecipe.model_validate(r) for r in json.loads(forecast.attrs["member_recipes"])]
    return values, recipes


def test_every_member_is_reproduced_bitwise_from_its_recipe_alone(
    trained: tuple[Path, Path], second_checkpoint: Path, tmp_path: Path
) -> None:
    first = str(trained[1] / "model.ckpt")
    config = ensemble_config(
        trained,
        f"ensemble.checkpoints=[{first}, {second_checkpoint}]",
        "ensemble.lag_steps=[0, 1]",
        "ensemble.model_noise={default_amplitude: 0.02, seed: 5}",
        "ensemble.perturbation={kind: bred_vector, breeding_cycles: 2, breeding_steps: 1}",
    )
    path = run_ensemble(config, members=5, options=options(tmp_path))["ensemble"]
    values, recipes = members(path)
    assert [(r.checkpoint, r.lag_steps) for r in recipes] == [
        (first, 0), (str(second_checkpoint), 0), (first, 1), (str(second_checkpoint), 1), (first, 0),
    ]  # fmt: skip
    assert recipes[1].checkpoint_sha256 == file_hash(second_checkpoint)
    assert recipes[3].noise_generator_seed == [5, 3, 1] and recipes[3].initial_generator_seed == [0, 3]
    assert recipes[0].initial is None and recipes[0].model_noise is None, "member 0 is the control"
    assert len({float(values[m, 0, -1].std()) for m in range(5)}) == 5, "every member differs"
    alone = roll_out_recipes(config, [recipes[3]], tmp_path / "member3.nc", options(tmp_path))
    again, [recipe] = members(alone)
    assert recipe == recipes[3]
    np.testing.assert_array_equal(again[0], values[3])

    # from the command line, with the plain config: the recipes carry all that makes the members
    args = ["--init-time", INIT, "--lead", "2", "--output", str(tmp_path / "cli"), "--device", "cpu"]
    assert (
        main(["ensemble", "--config", str(trained[0]), "--reproduce", str(path), "--member-ids", "2", "4", *args]) == 0
    )
    again, reproduced = members(tmp_path / "cli" / f"members_2_4_{path.stem}.nc")
    assert reproduced == [recipes[2], recipes[4]]
    np.testing.assert_array_equal(again, values[[2, 4]])


def test_bred_vectors_are_the_model_grown_difference_rescaled_to_the_amplitude(trained: tuple[Path, Path]) -> None:
    config = ensemble_config(trained)
    job = prepare_forecast(config, options(Path("unused")))
    weights = torch.as_tensor(job.loaded.grid.area_weights, dtype=torch.float32)[:, None]
    breeding = InitialPerturbationConfig(
        kind="bred_vector", amplitude={"geopotential@250": 0.2}, breeding_cycles=1, breeding_steps=1
    )
    perturbation = RandomFieldPerturbation(breeding, job.loaded.prognostic, job.loaded.grid)
    seed = [0, 1]

    bred = bred_vector(job, breeding, perturbation, job.start, seeded_generator(seed))
    rms = (bred.square() * weights).mean(dim=(-2, -1)).sqrt()
    torch.testing.assert_close(rms, torch.tensor([0.2, 0.05, 0.05]))

    origin = job.start - breeding.breeding_steps
    analysis = job.state_at(origin)
    seeded = analysis + perturbation.draw(seeded_generator(seed))
    *_, control = job.stepper.rollout(analysis, job.forcings(origin, breeding.breeding_steps))
    *_, perturbed = job.stepper.rollout(seeded, job.forcings(origin, breeding.breeding_steps))
    expected = rescale((perturbed - control)[0], perturbation.scale, weights)
    torch.testing.assert_close(bred, expected, rtol=1e-4, atol=1e-6)

    longer = InitialPerturbationConfig(**(breeding.model_dump() | {"breeding_cycles": 3}))
    grown = bred_vector(job, longer, perturbation, job.start, seeded_generator(seed))
    assert not torch.allclose(grown, bred), "more cycles, another vector"
    with pytest.raises(EmulatorError, match="breeding needs 20 x 1 steps before"):
        bred_vector(
            job, longer.model_copy(update={"breeding_cycles": 20}), perturbation, job.start, seeded_generator(seed)
        )


def test_lagged_members_are_written_at_the_same_valid_times(trained: tuple[Path, Path], tmp_path: Path) -> None:
    config = ensemble_config(trained)
    checkpoint = str(trained[1] / "model.ckpt")
    lagged = MemberRecipe(member=0, checkpoint=checkpoint, checkpoint_sha256=file_hash(checkpoint), lag_steps=2)
    path = roll_out_recipes(config, [lagged], tmp_path / "lagged.nc", options(tmp_path, lead=3))
    earlier = RolloutOptions(init_time="2000-01-01T12:00", lead=5, output_dir=str(tmp_path / "earlier"), device="cpu")
    reference = run_forecast(config, earlier)["forecast"]
    with open_forecast(path) as lag, open_forecast(reference) as ref:
        assert pd_hours(lag.lead_time.values) == [6, 12, 18]
        np.testing.assert_array_equal(lag.geopotential.values[0, 0], ref.geopotential.values[0, 0, 2:])
    too_early = lagged.model_copy(update={"lag_steps": 40})
    with pytest.raises(EmulatorError, match=r"a lag of 40 steps before .* is before the first time"):
        roll_out_recipes(config, [too_early], tmp_path / "early.nc", options(tmp_path))


def pd_hours(leads: np.ndarray) -> list[int]:
    return [int(lead / np.timedelta64(1, "h")) for lead in leads]


def test_zarr_and_weatherbench2_outputs_hold_the_netcdf_values(trained: tuple[Path, Path], tmp_path: Path) -> None:
    netcdf = run_ensemble(ensemble_config(trained), members=3, options=options(tmp_path / "nc"))
    zarr_config = ensemble_config(trained, "ensemble.output_format=zarr", "forecast.naming=weatherbench2")
    zarr = run_ensemble(zarr_config, members=3, options=options(tmp_path / "zarr"))
    assert zarr["ensemble"].suffix == ".zarr" and zarr["ensemble_spectra"].is_file()
    raw = xr.open_zarr(zarr["ensemble"], decode_timedelta=True)
    assert raw.geopotential.dims == ("realization", "time", "prediction_timedelta", "level", "latitude", "longitude")
    assert raw.attrs["Conventions"].startswith("CF-") and "member_recipes" in raw.attrs
    with open_forecast(netcdf["ensemble"]) as expected, open_forecast(zarr["ensemble"]) as got:
        xr.testing.assert_equal(got.geopotential.load(), expected.geopotential.load())
    with xr.open_dataset(netcdf["ensemble_spectra"]) as a, xr.open_dataset(zarr["ensemble_spectra"]) as b:
        xr.testing.assert_allclose(a.power, b.power)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ensemble.lag_steps=[0, -1]", "ensemble.lag_steps: Value error, lags must be distinct and not negative"),
        ("ensemble.perturbation.kind=bred", "ensemble.perturbation.kind: Input should be"),
        ("ensemble.model_noise.sigma=1", "ensemble.model_noise.sigma: unknown key"),
    ],
)
def test_bad_ensemble_settings_are_one_line_errors(trained: tuple[Path, Path], override: str, message: str) -> None:
    with pytest.raises(EmulatorError, match=message):
        ensemble_config(trained, override)


def test_bred_vectors_grow_faster_than_random_fields_of_the_same_amplitude(trained: tuple[Path, Path]) -> None:
    job = prepare_forecast(ensemble_config(trained), options(Path("unused")))
    weights = torch.as_tensor(job.loaded.grid.area_weights, dtype=torch.float32)[:, None]
    breeding = InitialPerturbationConfig(kind="bred_vector", breeding_cycles=3, breeding_steps=1)
    perturbation = RandomFieldPerturbation(breeding, job.loaded.prognostic, job.loaded.grid)
    random = perturbation.draw(seeded_generator([0, 1]))
    bred = bred_vector(job, breeding, perturbation, job.start, seeded_generator([0, 1]))
    state = job.initial_state()
    *_, after = job.stepper.rollout(torch.cat([state, state + random, state + bred]), job.forcings(job.start, 4))
    growth = ((after[1:] - after[0]).square() * weights).mean(dim=(-2, -1)).sqrt() / perturbation.scale
    assert (growth[1] > growth[0]).all()


NOISY = ("ensemble.model_noise={default_amplitude: 0.02}", "ensemble.lag_steps=[0, 1]")


def _rank(rank: int, world: int, port: int, config: str, out: str) -> None:
    """One process as ``torchrun`` starts it: the group is named by the environment alone."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        run_ensemble(load_config(config, list(NOISY)), members=5, options=options(Path(out)))  # batch size: agreed
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_members_spread_over_two_gloo_ranks_equal_the_single_process_ensemble(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    single = run_ensemble(ensemble_config(trained, *NOISY), members=5, options=options(tmp_path / "single"))
    args = (2, free_port(), str(trained[0]), str(tmp_path / "ranks"))
    mp.spawn(_rank, args=args, nprocs=2, join=True)
    assembled = tmp_path / "ranks" / single["ensemble"].name
    assert sorted(p.name for p in assembled.parent.iterdir()) == sorted(
        [assembled.name, single["ensemble_spectra"].name]
    ), "parts removed, nothing partial"
    with open_forecast(single["ensemble"]) as expected, open_forecast(assembled) as got:
        assert got.attrs["member_recipes"] == expected.attrs["member_recipes"]
        assert got.attrs["member_batch_size"] == "3", "each rank's share of the 5 members, the same on both"
        assert got.member.values.tolist() == [0, 1, 2, 3, 4]
        for name in expected.data_vars:
            np.testing.assert_array_equal(got[name].values, expected[name].values)


def test_padded_batches_write_only_their_members_and_record_the_batch_size(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a GPU a member's bits depend on its batch's size, so short batches are padded there.

    The CPU runs each sample alone, so padding must change nothing that is written.
    """
    config = ensemble_config(trained, *NOISY)  # lag 0: members 0, 2 and 4: the batch of member 4 is short
    plain = run_ensemble(config, members=5, options=options(tmp_path / "plain"))["ensemble"]
    monkeypatch.setattr(ensemble, "pads_batches", lambda device: True)
    padded = run_ensemble(config, members=5, options=options(tmp_path / "padded"))["ensemble"]
    with open_forecast(plain) as expected, open_forecast(padded) as got:
        assert got.attrs["member_batch_size"] == "2"
        assert got.member.values.tolist() == [0, 1, 2, 3, 4]
        for name in expected.data_vars:
            np.testing.assert_array_equal(got[name].values, expected[name].values)
    unbatched = load_config(trained[0])  # no batch size: the reproduction takes the recorded one
    alone = reproduce_members(unbatched, padded, [4], options(tmp_path / "alone"))
    with open_forecast(alone) as got, open_forecast(plain) as expected:
        assert got.attrs["member_batch_size"] == "2"
        np.testing.assert_array_equal(got.geopotential.values[0], expected.geopotential.values[4])
