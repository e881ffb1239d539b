"""The world ensemble as the amplitude of its initial perturbations varies.

The setting of the ``skill`` benchmark's ensemble figures: ``configs/world.yaml``'s
model and stability controls, 8 members (the control and 7 Gaussian random fields of
500 km), 12 initial times 5 days apart in the held-out year, at leads of 1 and 5 days,
for amplitudes of 0.05, 0.2 and 0.5 standard deviations. Figures per amplitude and
channel: ``spread_skill_{1,5}d``, ``crps_{1,5}d`` and ``mean_over_control_{1,5}d``
(the ensemble mean's RMSE over the control member's).
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
    stepper = stepper_for(checkpoint, config.stepper, device)
    note(f"truth {truth.store}; {len(inits)} initial times")
    for amplitude in AMPLITUDES[::2] if quick else AMPLITUDES:
        perturbation = RandomFieldConfig(default_amplitude=amplitude)
        ensemble_scores(checkpoint, stepper, truth, inits, days, device, perturbation, bench=BENCH)
