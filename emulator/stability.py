"""Stability controls applied to every step's output, in normalized units.

Each control is a small module built from its config section, the channel
names, the normalizer and the grid; the stepper applies them in this order:

1. :class:`SpectralFilter`: an exponential filter per spherical-harmonic degree,
   ``exp(-strength (l / l_max) ** order)``, i.e. one step of hyperdiffusion;
   degree 0 (the global mean) is untouched.
2. :class:`PhysicalClamp`: each listed channel clamped to physical bounds.
3. :class:`ConservationFixer`: the area-weighted global mean of each listed
   channel reset to its value before the step (mass, for a geopotential).

Between 1 and 2 the stepper can also relax the geopotential toward linear balance
with the wind (:mod:`emulator.balance`) and damp the divergent wind
(:mod:`emulator.divergent_wind`); after 3 it can hold the wind's equatorial angular
momentum (:mod:`emulator.angular_momentum`). All are differentiable, so they can be on
during training, and none has weights, so they can be switched on at inference for
a model trained without.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.models.legendre import TriangularSHT
from emulator.quadrature import AreaMean
from emulator.schema import Strict


class SpectralFilterConfig(Strict):
    """Damping per step ``exp(-strength (l / l_max) ** order)``: the smallest scale loses ``1 - e^-strength``."""

    strength: float = Field(0.05, gt=0)
    order: int = Field(8, gt=0)


class Bounds(Strict):
    """Physical bounds of one channel, in the store's units; either may be open."""

    min: float | None = None
    max: float | None = None


def _channel_indices(names: list[str], wanted: list[str], control: str) -> list[int]:
    missing = [name for name in wanted if name not in names]
    if missing:
        raise EmulatorError(f"stepper.{control}: channel {missing[0]!r} is not prognostic (have {', '.join(names)})")
    return [names.index(name) for name in wanted]


class SpectralFilter(nn.Module):
    def __init__(self, config: SpectralFilterConfig, grid: Grid) -> None:
        super().__init__()
        lmax = grid.max_degree
        self.transform = TriangularSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=lmax, grid=grid.kind)
        degrees = self.transform.packed_degrees.float()
        self.damping: torch.Tensor
        self.register_buffer(
            "damping",
            torch.exp(-config.strength * (degrees / (lmax - 1)) ** config.order)[:, None, None],
            persistent=False,
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Damp the resolved degrees of ``state``; what the transform cannot represent passes unchanged."""
        with torch.autocast(device_type=state.device.type, enabled=False):
            change = self.transform.synthesis(self.transform.analysis(state.float()) * (self.damping - 1.0))
        return state + change.to(state.dtype)


class PhysicalClamp(nn.Module):
    def __init__(self, bounds: dict[str, Bounds], normalizer: Normalizer) -> None:
        super().__init__()
        names = list(normalizer.channels)
        index = _channel_indices(names, list(bounds), "clamp")
        lower = torch.full((len(names),), -torch.inf)
        upper = torch.full((len(names),), torch.inf)
        for i, limits in zip(index, bounds.values(), strict=True):
            if limits.min is not None:
                lower[i] = (limits.min - normalizer.mean[i]) / normalizer.std[i]
            if limits.max is not None:
                upper[i] = (limits.max - normalizer.mean[i]) / normalizer.std[i]
        self.lower: torch.Tensor
        self.upper: torch.Tensor
        self.register_buffer("lower", lower[:, None, None], persistent=False)
        self.register_buffer("upper", upper[:, None, None], persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.clamp(state, self.lower.to(state.dtype), self.upper.to(state.dtype))


class ConservationFixer(nn.Module):
    def __init__(self, channels: list[str], names: list[str], grid: Grid) -> None:
        super().__init__()
        self.index = _channel_indices(names, channels, "conserve")
        self.area_mean = AreaMean(grid)

    def forward(self, state: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(self.index, device=state.device)
        drift = self.area_mean(state[:, index]) - self.area_mean(previous[:, index])
        return state.index_add(1, index, -drift.expand(-1, -1, *state.shape[-2:]))
