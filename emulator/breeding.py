"""Bred vectors: perturbations grown by the model over the window before the initial time.

A cycle starts from the store's state ``x_t`` and ``x_t + d``, runs both ``n``
steps with the model, and rescales the difference channel by channel to the
amplitude ``a_c`` (area-weighted RMS): ``d <- a_c (y'_c - y_c) / rms(y'_c - y_c)``.
The first ``d`` is a Gaussian random field; after the last cycle, ``d`` is the
perturbation of the state at the initial time. Pairs are run in batches of two,
so a member's bred vector does not depend on the other members.
"""

from __future__ import annotations

import torch

from emulator.errors import EmulatorError
from emulator.forecast import ForecastJob
from emulator.perturbations import InitialPerturbationConfig, RandomFieldPerturbation


def rescale(difference: torch.Tensor, amplitude: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``difference`` ``(channel, lat, lon)`` with each channel's area-weighted RMS set to ``amplitude``."""
    rms = (difference.square() * weights).mean(dim=(-2, -1)).sqrt()
    factor = torch.where(rms > 0, amplitude / rms.clamp_min(torch.finfo(rms.dtype).tiny), torch.zeros_like(rms))
    return difference * factor[:, None, None]


def bred_vector(
    job: ForecastJob,
    config: InitialPerturbationConfig,
    perturbation: RandomFieldPerturbation,
    start: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """The bred perturbation ``(channel, lat, lon)`` of the normalized state at store index ``start``."""
    first = start - config.breeding_cycles * config.breeding_steps
    if first < 0:
        raise EmulatorError(
            f"ensemble.perturbation: breeding needs {config.breeding_cycles} x {config.breeding_steps} steps "
            f"before {job.source.times[start]}, but {job.source.store} starts at {job.source.times[0]}"
        )
    weights = torch.as_tensor(job.loaded.grid.area_weights, dtype=torch.float32, device=job.device)[:, None]
    amplitude = perturbation.scale.to(job.device)
    difference = perturbation.draw(generator).to(job.device)
    for cycle in range(config.breeding_cycles):
        origin = first + cycle * config.breeding_steps
        analysis = job.state_at(origin)[0]
        pair = torch.stack([analysis, analysis + difference])
        for state in job.stepper.rollout(pair, job.forcings(origin, config.breeding_steps)):
            pair = state
        difference = rescale(pair[1] - pair[0], amplitude, weights)
    return difference
