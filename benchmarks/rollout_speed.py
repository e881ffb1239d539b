"""Speed of a long rollout of the default model, every stability control on, against the solver.

Figures: ``sypd`` (simulated years per wall-clock day of the emulator),
``speedup_vs_solver`` (the built-in world's shallow-water solver producing the
same simulated time at the same resolution, over the emulator) and, when the
config or the checkpoint gives climate rollouts a stochastic forcing, ``sypd_with_stochastic_forcing``
and ``stochastic_forcing_overhead`` (its time over the deterministic rollout's,
minus one), as the ``skill`` benchmark's climate rollouts run it. The model and
its controls are those of ``configs/world.yaml``; timings interleaved, median of
repeats.

On CUDA the full mode also rolls out the network of ``configs/era5_240x121.yaml``
(69 prognostic channels and 7 forcings, width 256, 8 blocks; untrained) at 1 degree
(181x360) and 0.25 degree (721x1440), with the world's controls and the ones that
apply to ERA5's channels: ``sypd`` and ``seconds_per_step`` per grid. Quick mode runs
that path at 32x64 on any device, so that it stays tested.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import emit, interleaved_medians, note
from benchmarks.world_model import initial_states, no_forcing
from emulator.checkpoint import load_checkpoint
from emulator.config import StepperConfig, load_config
from emulator.data.normalizer import Normalizer
from emulator.grid import Grid
from emulator.models.registry import parameter_count
from emulator.stability import Bounds
from emulator.stepper import Stepper
from emulator.world.shallow_water import ForcedShallowWater

BENCH = "rollout_speed"
ROOT = Path(__file__).resolve().parent.parent
SECONDS_PER_YEAR = 365 * 86_400
ERA5_GRIDS = {"1deg": (181, 360), "0.25deg": (721, 1440)}
ERA5_QUICK_GRIDS = {"32x64": (32, 64)}
ERA5_INTERVAL_HOURS = 6


def simulated_years(steps: int, interval_hours: int) -> float:
    return steps * interval_hours * 3600 / SECONDS_PER_YEAR


def exhaust(stepper: Stepper, initial: torch.Tensor, forcings: list[torch.Tensor]) -> None:
    """Run a whole rollout, keeping nothing."""
    for _ in stepper.rollout(initial, forcings):
        pass


def run(quick: bool, device: torch.device) -> None:
    config = load_config(ROOT / "configs" / "world.yaml")
    assert config.world is not None
    checkpoint = load_checkpoint(ROOT / config.forecast.checkpoint)
    controls = config.stepper.model_copy(update={"residual": checkpoint.config.stepper.residual})
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    forced_controls = config.climate_stepper(checkpoint.config).model_copy(update={"residual": controls.residual})
    steppers = {"emulator": Stepper(checkpoint.model, normalizer, controls, checkpoint.grid)}
    if forced_controls.stochastic_forcing is not None:
        statistics = checkpoint.residual_statistics
        steppers["forced"] = Stepper(checkpoint.model, normalizer, forced_controls, checkpoint.grid, statistics)
    steps, repeats = (4, 2) if quick else (120, 3)
    forcings = no_forcing(checkpoint, steps, device)
    initial = initial_states(checkpoint, 1, device)
    world = ForcedShallowWater(config.world.physics, seed=0)
    solver_steps = round(config.world.output_interval_hours * 3600 / config.world.physics.dt_seconds) * steps

    timed = {name: partial(exhaust, stepper.to(device).eval(), initial, forcings) for name, stepper in steppers.items()}
    times = interleaved_medians(timed | {"solver": lambda: world.step(solver_steps)}, repeats, device)
    simulated = simulated_years(steps, config.world.output_interval_hours)
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
    era5_rollouts(quick, device, config.stepper)


def era5_controls(channels: list[str], world_controls: StepperConfig) -> StepperConfig:
    """The world's controls, the clamp and fixer moved to ERA5's humidity and sea-level pressure."""
    humidity = [channel for channel in channels if channel.startswith("specific_humidity")]
    return world_controls.model_copy(
        update={"clamp": dict.fromkeys(humidity, Bounds(min=0.0)), "conserve": ["mean_sea_level_pressure"]}
    )


def era5_stepper(grid: Grid, world_controls: StepperConfig) -> tuple[Stepper, int]:
    """The untrained network of ``configs/era5_240x121.yaml`` on ``grid``, and its number of forcings.

    The statistics are unit (store units are normalized units) and the tendencies zero,
    so the state stays the initial one whatever the untrained network outputs (its
    steps would trip the divergence guard within two steps): the time is the
    network's and the controls', which do not depend on the values.
    """
    config = load_config(ROOT / "configs" / "era5_240x121.yaml")
    channels = config.data.prognostic
    model = config.model.build(len(channels) + len(config.data.forcing), len(channels), grid)
    ones = np.ones(len(channels))
    normalizer = Normalizer(tuple(channels), 0.0 * ones, ones, 0.0 * ones)
    stepper = Stepper(model, normalizer, era5_controls(channels, world_controls), grid)
    return stepper, len(config.data.forcing)


def era5_rollouts(quick: bool, device: torch.device, world_controls: StepperConfig) -> None:
    """Seconds per step and simulated years per day of the ERA5-sized network at 1 and 0.25 degrees."""
    if device.type != "cuda" and not quick:
        return
    steps, repeats = (2, 1) if quick else (20, 3)
    for name, shape in (ERA5_QUICK_GRIDS if quick else ERA5_GRIDS).items():
        stepper, forcing_channels = era5_stepper(Grid(*shape), world_controls)
        stepper = stepper.to(device).eval()
        generator = torch.Generator().manual_seed(0)
        initial = torch.randn(1, len(stepper.channels), *shape, generator=generator).to(device)
        forcings = [torch.zeros(1, forcing_channels, *shape, device=device)] * steps
        emulate = partial(exhaust, stepper, initial, forcings)
        seconds = interleaved_medians({name: emulate}, repeats, device)[name] / steps
        note(f"ERA5-sized network at {name} ({shape[0]}x{shape[1]}): {seconds * 1e3:.1f} ms per step")
        figure_config = {
            "grid": list(shape),
            "network": "configs/era5_240x121.yaml",
            "parameters": parameter_count(stepper.model),
            "controls": stepper.config.model_dump_json(exclude={"residual"}),
        }
        emit(BENCH, "seconds_per_step", seconds, figure_config, device)
        emit(BENCH, "sypd", simulated_years(1, ERA5_INTERVAL_HOURS) / (seconds / 86_400), figure_config, device)
        del stepper, initial, forcings, emulate
        if device.type == "cuda":
            torch.cuda.empty_cache()
