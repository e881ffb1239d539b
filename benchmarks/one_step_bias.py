"""The systematic part of a checkpoint's one-step error, and the super-rotation it decides.

``python -m benchmarks one_step_bias [--checkpoint PATH] [--store PATH] [--set KEY=VALUE
...]`` steps a checkpoint once from states of a truth store (the held-out world by
default; every sixth hour over its whole record) with the controls of
``configs/world.yaml`` (the ``--set`` overrides as the CLI's; no stochastic forcing,
whose mean is zero) and compares each step with the following truth state:

* ``axial_rotation_truth`` per wind level: the mean super-rotation ``U`` of the
  targets (m s-1 at the equator, :class:`emulator.angular_momentum.AxialRotation`);
* ``axial_rotation_one_step_change``: the stepped states' mean ``U`` over the
  targets', minus one (negative: the step weakens the rotation), with
  ``axial_rotation_one_step_change_stderr``, its standard error over the steps.
  A few per cent lost in each step leave the climate's axial rotation power at a
  fraction of the truth's (``benchmarks/RESULTS.md``, session 23): a minute's check
  that screens out a wrong super-rotation before a climate run;
* ``planetary_mode_one_step_change`` per quantity and mode of
  :mod:`benchmarks.planetary_modes` (the geopotential's power and the rotational
  wind's kinetic energy at each degree 1-3 and order): the stepped states' mean power
  over the targets', minus one. A model trained for the mean squared error damps what
  it cannot predict; at these scales six hours are predictable, so a loss of a few per
  cent each step is a bias the climate inherits;
* ``systematic_share`` per channel: the area mean of the squared mean error over the
  area mean of the mean squared error, the part of the one-step error that the same
  step repeats at every state (a constant bias; 0 for a model whose errors average out).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.planetary_modes import QUANTITIES, PlanetaryModes
from benchmarks.skill import describe_controls, stepper_for, truth_store, world_checkpoint
from benchmarks.timing import emit, note
from emulator.angular_momentum import AxialRotation
from emulator.data.source import ZarrSource
from emulator.quadrature import AreaMean
from emulator.spectra import wind_levels, wind_pair

BENCH = "one_step_bias"
BATCH = 32


def run(
    quick: bool,
    device: torch.device,
    checkpoint: str | None = None,
    store: str | None = None,
    overrides: list[str] | None = None,
) -> None:
    config, path, loaded = world_checkpoint(checkpoint, overrides)
    truth = ZarrSource(store or truth_store(quick), loaded.prognostic)
    stepper = stepper_for(loaded, config.stepper, device)
    normalizer = loaded.normalizer.subset(loaded.prognostic)
    zonal = [loaded.prognostic.index(wind_pair(level)[0]) for level in wind_levels(loaded.prognostic)]
    rotation, area_mean = AxialRotation(loaded.grid).to(device), AreaMean(loaded.grid).to(device)
    modes = PlanetaryModes(loaded.grid, loaded.prognostic)
    note(f"checkpoint {path}; truth {truth.store}; controls {describe_controls(config.stepper)}")
    stepped, target, error, squared, mode_powers = [], [], [], [], []
    for start in range(0, len(truth) - 1, BATCH):
        times = torch.arange(start, min(start + BATCH, len(truth) - 1))
        states = normalizer.normalize(torch.from_numpy(truth.read(times.numpy())).to(device))
        following = normalizer.normalize(torch.from_numpy(truth.read((times + 1).numpy())).to(device))
        with torch.no_grad():
            step = stepper.step(states, states.new_zeros(1, 0, *states.shape[-2:]))
        physical_step, physical_target = normalizer.denormalize(step), normalizer.denormalize(following)
        stepped.append(rotation(physical_step[:, zonal]).double())
        target.append(rotation(physical_target[:, zonal]).double())
        pair = torch.stack([modes.powers(physical_step.cpu()), modes.powers(physical_target.cpu())])
        mode_powers.append(pair * len(times))
        error.append((step - following).double().sum(dim=0))
        squared.append((step - following).double().square().sum(dim=0))
    steps = sum(len(values) for values in stepped)
    mean_step, mean_target = torch.cat(stepped).mean(dim=0), torch.cat(target).mean(dim=0)
    stderr = (torch.cat(stepped) - torch.cat(target)).std(dim=0) / steps**0.5
    base = {"steps": steps, "truth": Path(truth.store).name, "checkpoint": path.name}
    for index, level in enumerate(wind_levels(loaded.prognostic)):  # the order of ``zonal``
        figure = {**base, "level": level}
        emit(BENCH, "axial_rotation_truth", float(mean_target[index]), figure, device)
        emit(BENCH, "axial_rotation_one_step_change", float(mean_step[index] / mean_target[index] - 1), figure, device)
        relative_stderr = float(stderr[index] / mean_target[index].abs())
        emit(BENCH, "axial_rotation_one_step_change_stderr", relative_stderr, figure, device)
    step_power, target_power = sum(mode_powers)
    for quantity, changes in zip(QUANTITIES, step_power / target_power - 1, strict=True):
        for label, change in zip(modes.labels, changes, strict=True):
            figure = {**base, "quantity": quantity, "mode": label}
            emit(BENCH, "planetary_mode_one_step_change", float(change), figure, device)
    bias = area_mean((sum(error) / steps).square().float())[:, 0, 0]
    total = area_mean((sum(squared) / steps).float())[:, 0, 0]
    for index, channel in enumerate(loaded.prognostic):
        emit(BENCH, "systematic_share", float(bias[index] / total[index]), {**base, "channel": channel}, device)
