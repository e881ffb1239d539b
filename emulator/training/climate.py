"""A climate loss: the band power of the model's own free-running chains, trained toward a target climate.

A loss on forecast windows judges a model's first days; its climate, the statistics
of rollouts years on, is another matter, and small changes of the weights move it by
tens of percent in a band. This term asks for it directly, in the spirit of DySLIM
(Schiff et al. 2024), which matches a model's invariant measure to the data's.
``chains`` states run freely with the training stepper, or ``train.free_run_stepper``
when set (its controls and stochastic forcing), persistent across optimizer steps:
spun up ``spinup_steps`` from states of the training period before the first step,
then advanced ``steps`` steps with gradient at every optimizer step. Their forcing's
red noise carries on from step to step as in a rollout (drawn afresh at every
optimizer step it would lose the coherence that makes its effect, and the chains
would misread the model's climate).
Their band power (:class:`~emulator.spectra.BandPower`: each channel and each
level's kinetic energy, in octave bands of degrees) over the target's gives a ratio
``R``, which a few states estimate poorly; its running mean ``M`` (decay ``memory``)
weighs the term ``weight * mean(log M * log R)``, whose gradient is that of
``weight * mean((log R)^2) / 2`` with the running estimate in place of the noisy one:
every band is pushed toward the target as far as the chains' recent climate is off.
The gradient goes through ``steps`` steps only, so modes that change slowly (degree
1 of the built-in world) are pushed weakly; with ``recompute`` each step's activations
are recomputed in the backward pass instead of kept (:func:`torch.utils.checkpoint`),
so the memory of a long window is that of its states and one step. With ``tolerance``
``t`` a band is pushed only by as much as ``|log M|`` exceeds ``log(1 + t)`` (a band
within ``t`` of the target is left alone), and ``min_degree`` leaves the bands below it
out (few chains estimate degree 1 worst).

With ``zonal_weight`` the term of :mod:`emulator.training.zonal_climate` is added:
the chains' zonal means (their jets and their variability) against the target's.

The target is a NetCDF file with ``band_power (..., quantity, band)`` (and
``zonal_mean (..., channel, latitude)`` for the zonal term; ``emulator world-climate``
writes both from independent years of the built-in world), averaged over its other
dimensions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.utils.checkpoint import checkpoint

from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.perturbations import seeded_generator
from emulator.schema import Strict
from emulator.spectra import BandPower
from emulator.training.climate_target import target_variable
from emulator.training.zonal_climate import ZonalMoments

if TYPE_CHECKING:
    from emulator.stepper import Stepper

CHAIN_STREAM = 3  # last entropy word of a chain's stochastic-forcing generator
TENSOR_PREFIX = "climate."


class ClimateLossConfig(Strict):
    target: str = Field(
        description="NetCDF file with band_power (..., quantity, band) and, for zonal_weight, "
        "zonal_mean (..., channel, latitude), e.g. from world-climate"
    )
    weight: float = Field(1.0, ge=0, description="weight of the band-power term")
    zonal_weight: float = Field(
        0.0, ge=0, description="weight of the zonal-mean term (emulator.training.zonal_climate); 0: off"
    )
    chains: int = Field(8, gt=0, description="free-running states")
    steps: int = Field(2, gt=0, description="chain steps with gradient per optimizer step")
    spinup_steps: int = Field(160, ge=0, description="steps from the training states before the first optimizer step")
    memory: float = Field(0.95, ge=0, lt=1, description="decay of the running mean of the band-power ratio")
    tolerance: float = Field(
        0.0, ge=0, lt=1, description="a band is pushed only by as much as its running ratio is off by more than this"
    )
    min_degree: int = Field(1, ge=1, description="bands that start below this degree are left out of the term")
    recompute: bool = Field(
        False, description="recompute each chain step's activations in the backward pass: memory of one step, not steps"
    )
    seed: int = 0

    @model_validator(mode="after")
    def _weighted(self) -> ClimateLossConfig:
        if self.weight == 0 and self.zonal_weight == 0:
            raise ValueError("weight and zonal_weight are both 0: the climate loss would be no term")
        return self


def read_target(path: str, quantities: list[str], bands: list[str], key: str = "train.climate.target") -> torch.Tensor:
    """``(quantity, band)`` mean band power of the target file, in ``quantities``' and ``bands``' order.

    Errors name the file and the config ``key`` that gave it.
    """
    power = target_variable(path, "band_power", key)
    if "band" not in power.dims or not set(bands) <= set(power["band"].values):
        raise EmulatorError(f"{key}: {path}: band_power's bands do not include {', '.join(bands)}")
    missing = next((name for name in quantities if name not in list(power["quantity"].values)), None)
    if missing is not None:
        raise EmulatorError(f"{key}: {path}: band_power has no quantity {missing!r}")
    samples = [dim for dim in power.dims if dim not in ("quantity", "band")]
    mean = power.sel(quantity=quantities, band=bands).mean(samples)
    target = torch.from_numpy(mean.transpose("quantity", "band").values).double()
    if not bool((target > 0).all()):
        quantity, band = (int(i) for i in (~(target > 0)).nonzero()[0])
        raise EmulatorError(
            f"{key}: {path}: band_power of {quantities[quantity]} in band {bands[band]} is not positive"
        )
    return target


class BandPowerRatio(nn.Module):
    """The band power of normalized states, averaged over them, over a target climate's: ``(quantity, band)``."""

    def __init__(self, target: str, key: str, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__()
        self.band_power = BandPower(grid, list(normalizer.channels))
        self.target: torch.Tensor
        self.mean: torch.Tensor
        self.std: torch.Tensor
        power = read_target(target, self.band_power.quantities, self.band_power.labels, key)
        self.register_buffer("target", power, persistent=False)
        for name in ("mean", "std"):
            values = torch.as_tensor(getattr(normalizer, name), dtype=torch.float32)
            self.register_buffer(name, values[:, None, None], persistent=False)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.band_power(states * self.std + self.mean).mean(dim=0) / self.target


def free_run(
    stepper: Stepper,
    state: torch.Tensor,
    steps: int,
    forcing: torch.Tensor | None,
    generators: Sequence[torch.Generator],
    recompute: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """``steps`` steps of free-running ``state`` (no forcings), each with its stochastic forcing's AR(1) state
    (:meth:`emulator.stochastic.StochasticForcing.advance`).

    The red noise carries on from ``forcing`` (``None``: a stationary draw), one generator per state, which
    also draws the tilt model's innovations when it has them. With
    ``recompute`` each step keeps only its inputs for the backward pass and runs again there.
    """
    stochastic = stepper.stochastic_forcing
    empty = state.new_zeros(1, 0, *state.shape[-2:])
    for _ in range(steps):
        noise = None
        if stochastic is not None:
            forcing = stochastic.advance(forcing, generators).to(state.device)
            noise = stochastic.noise(forcing)
        tilt = stepper.tilt_innovation(generators)
        if recompute and torch.is_grad_enabled():
            state = checkpoint(stepper.step, state, empty, noise, tilt, use_reentrant=False)
        else:
            state = stepper.step(state, empty, noise, tilt)
        yield state, forcing


class ClimateConstraint(nn.Module):
    """The chains, the running ratio and the term; see the module docstring."""

    def __init__(self, config: ClimateLossConfig, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__()
        self.config = config
        self.ratio_of = BandPowerRatio(config.target, "train.climate.target", normalizer, grid)
        self.chains: torch.Tensor | None = None
        self.forcing: torch.Tensor | None = None
        self.ratio: torch.Tensor | None = None
        self.zonal_moments: ZonalMoments | None = None
        if config.zonal_weight > 0:
            self.zonal_moments = ZonalMoments(config.target, "train.climate.target", normalizer, grid)
        self.zonal: torch.Tensor | None = None
        in_term = [low >= config.min_degree for low, _ in self.ratio_of.band_power.bands]
        if not any(in_term):
            raise EmulatorError(f"train.climate.min_degree: {config.min_degree} leaves no band of degrees in the term")
        self.in_term: torch.Tensor
        self.register_buffer("in_term", torch.tensor(in_term), persistent=False)

    def _advance(self, stepper: Stepper, state: torch.Tensor, steps: int, key: tuple[int, ...]) -> list[torch.Tensor]:
        """``steps`` steps of the chains; their stochastic forcing's red noise carries on from the last call."""
        generators = [seeded_generator((self.config.seed, *key, chain, CHAIN_STREAM)) for chain in range(len(state))]
        taken = list(free_run(stepper, state, steps, self.forcing, generators, self.config.recompute))
        if taken:
            self.forcing = taken[-1][1]
        return [advanced for advanced, _ in taken]

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
        stacked = torch.cat(states)
        ratio = self.ratio_of(stacked)
        if not bool(torch.isfinite(ratio).all()):
            raise EmulatorError(f"train.climate: the chains' band power is not finite at step {step}")
        self.ratio = self._running(self.ratio, ratio)
        self.chains = states[-1].detach()
        off = self.ratio.log()
        push = off.sign() * (off.abs() - math.log1p(self.config.tolerance)).clamp_min(0.0)
        term = self.config.weight * (push * ratio.log())[:, self.in_term].mean().float()
        if self.zonal_moments is not None:
            moments = self.zonal_moments(stacked, None if self.zonal is None else self.zonal[0])
            self.zonal = self._running(self.zonal, moments)
            term = term + self.config.zonal_weight * self.zonal_moments.term(moments, self.zonal)
        return term

    def _running(self, running: torch.Tensor | None, current: torch.Tensor) -> torch.Tensor:
        """The running mean (decay ``memory``) updated with ``current``."""
        memory = self.config.memory
        return current.detach() if running is None else memory * running + (1 - memory) * current.detach()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The chains, their forcing and the running ratio, for the resumable state."""
        parts = {"chains": self.chains, "forcing": self.forcing, "ratio": self.ratio, "zonal": self.zonal}
        return {TENSOR_PREFIX + name: value.cpu() for name, value in parts.items() if value is not None}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        saved = {name: tensors.get(TENSOR_PREFIX + name) for name in ("chains", "forcing", "ratio", "zonal")}
        self.chains, self.forcing, self.ratio, self.zonal = (
            None if value is None else value.to(self.ratio_of.target.device) for value in saved.values()
        )
