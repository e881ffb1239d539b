"""Speed of a long rollout of the default model, every stability control on, against the solver.

Figures: ``sypd`` (simulated years per wall-clock day of the emulator) and
``speedup_vs_solver`` (the built-in world's shallow-water solver producing the
same simulated time at the same resolution, over the emulator). The model and
its controls are those of ``configs/world.yaml``; timings interleaved, median of
repeats.
"""

from __future__ import annotations

from pathlib import Path

import torch

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
    stepper = Stepper(checkpoint.model, normalizer, controls, checkpoint.grid).to(device).eval()
    steps, repeats = (4, 2) if quick else (120, 3)
    forcings = no_forcing(checkpoint, steps, device)
    initial = initial_states(checkpoint, 1, device)
    world = ForcedShallowWater(config.world.physics, seed=0)
    solver_steps = round(config.world.output_interval_hours * 3600 / config.world.physics.dt_seconds) * steps

    def emulate() -> None:
        for _ in stepper.rollout(initial, forcings):
            pass

    times = interleaved_medians({"emulator": emulate, "solver": lambda: world.step(solver_steps)}, repeats, device)
    simulated = steps * config.world.output_interval_hours * 3600 / SECONDS_PER_YEAR
    note(f"{steps} steps: emulator {times['emulator']:.3f} s, solver {times['solver']:.3f} s")
    figure_config = {
        "grid": list(checkpoint.grid.shape),
        "steps": steps,
        "controls": controls.model_dump_json(exclude={"residual"}),
    }
    emit(BENCH, "sypd", simulated / (times["emulator"] / 86_400), figure_config, device)
    emit(BENCH, "speedup_vs_solver", times["solver"] / times["emulator"], figure_config, device)
