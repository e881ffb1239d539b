"""Initial-condition perturbations for ensembles: spherical Gaussian random fields.

A field ``f = sum_lm sqrt(C_l) xi_lm Y_lm`` with independent standard normal
``xi_lm`` and a Matern-like spectrum ``C_l = (l(l+1) + (R / L)^2)^(-alpha)`` has
correlation length about ``L`` on a sphere of radius ``R``. ``C_l`` is scaled so
that the pointwise standard deviation is one: ``sum_l (2l + 1) C_l / (4 pi) = 1``.
Member ``k`` of a perturbation with seed ``s`` draws from a generator seeded with
``(s, k)``, so any member is reproduced exactly from its recipe alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch_harmonics import InverseRealSHT

from emulator.grid import Grid
from emulator.schema import Strict

EARTH_RADIUS_KM = 6371.0


class GaussianFieldPerturbationConfig(Strict):
    """Amplitude per channel in that channel's standard deviations; member 0 is unperturbed."""

    amplitude: dict[str, float] = Field(default_factory=dict, description="channel -> std multiples; absent: 0")
    default_amplitude: float = Field(0.05, ge=0)
    length_scale_km: float = Field(500.0, gt=0)
    smoothness: float = Field(2.0, gt=1)
    seed: int = 0


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


class GaussianFieldPerturbation:
    """Adds independent random fields, scaled per channel, to a normalized initial state."""

    def __init__(self, config: GaussianFieldPerturbationConfig, channels: list[str], grid: Grid) -> None:
        unknown = sorted(set(config.amplitude) - set(channels))
        if unknown:
            raise ValueError(f"perturbation amplitude given for unknown channels {unknown}")
        self.config, self.channels = config, channels
        self.field = GaussianRandomField(grid, config.length_scale_km, config.smoothness)
        self.scale = torch.tensor([config.amplitude.get(c, config.default_amplitude) for c in channels])

    def recipe(self, member: int) -> dict[str, object]:
        """Everything needed to reproduce ``member``'s perturbation."""
        return {
            "member": member,
            "kind": "gaussian_random_field",
            **self.config.model_dump(),
            "generator_seed": [self.config.seed, member],
        }

    def member(self, state: torch.Tensor, member: int) -> torch.Tensor:
        """``state`` ``(channel, lat, lon)`` normalized, perturbed for ``member`` (0: unchanged)."""
        if member == 0:
            return state
        seed = int(np.random.SeedSequence([self.config.seed, member]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        noise = self.field.sample(len(self.channels), generator).to(state)
        return state + self.scale.to(state)[:, None, None] * noise
