"""Speed of a long rollout of the default model, every stability control on, against the solver.

Figures: ``sypd`` (simulated years per wall-clock day of the emulator),
``speedup_vs_solver`` (the built-in world's shallow-water solver producing the
same simulated time at the same resolution, over the emulator) and, when the
checkpoint was trained through a stochastic forcing, ``sypd_with_stochastic_forcing``
and ``stochastic_forcing_overhead`` (its time over the deterministic rollout's,
minus one), as the ``skill`` benchmark's climate rollouts run it. The model and
its controls are those of ``configs/world.yaml``; timings interleaved, median of
repeats.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from benchmarks.skill import climate_controls
from benchmarks.timing import emit, interleaved_medians, note
from benchmarks.world_model import initial_states, no_forcing
from emulator.checkpoint import load_checkpoint
from emulator.config import load_config
from emulator.stepper import Stepper
from emulator.world.shallow_water import ForcedShallowWater

BENCH = "rollout_speed"
ROOT = Path(__file__).resolve().parent.parent
SECONDS_PER_YEAR = 365 * 86_400


def run(quick: bool, device: torch.device) -> None:
    config = load_config(ROOT / "configs" / "world.yaml")
    assert config.world is not None
    checkpoint = load_checkpoint(ROOT / config.forecast.checkpoint)
    controls = config.stepper.model_copy(update={"residual": checkpoint.config.stepper.residual})
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    forced_controls = climate_controls(checkpoint, controls)
    steppers = {"emulator": Stepper(checkpoint.model, normalizer, controls, checkpoint.grid)}
    if forced_controls.stochastic_forcing is not None:
        statistics = checkpoint.residual_statistics
        steppers["forced"] = Stepper(checkpoint.model, normalizer, forced_controls, checkpoint.grid, statistics)
    steps, repeats = (4, 2) if quick else (120, 3)
    forcings = no_forcing(checkpoint, steps, device)
    initial = initial_states(checkpoint, 1, device)
    world = ForcedShallowWater(config.world.physics, seed=0)
    solver_steps = round(config.world.output_interval_hours * 3600 / config.world.physics.dt_seconds) * steps

    def emulate(stepper: Stepper) -> None:
        for _ in stepper.rollout(initial, forcings):
            pass

    timed = {name: partial(emulate, stepper.to(device).eval()) for name, stepper in steppers.items()}
    times = interleaved_medians(timed | {"solver": lambda: world.step(solver_steps)}, repeats, device)
    simulated = steps * config.world.output_interval_hours * 3600 / SECONDS_PER_YEAR
    note(f"{steps} steps: " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in times.items()))
    figure_config = {
        "grid": list(checkpoint.grid.shape),
        "steps": steps,
        "controls": controls.model_dump_json(exclude={"residual"}),
    }
    emit(BENCH, "sypd", simulated / (times["emulator"] / 86_400), figure_config, device)
    emit(BENCH, "speedup_vs_solver", times["solver"] / times["emulator"], figure_config, device)
    if "forced" in times:
        forced_config = figure_config | {"controls": forced_controls.model_dump_json(exclude={"residual"})}
        emit(BENCH, "sypd_with_stochastic_forcing", simulated / (times["forced"] / 86_400), forced_config, device)
        emit(BENCH, "stochastic_forcing_overhead", times["forced"] / times["emulator"] - 1.0, forced_config, device)
