"""A climate loss: the band power of the model's own free-running chains, trained toward a target climate.

A loss on forecast windows judges a model's first days; its climate, the statistics
of rollouts years on, is another matter, and small changes of the weights move it by
tens of percent in a band. This term asks for it directly, in the spirit of DySLIM
(Schiff et al. 2024), which matches a model's invariant measure to the data's.
``chains`` states run freely with the training stepper (its controls and stochastic
forcing), persistent across optimizer steps: spun up ``spinup_steps`` from states of
the training period before the first step, then advanced ``steps`` steps with
gradient at every optimizer step. Their forcing's red noise carries on from step to
step as in a rollout (drawn afresh at every optimizer step it would lose the
coherence that makes its effect, and the chains would misread the model's climate).
Their band power (:class:`~emulator.spectra.BandPower`: each channel and each
level's kinetic energy, in octave bands of degrees) over the target's gives a ratio
``R``, which a few states estimate poorly; its running mean ``M`` (decay ``memory``)
weighs the term ``weight * mean(log M * log R)``, whose gradient is that of
``weight * mean((log R)^2) / 2`` with the running estimate in place of the noisy one:
every band is pushed toward the target as far as the chains' recent climate is off.
The gradient goes through ``steps`` steps only, so modes that change slowly (degree
1 of the built-in world) are pushed weakly.

The target is a NetCDF file with ``band_power (..., quantity, band)`` (``emulator
world-climate`` writes one from independent years of the built-in world), averaged
over its other dimensions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import xarray as xr
from pydantic import Field
from torch import nn

from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.perturbations import seeded_generator
from emulator.schema import Strict
from emulator.spectra import BandPower

if TYPE_CHECKING:
    from emulator.stepper import Stepper

CHAIN_STREAM = 3  # last entropy word of a chain's stochastic-forcing generator
TENSOR_PREFIX = "climate."


class ClimateLossConfig(Strict):
    target: str = Field(description="NetCDF file with band_power (..., quantity, band), e.g. from world-climate")
    weight: float = Field(1.0, gt=0)
    chains: int = Field(8, gt=0, description="free-running states")
    steps: int = Field(2, gt=0, description="chain steps with gradient per optimizer step")
    spinup_steps: int = Field(160, ge=0, description="steps from the training states before the first optimizer step")
    memory: float = Field(0.95, ge=0, lt=1, description="decay of the running mean of the band-power ratio")
    seed: int = 0


def read_target(path: str, quantities: list[str], bands: list[str]) -> torch.Tensor:
    """``(quantity, band)`` mean band power of the target file, in ``quantities``' and ``bands``' order."""
    if not Path(path).is_file():
        raise EmulatorError(f"train.climate.target: {path} does not exist (emulator world-climate writes one)")
    with xr.open_dataset(path) as dataset:
        if "band_power" not in dataset:
            raise EmulatorError(f"train.climate.target: {path} has no variable 'band_power'")
        power = dataset["band_power"]
        if "band" not in power.dims or not set(bands) <= set(power["band"].values):
            raise EmulatorError(f"train.climate.target: {path}: band_power's bands do not include {', '.join(bands)}")
        missing = next((name for name in quantities if name not in list(power["quantity"].values)), None)
        if missing is not None:
            raise EmulatorError(f"train.climate.target: {path}: band_power has no quantity {missing!r}")
        mean = power.sel(quantity=quantities, band=bands).mean(
            [dim for dim in power.dims if dim not in ("quantity", "band")]
        )
        target = torch.from_numpy(mean.transpose("quantity", "band").values).double()
    if not bool((target > 0).all()):
        quantity, band = (int(i) for i in (~(target > 0)).nonzero()[0])
        raise EmulatorError(
            f"train.climate.target: {path}: band_power of {quantities[quantity]} in band {bands[band]} is not positive"
        )
    return target


class ClimateConstraint(nn.Module):
    """The chains, the running ratio and the term; see the module docstring."""

    def __init__(
        self, config: ClimateLossConfig, channels: list[str], grid: Grid, mean: torch.Tensor, std: torch.Tensor
    ) -> None:
        super().__init__()
        self.config = config
        self.band_power = BandPower(grid, channels)
        self.target: torch.Tensor
        self.mean: torch.Tensor
        self.std: torch.Tensor
        target = read_target(config.target, self.band_power.quantities, self.band_power.labels)
        self.register_buffer("target", target, persistent=False)
        self.register_buffer("mean", mean.float()[:, None, None], persistent=False)
        self.register_buffer("std", std.float()[:, None, None], persistent=False)
        self.chains: torch.Tensor | None = None
        self.forcing: torch.Tensor | None = None
        self.ratio: torch.Tensor | None = None

    def _advance(self, stepper: Stepper, state: torch.Tensor, steps: int, key: tuple[int, ...]) -> list[torch.Tensor]:
        """``steps`` steps of the chains; their stochastic forcing's red noise carries on from the last call."""
        forcing = stepper.stochastic_forcing
        generators = [seeded_generator((self.config.seed, *key, chain, CHAIN_STREAM)) for chain in range(len(state))]
        empty = state.new_zeros(1, 0, *state.shape[-2:])
        states = []
        for _ in range(steps):
            noise = None
            if forcing is not None:
                self.forcing = forcing.advance(self.forcing, generators).to(state.device)
                noise = self.forcing
            state = stepper.step(state, empty, noise)
            states.append(state)
        return states

    @torch.no_grad()
    def start(self, stepper: Stepper, states: torch.Tensor) -> None:
        """Spin the chains up from normalized training ``states`` (one per chain)."""
        spun = self._advance(stepper, states, self.config.spinup_steps, (0,))
        self.chains = spun[-1] if spun else states

    def forward(self, stepper: Stepper, step: int) -> torch.Tensor:
        """The weighted term of optimizer step ``step``; advances the chains and the running ratio."""
        if self.chains is None:
            raise EmulatorError("train.climate: the chains were not started")
        states = self._advance(stepper, self.chains, self.config.steps, (1, step))
        physical = torch.cat(states) * self.std + self.mean
        ratio = self.band_power(physical).mean(dim=0) / self.target
        if not bool(torch.isfinite(ratio).all()):
            raise EmulatorError(f"train.climate: the chains' band power is not finite at step {step}")
        memory = self.config.memory
        self.ratio = ratio.detach() if self.ratio is None else memory * self.ratio + (1 - memory) * ratio.detach()
        self.chains = states[-1].detach()
        return self.config.weight * (self.ratio.log() * ratio.log()).mean().float()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The chains, their forcing and the running ratio, for the resumable state."""
        parts = {"chains": self.chains, "forcing": self.forcing, "ratio": self.ratio}
        return {TENSOR_PREFIX + name: value.cpu() for name, value in parts.items() if value is not None}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        saved = {name: tensors.get(TENSOR_PREFIX + name) for name in ("chains", "forcing", "ratio")}
        self.chains, self.forcing, self.ratio = (
            None if value is None else value.to(self.target.device) for value in saved.values()
        )
