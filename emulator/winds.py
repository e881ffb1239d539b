"""The wind channels of a normalized state, level by level, and what the controls acting on them share.

That is: reading and adding each level's ``(u, v)``, their vector transforms, and the
setting of a relaxation by degree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch_harmonics import InverseRealVectorSHT, RealVectorSHT

from emulator.data.normalizer import Normalizer
from emulator.degrees import DegreeBand
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.spectra import wind_levels, wind_pair

ROTATIONAL, DIVERGENT = 0, 1  # torch-harmonics' vector coefficients come as (stream function, velocity potential)


class DegreeRelaxation(DegreeBand):
    """Remove ``strength`` of a departure each step, at spherical-harmonic degrees ``min_degree`` to ``max_degree``."""

    strength: float = Field(0.1, gt=0, le=1, description="fraction of the departure removed each step")
    min_degree: int = Field(1, ge=1)

    def weight(self, lmax: int) -> torch.Tensor:
        """``(lmax, lmax)``: ``strength`` at the chosen coefficients ``(l, m)``, zero elsewhere, to multiply them."""
        return self.strength * self.coefficient_mask(lmax).float()


class BandedRelaxation(DegreeRelaxation):
    """A relaxation at its own band of degrees and at each of ``more_bands``, each band with its own strength."""

    more_bands: list[DegreeRelaxation] = Field(
        default_factory=list, description="further bands, each with its own degrees and strength"
    )

    def bands(self) -> list[DegreeRelaxation]:
        return [self, *self.more_bands]

    def band_truncation(self, lmax: int) -> int:
        """The degrees a transform needs for every band out of ``lmax`` (non-inclusive)."""
        return max(band.truncation(lmax) for band in self.bands())

    def removed_share(self, lmax: int) -> torch.Tensor:
        """``(lmax, lmax)``: the share of the departure removed at each ``(l, m)``; overlapping bands act in turn."""
        kept = torch.ones(lmax, lmax)
        for band in self.bands():
            kept = kept * (1 - band.weight(lmax))
        return 1 - kept


class WindChannels(nn.Module):
    """Read the ``(u, v)`` winds of ``levels`` from a normalized state in m s-1, and add changes back."""

    def __init__(self, channels: Sequence[str], std: Sequence[float] | np.ndarray, levels: Sequence[str]) -> None:
        """``std``: each channel's normalization scale."""
        super().__init__()
        names = list(channels)
        self.index = [names.index(name) for level in levels for name in wind_pair(level)]
        self.levels = len(levels)
        wind_std = torch.as_tensor(np.asarray(std), dtype=torch.float32)[self.index]
        self.std: torch.Tensor
        self.index_tensor: torch.Tensor
        self.register_buffer("std", wind_std.reshape(-1, 2, 1, 1), persistent=False)
        self.register_buffer("index_tensor", torch.as_tensor(self.index), persistent=False)

    def read(self, state: torch.Tensor) -> torch.Tensor:
        """``(batch, channel, lat, lon)`` -> ``(batch, level, 2, lat, lon)`` winds in m s-1, float32."""
        return state[:, self.index].float().unflatten(1, (self.levels, 2)) * self.std

    def add(self, state: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        """``state`` with ``(batch, level, 2, lat, lon)`` wind ``change`` in m s-1 added."""
        normalized = (change / self.std).flatten(1, 2).to(state.dtype)
        return state.index_add(1, self.index_tensor, normalized)


def every_level_winds(normalizer: Normalizer, control: str) -> WindChannels:
    """The winds of every level with both components; an error naming ``stepper.<control>`` when there is none."""
    levels = wind_levels(normalizer.channels)
    if not levels:
        raise EmulatorError(f"stepper.{control}: no level has both wind components among the prognostic channels")
    return WindChannels(normalizer.channels, normalizer.std, levels)


def vector_transforms(grid: Grid, lmax: int) -> tuple[RealVectorSHT, InverseRealVectorSHT]:
    """The vector transform of ``grid`` to degrees and orders below ``lmax``, and its inverse."""
    resolved = {"lmax": lmax, "mmax": lmax, "grid": grid.kind}
    return RealVectorSHT(grid.nlat, grid.nlon, **resolved), InverseRealVectorSHT(grid.nlat, grid.nlon, **resolved)


class WindPartDamping(nn.Module):
    """Remove, each step, a share of one part of every level's wind (``ROTATIONAL`` or ``DIVERGENT``) at the
    coefficients of a :class:`BandedRelaxation`, in normalized units.

    With ``from_rest`` the share is of the whole wind, the normalizer's mean included (a drag toward rest);
    otherwise of its departure from that mean (a constant field, which is zonally symmetric: the two differ at
    order 0 alone).
    """

    def __init__(
        self, part: int, config: BandedRelaxation, normalizer: Normalizer, grid: Grid, control: str, from_rest: bool
    ) -> None:
        super().__init__()
        self.winds = every_level_winds(normalizer, control)
        lmax = config.band_truncation(grid.max_degree)
        self.vsht, self.ivsht = vector_transforms(grid, lmax)
        weight = torch.zeros(2, lmax, lmax)
        weight[part] = config.removed_share(lmax)
        mean = torch.as_tensor(np.asarray(normalizer.mean), dtype=torch.float32)[self.winds.index]
        self.weight: torch.Tensor
        self.rest: torch.Tensor
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("rest", mean.reshape(-1, 2, 1, 1) * from_rest, persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=state.device.type, enabled=False):
            change = -self.ivsht(self.vsht(self.winds.read(state) + self.rest) * self.weight)
        return self.winds.add(state, change)
