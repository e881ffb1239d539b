"""The planetary modes: power per spherical-harmonic degree *and order* at the largest scales.

A band of degrees sums its orders, so two climates with the same band power can hold
it in different modes. The built-in world's largest scales have a structure of their
own: at degree 1 its rotational wind is the axial super-rotation (order 0), its
equatorial components (order 1) carrying 0.3 % of that power, while the geopotential's
degree 1 is mostly order 1; at degree 2 the rotational wind is mostly the order-1
planetary wave. An emulator can match a band with the wrong modes. For each degree
``1 <= l <= MAX_DEGREE`` and order ``0 <= m <= l`` this measures the power of the
geopotential and the kinetic energy of the rotational and of the divergent wind, as
batch means so that days and members average as the band spectra do; :func:`mode_factor`
is how far the worst mode is from the truth's. The divergent modes are apart: the
world's are tiny (its truth locks chi at degree 2, order 1 to the tilt), and a model's
spurious divergent planetary wave can fill the meridional wind's degree-1 band.

Powers miss how modes move together: the world's tilt (the rotational (1, 1) mode) is
carried by its order-1 planetary wave (the rotational (3, 1) mode; a squared coherence of
0.63 over a held-out year), and half the meridional wind's degree-1 power is that
coherence. :meth:`PlanetaryModes.tilt_wave` and :func:`coherence` measure it.
"""

from __future__ import annotations

import math

import torch
from torch_harmonics import RealSHT, RealVectorSHT

from emulator.grid import Grid
from emulator.spectra import order_power, wind_pair

MAX_DEGREE = 3
QUANTITIES = ("geopotential", "rotational kinetic energy", "divergent kinetic energy")
BALANCED = 2  # the first quantities: those of the balanced flow


class PlanetaryModes:
    """Mode powers ``(quantity, mode)`` of physical ``(batch, channel, lat, lon)`` states at one level."""

    def __init__(self, grid: Grid, channels: list[str], level: str = "250") -> None:
        self.geopotential = channels.index(f"geopotential@{level}")
        self.wind = [channels.index(name) for name in wind_pair(level)]
        resolved = {"lmax": MAX_DEGREE + 1, "mmax": MAX_DEGREE + 1, "grid": grid.kind}
        self.sht = RealSHT(grid.nlat, grid.nlon, **resolved).double()
        self.vsht = RealVectorSHT(grid.nlat, grid.nlon, **resolved).double()
        modes = [(degree, order) for degree in range(1, MAX_DEGREE + 1) for order in range(degree + 1)]
        self.labels = [f"{degree},{order}" for degree, order in modes]
        self.degree, self.order = (torch.tensor(column) for column in zip(*modes, strict=True))
        # the rotational wind of psi_lm has |grad Y_lm|^2 = l (l + 1) on the unit sphere
        self.kinetic_factor = 0.5 * (self.degree * (self.degree + 1)).double()

    def powers(self, state: torch.Tensor) -> torch.Tensor:
        """``(quantity, mode)`` batch means: geopotential power and rotational and divergent kinetic energy of each
        mode."""
        state = state.double()
        geopotential = order_power(self.sht(state[:, self.geopotential]))[:, self.degree, self.order]
        potentials = order_power(self.vsht(state[:, self.wind]))[..., self.degree, self.order]
        kinetic = self.kinetic_factor * potentials  # rotational (psi), then divergent (chi): torch-harmonics order
        return torch.cat([geopotential[:, None], kinetic], dim=1).mean(dim=0)

    def tilt_wave(self, state: torch.Tensor) -> torch.Tensor:
        """Batch means ``(Re <x y*>, Im <x y*>, <|x|^2>, <|y|^2>)`` of the tilt ``x`` and the planetary wave ``y``:
        the stream function's (1, 1) and (3, 1) coefficients."""
        stream_function = self.vsht(state.double()[:, self.wind])[:, 0]  # torch-harmonics order: psi, then chi
        tilt, wave = stream_function[:, 1, 1], stream_function[:, 3, 1]
        cross = (tilt * wave.conj()).mean()
        return torch.stack([cross.real, cross.imag, tilt.abs().square().mean(), wave.abs().square().mean()])


def coherence(moments: torch.Tensor) -> float:
    """The squared coherence ``|<x y*>|^2 / (<|x|^2> <|y|^2>)`` of :meth:`PlanetaryModes.tilt_wave`'s means: the
    share of either's variance that is a fixed complex multiple of the other."""
    return float(moments[:2].square().sum() / (moments[2] * moments[3]))


def mode_factor(powers: torch.Tensor, truth: torch.Tensor) -> tuple[float, int, int]:
    """The largest factor by which a mode's power is off the truth's (1: all right), and its (quantity, mode)."""
    factor = torch.maximum(powers / truth, truth / powers).nan_to_num(math.inf, math.inf)
    quantity, mode = divmod(int(factor.argmax()), factor.shape[1])
    return float(factor.max()), quantity, mode
