"""The world ensemble as the amplitude of its initial perturbations varies, without and with the climate forcing.

The setting of the ``skill`` benchmark's ensemble figures: ``configs/world.yaml``'s
model and stability controls, 8 members (the control and 7 Gaussian random fields of
500 km), 12 initial times 5 days apart in the held-out year, at leads of 1 and 5 days,
for amplitudes of 0.05, 0.2 and 0.5 standard deviations; then the same with every
member, the control too, through the config's climate forcing
(:meth:`~emulator.config.Config.climate_stepper`, as ``ensemble.climate_forcing``
runs it). Figures per forcing (``climate_forcing`` in the config), amplitude and
channel: ``spread_skill_{1,5}d``, ``crps_{1,5}d``, ``mean_rmse_{1,5}d`` (the ensemble
mean's RMSE) and ``mean_over_control_{1,5}d`` (that over the control member's; without
the forcing, the control is the deterministic forecast).
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.skill import ROOT, STEPS_PER_DAY, ensemble_scores, stepper_for, truth_store
from benchmarks.timing import note
from emulator.checkpoint import load_checkpoint
from emulator.config import load_config
from emulator.data.source import ZarrSource
from emulator.perturbations import RandomFieldConfig

BENCH = "ensemble_amplitude"
AMPLITUDES = (0.05, 0.2, 0.5)


def run(quick: bool, device: torch.device) -> None:
    config = load_config(ROOT / "configs" / "world.yaml")
    checkpoint = load_checkpoint(ROOT / config.forecast.checkpoint)
    truth = ZarrSource(truth_store(quick), checkpoint.prognostic)
    days = (1, 2) if quick else (1, 5)
    inits = np.arange(0, len(truth) - days[-1] * STEPS_PER_DAY, 5 * STEPS_PER_DAY)[: 1 if quick else 12]
    note(f"truth {truth.store}; {len(inits)} initial times")
    for forced in (False, True):
        controls = config.climate_stepper(checkpoint.config) if forced else config.stepper
        stepper = stepper_for(checkpoint, controls, device)
        for amplitude in AMPLITUDES[::2] if quick else AMPLITUDES:
            perturbation = RandomFieldConfig(default_amplitude=amplitude)
            ensemble_scores(
                checkpoint, stepper, truth, inits, days, device, perturbation, {"climate_forcing": forced}, BENCH
            )
