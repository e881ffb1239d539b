"""Cost of writing NetCDF every step of a rollout, against the same rollout writing nothing.

Figure ``overhead_fraction``: (time with the CF writer) / (time without) - 1, the
committed built-in-world model, one member, interleaved and median of repeats.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import torch

from benchmarks.timing import emit, interleaved_medians, note
from benchmarks.world_model import initial_states, no_forcing, world_stepper
from emulator.io.layout import ForecastLayout
from emulator.io.output import forecast_output

BENCH = "writer_overhead"


def run(quick: bool, device: torch.device) -> None:
    checkpoint, stepper = world_stepper(device)
    steps, repeats = (4, 2) if quick else (40, 5)
    forcings = no_forcing(checkpoint, steps, device)
    initial = initial_states(checkpoint, 1, device)
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    directory = Path(tempfile.mkdtemp(prefix="writer_overhead_"))

    def silent() -> None:
        for state in stepper.rollout(initial, forcings):
            normalizer.denormalize(state).cpu().numpy()

    leads = [6.0 * (lead + 1) for lead in range(steps)]
    layout = ForecastLayout(checkpoint.prognostic, {}, checkpoint.grid, pd.Timestamp("2000-01-01"), [0], leads, {})

    def writing() -> None:
        with forecast_output(directory / "forecast.nc", layout) as writer:
            for lead, state in enumerate(stepper.rollout(initial, forcings)):
                writer.write(lead, normalizer.denormalize(state).cpu().numpy())

    times = interleaved_medians({"silent": silent, "writing": writing}, repeats, device)
    note(f"{steps} steps: {times['writing']:.3f} s writing, {times['silent']:.3f} s silent")
    config = {"grid": list(checkpoint.grid.shape), "steps": steps, "model": checkpoint.config.model.name}
    emit(BENCH, "overhead_fraction", times["writing"] / times["silent"] - 1.0, config, device)
