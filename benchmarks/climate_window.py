"""The climate loss's gradient window: time and memory of one optimizer step's term, with and without recompute.

``python -m benchmarks climate_window [--checkpoint PATH]`` runs a checkpoint's network
(the committed one by default) as ``train.climate``'s chains: 8 chains (2 with
``--quick``) through windows of 2, 20 and 40 steps (4 with ``--quick``) with gradient,
the term's forward and backward timed interleaved with and without ``recompute``.
Figures per window and setting: ``seconds_per_window`` and ``saved_bytes`` (what the
autograd graph holds at the end of the forward, counted by saved-tensor hooks), and
``recompute_time_factor`` and ``recompute_memory_factor`` (recomputing over keeping).
The chains start from the normalizer's mean plus noise of a tenth of its deviation, and
the target is their own diagnostics: the values do not matter here, the work does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.scratch import scratch_directory
from benchmarks.skill import stepper_for, world_checkpoint
from benchmarks.timing import emit, interleaved_medians, note
from emulator.config import StepperConfig
from emulator.training.climate import ClimateConstraint, ClimateLossConfig
from emulator.world.climate import DailyClimate, Diagnostics, climate_dataset

BENCH = "climate_window"
WINDOWS, WINDOWS_QUICK = (2, 20, 40), (4,)
CHAINS, CHAINS_QUICK = 8, 2
REPEATS, REPEATS_QUICK = 3, 1


def write_target(states: torch.Tensor, diagnostics: Diagnostics, path: Path) -> str:
    """A one-day target climate: the diagnostics of physical ``states``."""
    daily = DailyClimate(
        diagnostics.energy(states).mean()[None, None],
        diagnostics.bands(states).mean(dim=0)[None, None],
        states.mean(dim=(0, -1))[None, None],
    )
    climate_dataset(daily, diagnostics).to_netcdf(path)
    return str(path)


def saved_bytes(forward: Callable[[], torch.Tensor]) -> tuple[int, torch.Tensor]:
    """Bytes of the tensors the autograd graph saves while ``forward()`` builds it, and its output."""
    total = 0

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        output = forward()
    return total, output


def run(quick: bool, device: torch.device, checkpoint: str | None = None) -> None:
    _, path, loaded = world_checkpoint(checkpoint)
    normalizer = loaded.normalizer.subset(loaded.prognostic)
    stepper = stepper_for(loaded, StepperConfig(), device)
    chains = CHAINS_QUICK if quick else CHAINS
    generator = torch.Generator().manual_seed(0)
    shape = (chains, len(loaded.prognostic), loaded.grid.nlat, loaded.grid.nlon)
    states = (0.1 * torch.randn(shape, generator=generator)).to(device)
    diagnostics = Diagnostics(loaded.grid, loaded.prognostic)
    physical = normalizer.denormalize(states.cpu()).double()
    target = write_target(physical, diagnostics, scratch_directory("climate_window_") / "target.nc")
    note(f"checkpoint {path}; {chains} chains of {loaded.grid.nlat} x {loaded.grid.nlon}")
    for window in WINDOWS_QUICK if quick else WINDOWS:
        terms = {}
        for recompute in (False, True):
            config = ClimateLossConfig(
                target=target, zonal_weight=1.0, chains=chains, steps=window, spinup_steps=0, recompute=recompute
            )
            climate = ClimateConstraint(config, normalizer, loaded.grid).to(device)
            climate.start(stepper, states)
            terms["recompute" if recompute else "keep"] = climate

        def forward(climate: ClimateConstraint) -> torch.Tensor:
            climate.chains = states  # every call the same window from the same states
            loaded.model.zero_grad(set_to_none=True)
            return climate(stepper, 0)

        seconds = interleaved_medians(
            {name: lambda climate=climate: forward(climate).backward() for name, climate in terms.items()},
            REPEATS_QUICK if quick else REPEATS,
            device,
        )
        memory = {name: saved_bytes(lambda climate=climate: forward(climate))[0] for name, climate in terms.items()}
        at = {"chains": chains, "window_steps": window, "grid": [loaded.grid.nlat, loaded.grid.nlon]}
        for name in terms:
            emit(BENCH, "seconds_per_window", seconds[name], at | {"setting": name}, device)
            emit(BENCH, "saved_bytes", memory[name], at | {"setting": name}, device)
        emit(BENCH, "recompute_time_factor", seconds["recompute"] / seconds["keep"], at, device)
        emit(BENCH, "recompute_memory_factor", memory["recompute"] / memory["keep"], at, device)
