"""Cost of writing NetCDF every step of a rollout, against the same rollout writing nothing.

Figure ``overhead_fraction``: (time with the CF writer) / (time without) - 1, the
committed built-in-world model, one member, interleaved and median of repeats; one
figure per NetCDF compression (``config.compression``; ``zlib`` is the default) and
per way of writing (``config.background``: in a thread beside the rollout, as
forecasts do off the CPU, or inline, as they do on a CPU).
"""

from __future__ import annotations

from functools import partial
from typing import get_args

import pandas as pd
import torch

from benchmarks.scratch import scratch_directory
from benchmarks.timing import emit, interleaved_medians, note
from benchmarks.world_model import initial_states, no_forcing, world_stepper
from emulator.io.layout import Compression, ForecastLayout
from emulator.io.output import forecast_output

BENCH = "writer_overhead"


def run(quick: bool, device: torch.device) -> None:
    checkpoint, stepper = world_stepper(device)
    steps, repeats = (4, 2) if quick else (40, 9)
    forcings = no_forcing(checkpoint, steps, device)
    initial = initial_states(checkpoint, 1, device)
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    directory = scratch_directory("writer_overhead_")

    def silent() -> None:
        for state in stepper.rollout(initial, forcings):
            normalizer.denormalize(state).cpu().numpy()

    leads = [6.0 * (lead + 1) for lead in range(steps)]
    compressions: tuple[Compression, ...] = get_args(Compression)

    def writing(compression: Compression, background: bool) -> None:
        layout = ForecastLayout(
            checkpoint.prognostic, {}, checkpoint.grid, pd.Timestamp("2000-01-01"), [0], leads, {}, "cf", compression
        )
        with forecast_output(directory / f"forecast_{compression}.nc", layout, background) as writer:
            for lead, state in enumerate(stepper.rollout(initial, forcings)):
                writer.write(lead, normalizer.denormalize(state).cpu().numpy())

    variants = {
        (name, background): f"{name} thread" if background else name
        for name in compressions
        for background in (False, True)
    }
    runs = {"silent": silent} | {label: partial(writing, *variant) for variant, label in variants.items()}
    times = interleaved_medians(runs, repeats, device)
    note(f"{steps} steps: " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in times.items()))
    config = {"grid": list(checkpoint.grid.shape), "steps": steps, "model": checkpoint.config.model.name}
    for (name, background), label in variants.items():
        figure_config = config | {"compression": name, "background": background}
        emit(BENCH, "overhead_fraction", times[label] / times["silent"] - 1.0, figure_config, device)
