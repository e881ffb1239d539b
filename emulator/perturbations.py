"""Random-field perturbations for ensembles: spherical Gaussian random fields.

A field ``f = sum_lm sqrt(C_l) xi_lm Y_lm`` with independent standard normal
``xi_lm`` and a Matern-like spectrum ``C_l = (l(l+1) + (R / L)^2)^(-alpha)`` has
correlation length about ``L`` on a sphere of radius ``R``. ``C_l`` is scaled so
that the pointwise standard deviation is one: ``sum_l (2l + 1) C_l / (4 pi) = 1``.
Each draw comes from a generator seeded with an explicit entropy tuple (for member
``k`` of a perturbation with seed ``s``: ``(s, k)`` for its initial perturbation,
``(s, k, 1)`` for its model noise), recorded in the member's recipe, so any member
is reproduced exactly from its recipe alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch_harmonics import InverseRealSHT

from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.schema import Strict

EARTH_RADIUS_KM = 6371.0


class RandomFieldConfig(Strict):
    """Amplitude per channel in that channel's standard deviations, correlation length, seed."""

    amplitude: dict[str, float] = Field(default_factory=dict, description="channel -> std multiples")
    default_amplitude: float = Field(0.05, ge=0, description="for channels not in amplitude")
    length_scale_km: float = Field(500.0, gt=0)
    smoothness: float = Field(2.0, gt=1)
    seed: int = 0


class InitialPerturbationConfig(RandomFieldConfig):
    """A random field added to the initial state, or a bred vector grown from one.

    ``bred_vector``: starting ``breeding_cycles * breeding_steps`` steps before the
    member's initial time, the store's state and the state plus the perturbation are
    both run ``breeding_steps`` steps; their difference, rescaled to the amplitude
    (area-weighted RMS per channel), perturbs the store's state at the next cycle.
    """

    kind: Literal["gaussian_random_field", "bred_vector"] = "gaussian_random_field"
    breeding_cycles: int = Field(3, gt=0)
    breeding_steps: int = Field(2, gt=0)


def seeded_generator(entropy: Sequence[int]) -> torch.Generator:
    """A CPU generator seeded from an entropy tuple through NumPy's ``SeedSequence``."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(entropy)).generate_state(1)[0]))


class GaussianRandomField(nn.Module):
    """Unit-variance Gaussian random fields of correlation length ``length_scale_km``."""

    def __init__(self, grid: Grid, length_scale_km: float, smoothness: float) -> None:
        super().__init__()
        lmax = grid.max_degree
        self.isht = InverseRealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=lmax, grid=grid.kind)
        degree = torch.arange(lmax, dtype=torch.float64)
        spectrum = (degree * (degree + 1) + (EARTH_RADIUS_KM / length_scale_km) ** 2) ** (-smoothness)
        spectrum[0] = 0.0
        spectrum /= ((2 * degree + 1) * spectrum).sum() / (4 * math.pi)
        amplitude = torch.sqrt(spectrum)[:, None].expand(lmax, lmax).tril().clone()
        # orders m > 0 of a real field carry two real degrees of freedom each
        amplitude[:, 1:] /= math.sqrt(2.0)
        self.amplitude: torch.Tensor
        self.register_buffer("amplitude", amplitude.to(torch.float32), persistent=False)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``(count, lat, lon)`` independent fields."""
        lmax = self.amplitude.shape[0]
        noise = torch.randn(count, lmax, lmax, 2, generator=generator)
        noise[..., 0, 1] = 0.0  # m = 0 coefficients are real
        coefficients = torch.view_as_complex(noise) * self.amplitude
        return self.isht(coefficients)


class RandomFieldPerturbation:
    """Random fields scaled per channel, for normalized states ``(..., channel, lat, lon)``."""

    def __init__(self, config: RandomFieldConfig, channels: list[str], grid: Grid) -> None:
        unknown = sorted(set(config.amplitude) - set(channels))
        if unknown:
            raise EmulatorError(f"perturbation amplitude given for unknown channels {unknown}")
        self.config, self.channels = config, channels
        self.field = GaussianRandomField(grid, config.length_scale_km, config.smoothness)
        self.scale = torch.tensor([config.amplitude.get(c, config.default_amplitude) for c in channels])

    def draw(self, generator: torch.Generator) -> torch.Tensor:
        """One perturbation ``(channel, lat, lon)``: independent fields times each channel's amplitude."""
        return self.scale[:, None, None] * self.field.sample(len(self.channels), generator)
