"""Power spectra on the sphere, per spherical-harmonic degree.

For a real field ``f = sum_lm c_lm Y_lm`` with orthonormal harmonics,
``power(l) = (|c_l0|^2 + 2 sum_{m>0} |c_lm|^2) / (4 pi)``, so that
``sum_l power(l)`` is the area mean of ``f^2`` (Parseval). The kinetic energy
spectrum of a wind ``(u, v)`` comes from its vector transform: with velocity
potential and stream function ``chi, psi`` (so divergence ``-l(l+1) chi_lm`` and
vorticity ``-l(l+1) psi_lm`` on the unit sphere), ``E(l) = l(l+1)/2 *
(power of chi + power of psi)``, summing to the area mean of ``(u^2 + v^2) / 2``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch_harmonics import RealSHT, RealVectorSHT

from emulator.grid import Grid

WIND = ("u_component_of_wind", "v_component_of_wind")
OCTAVE_BANDS = ((1, 2), (2, 4), (4, 8), (8, 16), (16, 32))  # degrees [low, high)


def wind_levels(channels: Iterable[str]) -> list[str]:
    """The levels (``"250"``, or ``""`` for a surface wind) at which both wind components are channels."""
    names = set(channels)
    levels = [name.partition("@")[2] for name in names if name.partition("@")[0] == WIND[0]]
    return sorted(level for level in levels if WIND[1] + ("@" + level if level else "") in names)


def wind_pair(level: str) -> tuple[str, str]:
    """The channel names of the ``(u, v)`` winds at ``level``."""
    suffix = "@" + level if level else ""
    return WIND[0] + suffix, WIND[1] + suffix


def order_power(coefficients: torch.Tensor) -> torch.Tensor:
    """``(..., l, m)`` complex coefficients -> ``(..., l, m)`` power of each order, ``m > 0`` counted twice.

    Twice, because each stands for ``m`` and ``-m``: the sum over orders is :func:`degree_power`.
    """
    multiplicity = torch.full((coefficients.shape[-1],), 2.0, dtype=coefficients.real.dtype, device=coefficients.device)
    multiplicity[0] = 1.0
    return coefficients.abs().square() * multiplicity / (4.0 * math.pi)


def degree_power(coefficients: torch.Tensor) -> torch.Tensor:
    """``(..., l, m)`` complex coefficients -> ``(..., l)`` power, orders ``m > 0`` counted twice."""
    return order_power(coefficients).sum(dim=-1)


class PowerSpectrum(nn.Module):
    """``(..., lat, lon)`` fields -> ``(..., degree)`` power; see the module docstring."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.sht = RealSHT(grid.nlat, grid.nlon, lmax=grid.max_degree, mmax=grid.max_degree, grid=grid.kind)

    @property
    def degrees(self) -> int:
        return self.sht.lmax

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        return degree_power(self.sht(field.double()))


class KineticEnergySpectrum(nn.Module):
    """``(..., 2, lat, lon)`` winds ``(u, v)`` -> ``(..., degree)`` kinetic energy."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.vsht = RealVectorSHT(grid.nlat, grid.nlon, lmax=grid.max_degree, mmax=grid.max_degree, grid=grid.kind)
        degree = torch.arange(grid.max_degree, dtype=torch.float64)
        self.eigenvalues: torch.Tensor
        self.register_buffer("eigenvalues", degree * (degree + 1), persistent=False)

    def forward(self, wind: torch.Tensor) -> torch.Tensor:
        if wind.shape[-3] != 2:
            raise ValueError(f"wind must have 2 components (u, v) before lat, lon; got shape {tuple(wind.shape)}")
        # torch-harmonics' vector transform returns the coefficients of the two scalar
        # potentials (u = k x grad psi + grad chi on the unit sphere; psi first), and
        # |grad Y_lm|^2 integrates to l (l + 1): E_l = l (l + 1) / 2 * (|psi_l|^2 + |chi_l|^2).
        coefficients = self.vsht(wind.double())
        return 0.5 * self.eigenvalues * degree_power(coefficients).sum(dim=-2)


class BandPower(nn.Module):
    """Physical ``(batch, channel, lat, lon)`` states -> ``(batch, quantity, band)`` mean power per degree.

    The quantities are the channels, then the kinetic energy at each wind level
    (``kinetic_energy@250``); the bands are those of :data:`OCTAVE_BANDS` that the
    grid resolves whole (``labels``: ``"1-1"``, ``"2-3"``, ...). Differentiable (a
    climate loss trains through it).
    """

    def __init__(self, grid: Grid, channels: list[str]) -> None:
        super().__init__()
        levels = wind_levels(channels)
        self.quantities = [*channels, *(f"kinetic_energy{'@' + level if level else ''}" for level in levels)]
        self.bands = [(low, high) for low, high in OCTAVE_BANDS if high <= grid.max_degree]
        self.labels = [f"{low}-{high - 1}" for low, high in self.bands]
        self.winds = [[channels.index(name) for name in wind_pair(level)] for level in levels]
        self.power, self.kinetic = PowerSpectrum(grid), KineticEnergySpectrum(grid)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        spectra = [self.power(state), *(self.kinetic(state[:, wind])[:, None] for wind in self.winds)]
        degrees = torch.cat(spectra, dim=1)
        return torch.stack([degrees[..., low:high].mean(dim=-1) for low, high in self.bands], dim=-1)
