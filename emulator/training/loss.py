"""Training losses on the sphere, per channel weighted, built from :class:`LossConfig`.

* area-weighted MSE: the mean squared error per unit area (the grid's quadrature),
  so polar rows of an equiangular grid do not count more than they cover;
* spectral loss: squared difference of the amplitude spectra ``sqrt(power(l))``
  per spherical-harmonic degree; phase-blind, it penalizes the loss of
  small-scale energy that MSE rewards in long rollouts (blurring);
* log-spectral loss: squared difference of the log amplitude spectra, averaged
  over degrees; a relative error, so degrees and channels with little power
  (the small scales of a smooth field) count as much as the energetic ones;
* Sobolev loss: the ``H^-s`` norm of the error, ``sum_l (1 + l(l+1))^-s
  power_error(l)``, which weighs large scales more (as in Spectral-Refiner);
  with ``s = 0`` it is the MSE of the resolved scales (Parseval);
* divergence loss: the kinetic energy of the divergent part of the wind error
  (its velocity potential, through the vector transform) at each level with both
  winds, over the winds' variance. MSE counts that part no more than the rest;
  a model of a nearly non-divergent flow can then grow divergent wind nobody
  asked for, which this term prices separately.

Inputs are normalized ``(batch, channel, lat, lon)``; each term is a weighted
mean over channels (weights default to one) and a mean over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import nn
from torch_harmonics import RealSHT, RealVectorSHT

from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.quadrature import AreaMean
from emulator.schema import Strict
from emulator.spectra import degree_power, wind_levels
from emulator.winds import DIVERGENT, WindChannels


class LossConfig(Strict):
    channel_weights: dict[str, float] = Field(default_factory=dict, description="relative weight per channel")
    spectral: float = Field(0.0, ge=0, description="weight of the amplitude-spectrum loss")
    log_spectral: float = Field(0.0, ge=0, description="weight of the log-amplitude-spectrum loss")
    sobolev: float = Field(0.0, ge=0, description="weight of the H^-s norm of the error")
    sobolev_order: float = Field(1.0, ge=0, description="s of the H^-s norm")
    divergence: float = Field(0.0, ge=0, description="weight of the divergent wind error's kinetic energy")


class AreaWeightedMSE(nn.Module):
    """``(batch, channel)`` mean squared error per unit area."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.area_mean = AreaMean(grid)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.area_mean((prediction - target).square())[..., 0, 0]


class DegreePower(nn.Module):
    """``(..., lat, lon) -> (..., degree)`` power spectrum, in float32, differentiable."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.sht = RealSHT(grid.nlat, grid.nlon, lmax=grid.max_degree, mmax=grid.max_degree, grid=grid.kind)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=field.device.type, enabled=False):
            return degree_power(self.sht(field.float()))


class SpectralLoss(nn.Module):
    """``(batch, channel)`` squared difference of the amplitude spectra, summed over degrees."""

    EPSILON = 1e-12

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.power = DegreePower(grid)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        amplitude = (self.power(prediction) + self.EPSILON).sqrt()
        reference = (self.power(target) + self.EPSILON).sqrt()
        return (amplitude - reference).square().sum(dim=-1)


class LogSpectralLoss(SpectralLoss):
    """``(batch, channel)`` mean over degrees of the squared difference of the log amplitude spectra."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ratio = (self.power(prediction) + self.EPSILON) / (self.power(target) + self.EPSILON)
        return (0.5 * ratio.log()).square().mean(dim=-1)


class SobolevLoss(nn.Module):
    """``(batch, channel)`` squared ``H^-s`` norm of the error."""

    def __init__(self, grid: Grid, order: float) -> None:
        super().__init__()
        self.power = DegreePower(grid)
        degree = torch.arange(grid.max_degree, dtype=torch.float32)
        self.weights: torch.Tensor
        self.register_buffer("weights", (1.0 + degree * (degree + 1.0)) ** -order, persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.power(prediction - target) * self.weights).sum(dim=-1)


class DivergenceLoss(nn.Module):
    """``(batch, channel)`` divergent kinetic energy of the wind error over the winds' variance.

    Each level's value is put on its u and v channels; other channels get zero.
    ``std`` (one per channel) turns normalized winds back into a vector field.
    """

    def __init__(self, grid: Grid, channels: list[str], std: Sequence[float]) -> None:
        super().__init__()
        levels = wind_levels(channels)
        if not levels:
            raise EmulatorError("train.loss.divergence: no level has both wind components among the channels")
        self.winds = WindChannels(channels, std, levels)
        self.vsht = RealVectorSHT(grid.nlat, grid.nlon, lmax=grid.max_degree, mmax=grid.max_degree, grid=grid.kind)
        degree = torch.arange(grid.max_degree, dtype=torch.float32)
        self.eigenvalues: torch.Tensor
        self.variance: torch.Tensor
        self.register_buffer("eigenvalues", degree * (degree + 1), persistent=False)
        self.register_buffer("variance", self.winds.std.square().mean(dim=(1, 2, 3)), persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = self.winds.read(prediction - target)
        with torch.autocast(device_type=error.device.type, enabled=False):
            potential = self.vsht(error)[:, :, DIVERGENT]
        energy = 0.5 * (degree_power(potential) * self.eigenvalues).sum(dim=-1) / self.variance
        result = prediction.new_zeros(prediction.shape[:2], dtype=torch.float32)
        result[:, self.winds.index] = energy.repeat_interleave(2, dim=1)
        return result


class TrainingLoss(nn.Module):
    """The configured sum of terms, channel-weighted: ``(batch, channel, lat, lon)`` pairs -> scalar."""

    def __init__(self, config: LossConfig, channels: list[str], grid: Grid, std: Sequence[float] | None = None) -> None:
        """``std``: each channel's normalization scale, needed by the divergence term only."""
        super().__init__()
        unknown = sorted(set(config.channel_weights) - set(channels))
        if unknown:
            raise EmulatorError(f"train.loss.channel_weights: {unknown[0]!r} is not a prognostic channel")
        weights = torch.tensor([config.channel_weights.get(name, 1.0) for name in channels])
        self.channel_weights: torch.Tensor
        self.register_buffer("channel_weights", weights / weights.mean(), persistent=False)
        self.terms = nn.ModuleList([AreaWeightedMSE(grid)])
        self.term_weights = [1.0]
        if config.spectral > 0:
            self.terms.append(SpectralLoss(grid))
            self.term_weights.append(config.spectral)
        if config.log_spectral > 0:
            self.terms.append(LogSpectralLoss(grid))
            self.term_weights.append(config.log_spectral)
        if config.sobolev > 0:
            self.terms.append(SobolevLoss(grid, config.sobolev_order))
            self.term_weights.append(config.sobolev)
        if config.divergence > 0:
            if std is None:
                raise EmulatorError("train.loss.divergence needs the channels' normalization scales")
            self.terms.append(DivergenceLoss(grid, channels, std))
            self.term_weights.append(config.divergence)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = prediction.new_zeros((), dtype=torch.float32)
        for weight, term in zip(self.term_weights, self.terms, strict=True):
            total = total + weight * (term(prediction, target).float() * self.channel_weights).mean()
        return total
