"""Linear balance between geopotential and wind, and a control that relaxes toward it.

Away from the equator the large-scale flow is close to linear balance,
``laplacian(phi) = div(f grad(psi))``, with ``f = 2 Omega sin(latitude)`` and ``psi``
the wind's stream function. The built-in world obeys it (over held-out states the
correlation of the geopotential with its balanced part is 0.96 at degrees 8-15),
an emulator's rollouts may not: :class:`BalanceRelaxation` moves each step's
geopotential a fraction of the way toward the balanced one at the chosen degrees,
and :class:`BalancedGeopotential` gives the stochastic forcing the geopotential that
balances its wind noise.

On the unit sphere, with torch-harmonics' vector transform (``u = k x grad(psi) +
grad(chi)``, ``psi`` first), ``div(f grad(psi))`` is the divergence of a vector
field, whose velocity potential ``chi'`` has ``laplacian(chi') = div(f grad(psi))``;
so ``phi = a chi'`` with ``a`` the planet's radius (the factor from the unit sphere's
derivatives to the planet's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch_harmonics import InverseRealSHT, InverseRealVectorSHT, RealSHT, RealVectorSHT

from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.perturbations import EARTH_RADIUS_KM
from emulator.spectra import wind_levels, wind_pair
from emulator.winds import DIVERGENT, BandedRelaxation, WindChannels

EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000.0
EARTH_ROTATION_RATE_S = 7.292e-5
GEOPOTENTIAL = "geopotential"


class BalanceConfig(BandedRelaxation):
    """Relax the geopotential toward linear balance with the wind at this band of degrees and at ``more_bands``."""


class LinearBalance(nn.Module):
    """``(..., 2, lat, lon)`` wind ``(u, v)`` in m s-1 -> ``(..., lmax, mmax)`` balanced geopotential coefficients.

    Coefficients are torch-harmonics' (orthonormal, as :class:`torch_harmonics.RealSHT`)
    in m2 s-2; degree 0 (the mean, which balance leaves free) is zero.
    """

    def __init__(self, grid: Grid, radius_m: float = EARTH_RADIUS_M, rotation_rate_s: float = EARTH_ROTATION_RATE_S):
        super().__init__()
        lmax = grid.max_degree
        self.vsht = RealVectorSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=lmax, grid=grid.kind)
        self.ivsht = InverseRealVectorSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=lmax, grid=grid.kind)
        self.radius_m = radius_m
        latitude = torch.deg2rad(torch.as_tensor(grid.latitudes, dtype=torch.float32))
        self.coriolis: torch.Tensor
        self.register_buffer("coriolis", (2.0 * rotation_rate_s * torch.sin(latitude))[:, None], persistent=False)

    def forward(self, wind: torch.Tensor) -> torch.Tensor:
        stream_function = self.vsht(wind.float())[..., :1, :, :]
        gradient = self.ivsht(torch.cat([torch.zeros_like(stream_function), stream_function], dim=-3))
        return self.radius_m * self.vsht(self.coriolis * gradient)[..., DIVERGENT, :, :]


class BalancedGeopotential(nn.Module):
    """Fields ``(batch, channel, lat, lon)`` in physical units -> ``(batch, level, lat, lon)``: the geopotential
    in linear balance with the wind at each level with both (those of :func:`balanced_levels`, in order).

    ``key`` names the config that asked for it in the error when no level has both.
    """

    def __init__(self, channels: Sequence[str], grid: Grid, key: str) -> None:
        super().__init__()
        names = list(channels)
        levels = balanced_levels(names, key)
        self.wind_index = [names.index(name) for level in levels for name in wind_pair(level)]
        self.geopotential_index: torch.Tensor
        self.register_buffer(
            "geopotential_index", torch.as_tensor([names.index(_geopotential(level)) for level in levels]),
            persistent=False,
        )  # fmt: skip
        self.balance = LinearBalance(grid)
        lmax = grid.max_degree
        self.isht = InverseRealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=lmax, grid=grid.kind)

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        wind = fields[:, self.wind_index].float().unflatten(1, (len(self.geopotential_index), 2))
        return self.isht(self.balance(wind))

    def add(self, fields: torch.Tensor, winds: torch.Tensor) -> torch.Tensor:
        """``fields`` with the geopotential in balance with the wind of ``winds`` (alike in shape) added to
        each level's geopotential."""
        return fields.index_add(1, self.geopotential_index, self(winds))


def balanced_levels(channels: Sequence[str], key: str) -> list[str]:
    """The levels with a geopotential and both winds among ``channels``; an error naming ``key`` when none has."""
    names = set(channels)
    levels = [level for level in wind_levels(names) if _geopotential(level) in names]
    if not levels:
        raise EmulatorError(
            f"{key}: no level has a geopotential and both wind components among the prognostic channels"
        )
    return levels


class BalanceRelaxation(nn.Module):
    """Move each level's geopotential ``strength`` of the way to linear balance with its wind, in normalized units.

    Only the degrees of the config's bands change; levels without a geopotential and both
    winds are left alone, and a config that finds no such level is an error.
    """

    def __init__(self, config: BalanceConfig, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__()
        names = list(normalizer.channels)
        levels = balanced_levels(names, "stepper.balance")
        self.geopotential_index = [names.index(_geopotential(level)) for level in levels]
        self.winds = WindChannels(names, normalizer.std, levels)
        std = torch.as_tensor(normalizer.std, dtype=torch.float32)
        self.geopotential_std: torch.Tensor
        self.geopotential_index_tensor: torch.Tensor
        self.register_buffer("geopotential_std", std[self.geopotential_index][:, None, None], persistent=False)
        self.register_buffer("geopotential_index_tensor", torch.as_tensor(self.geopotential_index), persistent=False)
        lmax = grid.max_degree
        self.balance = LinearBalance(grid)
        self.sht = RealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=lmax, grid=grid.kind)
        self.isht = InverseRealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=lmax, grid=grid.kind)
        self.weight: torch.Tensor
        self.register_buffer("weight", config.removed_share(lmax), persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=state.device.type, enabled=False):
            geopotential = self.sht(state[:, self.geopotential_index].float() * self.geopotential_std)
            imbalance = self.balance(self.winds.read(state)) - geopotential
            change = self.isht(imbalance * self.weight) / self.geopotential_std
        return state.index_add(1, self.geopotential_index_tensor, change.to(state.dtype))


def _geopotential(level: str) -> str:
    return GEOPOTENTIAL + ("@" + level if level else "")
