"""Ensemble forecasts: perturbed initial states rolled out in batches of members.

Every member's recipe (perturbation, amplitude, length scale, generator seed) is
stored in the output's ``member_recipes`` attribute (JSON), so any member can be
reproduced exactly. Members are batched; unless the config gives a batch size,
it is chosen to fit half the device's free memory (at most 8 members on a CPU).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from emulator.config import Config
from emulator.forecast import ForecastJob, RolloutOptions, output_directory, prepare_forecast, roll_out_to_netcdf
from emulator.io.spectra_writer import write_spectra
from emulator.perturbations import GaussianFieldPerturbation

LOG = logging.getLogger(__name__)
MEMORY_FRACTION = 0.5
ACTIVATIONS_PER_POINT = 8  # live float32 activations per grid point, in model widths: a conservative estimate
# On CPUs large batches are memory-bound: at 64x128 the world model costs 40, 29 and
# 54 ms per member-step in batches of 1, 8 and 64 (benchmarks/RESULTS.md), so CPU
# batches stop at 8 members.
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


def run_ensemble(
    config: Config, members: int | None = None, options: RolloutOptions = RolloutOptions()
) -> dict[str, Path]:
    """Write ``ensemble_<init>.nc`` and its spectra; return their paths."""
    settings = config.ensemble
    count = members or settings.members
    job = prepare_forecast(config, options)
    perturbation = GaussianFieldPerturbation(settings.perturbation, job.loaded.prognostic, job.loaded.grid)
    control = job.initial_state()[0]
    initial = torch.stack([perturbation.member(control, member) for member in range(count)])
    batch = settings.batch_size or member_batch_size(job, count)
    attrs = job.attrs("ensemble") | {"member_recipes": json.dumps([perturbation.recipe(m) for m in range(count)])}
    out_dir = output_directory(config, options)
    stamp = job.init.strftime("%Y%m%dT%H%M")
    path = roll_out_to_netcdf(job, initial, out_dir / f"ensemble_{stamp}.nc", attrs, batch)
    return {"ensemble": path, "ensemble_spectra": write_spectra(path, out_dir / f"ensemble_spectra_{stamp}.nc")}
