"""Ensemble forecasts: members made from recipes, rolled out in batches, across ranks.

Every member's recipe (checkpoint and its hash, lag, initial perturbation, model
noise, generator seeds; see :mod:`emulator.members`) is stored in the output's
``member_recipes`` attribute (JSON), and :func:`roll_out_recipes` re-runs any of
them exactly. Members sharing a checkpoint and a lag are batched; unless the
config gives a batch size, it is chosen to fit half the device's free memory (at
most 8 members on a CPU), and it is recorded as ``member_batch_size``.

On a CPU a member's bits do not depend on its batch (the models run each sample
alone there; :mod:`emulator.models.samples`). On a GPU the batch runs whole, and a
member's bits depend on the batch size, though not on the other members or their
order (measured on an H100; benchmarks/RESULTS.md). So there every batch is padded
to the recorded size with copies of its last member, run but not written, and a
reproduction runs its members in batches of that size too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Sequence
from itertools import groupby
from pathlib import Path

import numpy as np
import torch

from emulator.checkpoint import file_hash
from emulator.config import Config
from emulator.distributed import assemble_parts, barrier, member_ranks, part_path, smallest_over_ranks
from emulator.errors import EmulatorError
from emulator.forecast import (
    ForecastJob,
    MemberBatch,
    RolloutOptions,
    forecast_layout,
    output_directory,
    prepare_forecast,
    write_rollouts,
)
from emulator.io.forecast_reader import open_forecast
from emulator.io.spectra_writer import write_spectra
from emulator.members import MemberRecipe, ModelNoise, Perturbations, ensemble_recipes, initial_state

LOG = logging.getLogger(__name__)
MEMORY_FRACTION = 0.5
ACTIVATIONS_PER_POINT = 8  # live float32 activations per grid point, in model widths: a conservative estimate
# On a CPU the SFNO runs each member of a batch alone, so batches gain little there (at
# 64x128 the world model costs 15.1, 14.4 and 14.6 ms per member-step in batches of 1, 8
# and 64; benchmarks/RESULTS.md): CPU batches stop at 8 members.
CPU_BATCH_LIMIT = 8


def free_memory_bytes(device: torch.device) -> int:
    """Free memory of the device (GPU) or of the machine (CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def member_batch_size(job: ForecastJob, members: int) -> int:
    """How many members fit in half the free memory, by the model's widest activations."""
    width = max(
        module.weight.shape[0]
        for module in job.loaded.model.modules()
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear)
    )
    per_member = 4 * ACTIVATIONS_PER_POINT * width * job.loaded.grid.nlat * job.loaded.grid.nlon
    fitting = int(MEMORY_FRACTION * free_memory_bytes(job.device) // per_member)
    limit = CPU_BATCH_LIMIT if job.device.type == "cpu" else members
    return max(1, min(members, fitting, limit))


def pads_batches(device: torch.device) -> bool:
    """Whether a batch's size changes its members' bits on ``device``: models run batches whole off the CPU."""
    return device.type != "cpu"


def prepare_checkpoints(config: Config, paths: Sequence[str], options: RolloutOptions) -> dict[str, ForecastJob]:
    """One forecast job per checkpoint; all must predict the same channels on the same grid.

    The members run with the climate forcing when ``options.climate`` or ``ensemble.climate_forcing`` asks.
    """
    climate = options.climate or config.ensemble.climate_forcing
    jobs = {
        path: prepare_forecast(config, dataclasses.replace(options, checkpoint=path, climate=climate)) for path in paths
    }
    first = jobs[paths[0]].loaded
    for path, job in jobs.items():
        if job.loaded.prognostic != first.prognostic or job.loaded.grid != first.grid:
            raise EmulatorError(
                f"ensemble.checkpoints: {path} predicts {job.loaded.prognostic} on {job.loaded.grid}, "
                f"{paths[0]} {first.prognostic} on {first.grid}"
            )
    return jobs


def _batches(
    jobs: dict[str, ForecastJob], recipes: Sequence[MemberRecipe], member_ids: Sequence[int], batch_size: int
) -> Iterator[MemberBatch]:
    """Batches of members sharing a checkpoint and a lag, their initial states made when needed.

    Where :func:`pads_batches`, a short batch is filled up with copies of its last
    member's initial state (made once, and without model noise: they are never written).
    """
    perturbations = {path: Perturbations(job) for path, job in jobs.items()}
    rows = {member: row for row, member in enumerate(member_ids)}

    def key(recipe: MemberRecipe) -> tuple[str, int]:
        return recipe.checkpoint, recipe.lag_steps

    for (path, lag), group in groupby(sorted(recipes, key=key), key=key):
        members = sorted(group, key=lambda r: r.member)
        for first in range(0, len(members), batch_size):
            chunk = members[first : first + batch_size]
            job = jobs[path]
            written = np.array([rows[r.member] for r in chunk])
            initial = torch.stack([initial_state(job, r, perturbations[path]) for r in chunk])
            if pads_batches(job.device):
                padding = batch_size - len(chunk)
                initial = torch.cat([initial, initial[-1:].expand(padding, -1, -1, -1)])
                chunk += [chunk[-1].model_copy(update={"model_noise": None, "noise_generator_seed": None})] * padding
            noise = ModelNoise(chunk, perturbations[path])
            ids = [r.member for r in chunk]
            yield MemberBatch(job, initial, ids, written, lag, noise if noise.active else None)


def _roll_out(
    jobs: dict[str, ForecastJob], recipes: Sequence[MemberRecipe], path: Path, attrs: dict[str, str], batch_size: int
) -> Path:
    first = next(iter(jobs.values()))
    member_ids = [r.member for r in recipes]
    layout = forecast_layout(first, member_ids, attrs)
    return write_rollouts(path, layout, _batches(jobs, recipes, member_ids, batch_size), first.steps, first.device)


def _recorded(recipes: Sequence[MemberRecipe]) -> str:
    return json.dumps([r.model_dump(mode="json") for r in recipes])


def roll_out_recipes(
    config: Config,
    recipes: Sequence[MemberRecipe],
    path: Path,
    options: RolloutOptions = RolloutOptions(),
    batch_size: int | None = None,
) -> Path:
    """Roll out exactly the members of ``recipes`` (e.g. read back from an output) into ``path``.

    ``batch_size`` (default: the config's, else as many as fit) must be the
    ensemble's ``member_batch_size`` for the same bits where :func:`pads_batches`.
    """
    paths = list(dict.fromkeys(r.checkpoint for r in recipes))
    for recipe in recipes:
        if file_hash(recipe.checkpoint) != recipe.checkpoint_sha256:
            raise EmulatorError(f"member {recipe.member}: {recipe.checkpoint} is not the checkpoint of its recipe")
    jobs = prepare_checkpoints(config, paths, options)
    first = jobs[paths[0]]
    batch_size = batch_size or config.ensemble.batch_size or member_batch_size(first, len(recipes))
    attrs = first.attrs("ensemble") | {"member_recipes": _recorded(recipes), "member_batch_size": str(batch_size)}
    return _roll_out(jobs, recipes, path, attrs, batch_size)


def reproduce_members(
    config: Config, ensemble: Path, member_ids: Sequence[int], options: RolloutOptions = RolloutOptions()
) -> Path:
    """Re-run members of an ensemble output from the recipes it records; write ``members_<ids>_<name>``.

    The config and options must give the same store, initial time, lead and forcing as the ensemble's.
    """
    with open_forecast(ensemble) as forecast:
        recorded = json.loads(forecast.attrs.get("member_recipes", "[]"))
        batch_size = int(forecast.attrs.get("member_batch_size", 0)) or None
    recipes = {recipe["member"]: MemberRecipe.model_validate(recipe) for recipe in recorded}
    missing = sorted(set(member_ids) - set(recipes))
    if missing:
        raise EmulatorError(f"{ensemble}: no recipe for members {missing}")
    name = "_".join(str(member) for member in member_ids)
    path = output_directory(config, options) / f"members_{name}_{Path(ensemble).stem}.nc"
    return roll_out_recipes(config, [recipes[member] for member in member_ids], path, options, batch_size)


def run_ensemble(
    config: Config, members: int | None = None, options: RolloutOptions = RolloutOptions()
) -> dict[str, Path]:
    """Write ``ensemble_<init>.nc`` (or ``.zarr``) and its spectra; return their paths.

    Under ``torchrun`` each rank rolls out its share of the members and rank 0
    assembles the output.
    """
    settings = config.ensemble
    paths = settings.checkpoints or [options.checkpoint or config.forecast.checkpoint]
    jobs = prepare_checkpoints(config, paths, options)
    recipes = ensemble_recipes(settings, members or settings.members, [(p, file_hash(p)) for p in paths])
    first = jobs[paths[0]]
    rank, world = member_ranks()
    # one size on every rank (each one's free memory may differ), as a reproduction must use it
    share = -(-len(recipes) // world)
    batch_size = settings.batch_size or smallest_over_ranks(member_batch_size(first, share), world)
    attrs = first.attrs("ensemble") | {
        "member_recipes": _recorded(recipes),
        "member_batch_size": str(batch_size),
        "checkpoints": json.dumps({p: file_hash(p) for p in paths}),
    }
    out_dir = output_directory(config, options)
    stamp = first.init.strftime("%Y%m%dT%H%M")
    path = out_dir / f"ensemble_{stamp}.{'zarr' if settings.output_format == 'zarr' else 'nc'}"
    if world == 1:
        _roll_out(jobs, recipes, path, attrs, batch_size)
    else:
        mine = recipes[rank::world]
        LOG.info("rank %d of %d: members %s", rank, world, [r.member for r in mine])
        if mine:
            _roll_out(jobs, mine, part_path(path, rank), attrs, batch_size)
        barrier(world)
        if rank == 0:
            layout = forecast_layout(first, [r.member for r in recipes], attrs)
            assemble_parts([part_path(path, r) for r in range(min(world, len(recipes)))], path, layout)
        barrier(world)
    spectra = out_dir / f"ensemble_spectra_{stamp}.nc"
    if rank == 0:
        write_spectra(path, spectra)
    barrier(world)
    return {"ensemble": path, "ensemble_spectra": spectra}
