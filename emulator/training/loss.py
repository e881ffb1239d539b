"""Training losses on the sphere, per channel weighted, built from :class:`LossConfig`.

* area-weighted MSE: the mean squared error per unit area (the grid's quadrature),
  so polar rows of an equiangular grid do not count more than they cover;
* CRPS of an ensemble rollout (``train.ensemble_members`` > 1, members differing by
  the stochastic forcing): the almost-fair estimator of AIFS-CRPS (Lang et al.
  2024) per point, area-weighted. MSE rewards a deterministic model for the mean of
  the futures its inputs allow, and damps whatever noise it is trained through;
  CRPS rewards members that each look like one such future and spread as far as
  the error;
* spectral loss: squared difference of the amplitude spectra ``sqrt(power(l))``
  per spherical-harmonic degree; phase-blind, it penalizes the loss of
  small-scale energy that MSE rewards in long rollouts (blurring);
* log-spectral loss: squared difference of the log amplitude spectra, averaged
  over degrees; a relative error, so degrees and channels with little power
  (the small scales of a smooth field) count as much as the energetic ones;
* Sobolev loss: the ``H^-s`` norm of the error, ``sum_l (1 + l(l+1))^-s
  power_error(l)``, which weighs large scales more (as in Spectral-Refiner);
  with ``s = 0`` it is the MSE of the resolved scales (Parseval), and with a
  ``sobolev_max_degree`` too, the MSE of the largest scales alone. That does not undo
  the few per cent of power an MSE-trained model takes from its planetary modes each
  step (the geopotential's degree-1, order-0 mode: 6 % with it and without it,
  ``benchmarks/RESULTS.md``, session 24): an error loss rewards the conditional mean;
* divergence loss: the kinetic energy of the divergent part of the wind error
  (its velocity potential, through the vector transform) at each level with both
  winds, over the winds' variance. MSE counts that part no more than the rest;
  a model of a nearly non-divergent flow can then grow divergent wind nobody
  asked for, which this term prices separately;
* axial-rotation loss: the squared error of each level's super-rotation (the solid-body
  part of the zonal wind, :class:`emulator.angular_momentum.AxialRotation`) over the
  winds' variance. A one-step error of 3.6 % in it, nothing to the MSE, leaves the
  stage 9's climate (``checkpoints/world_sfno.ckpt``) with 0.56 of the truth's axial rotation power
  (``benchmarks/RESULTS.md``, session 23).

Inputs are normalized ``(batch, channel, lat, lon)``; each term is a weighted
mean over channels (weights default to one) and a mean over the batch. With an
ensemble, predictions are ``(batch * members, ...)``, each window's members
consecutive: the CRPS scores them together, every other term each member alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import nn
from torch_harmonics import RealSHT, RealVectorSHT

from emulator.angular_momentum import AxialRotation
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.quadrature import AreaMean
from emulator.schema import Strict
from emulator.spectra import degree_power, wind_levels
from emulator.winds import DIVERGENT, WindChannels


class LossConfig(Strict):
    channel_weights: dict[str, float] = Field(default_factory=dict, description="relative weight per channel")
    mse: float = Field(1.0, ge=0, description="weight of the area-weighted MSE (of each member)")
    crps: float = Field(0.0, ge=0, description="weight of the ensemble's CRPS; needs train.ensemble_members > 1")
    crps_fairness: float = Field(
        0.95, gt=0, le=1, description="alpha of the almost-fair CRPS; 1: the fair one, whose optimum is degenerate"
    )
    spectral: float = Field(0.0, ge=0, description="weight of the amplitude-spectrum loss")
    log_spectral: float = Field(0.0, ge=0, description="weight of the log-amplitude-spectrum loss")
    sobolev: float = Field(0.0, ge=0, description="weight of the H^-s norm of the error")
    sobolev_order: float = Field(1.0, ge=0, description="s of the H^-s norm")
    sobolev_max_degree: int | None = Field(
        None, ge=0, description="the H^-s norm of the error's degrees up to this one only (None: all)"
    )
    divergence: float = Field(0.0, ge=0, description="weight of the divergent wind error's kinetic energy")
    axial_rotation: float = Field(0.0, ge=0, description="weight of the squared error of the winds' super-rotation")


class AreaWeightedMSE(nn.Module):
    """``(batch, channel)`` mean squared error per unit area."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.area_mean = AreaMean(grid)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.area_mean((prediction - target).square())[..., 0, 0]


class AlmostFairCRPS(nn.Module):
    """``(batch, channel)`` area mean of the almost-fair CRPS of ``(batch, member, channel, lat, lon)`` members.

    ``mean_j |x_j - y| - (1 - (1 - alpha) / M) / (2 M (M - 1)) sum_(j != k) |x_j - x_k|``: with
    ``alpha = 1`` the fair estimator (unbiased for the CRPS of the members' distribution).
    """

    def __init__(self, grid: Grid, fairness: float) -> None:
        super().__init__()
        self.area_mean = AreaMean(grid)
        self.fairness = fairness

    def forward(self, members: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        count = members.shape[1]
        skill = (members - target[:, None]).abs().mean(dim=1)
        spread = (members[:, :, None] - members[:, None, :]).abs().sum(dim=(1, 2))
        discount = 1.0 - (1.0 - self.fairness) / count
        score = skill - discount * spread / (2 * count * (count - 1))
        return self.area_mean(score)[..., 0, 0]


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

    def __init__(self, grid: Grid, order: float, max_degree: int | None = None) -> None:
        """``max_degree``: the norm of the error's degrees up to it only (all when None)."""
        super().__init__()
        self.power = DegreePower(grid)
        degree = torch.arange(grid.max_degree, dtype=torch.float32)
        weights = (1.0 + degree * (degree + 1.0)) ** -order
        if max_degree is not None:
            weights[max_degree + 1 :] = 0.0
        self.weights: torch.Tensor
        self.register_buffer("weights", weights, persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.power(prediction - target) * self.weights).sum(dim=-1)


class WindLevelLoss(nn.Module):
    """``(batch, channel)`` loss of each wind level's error, over the winds' variance, on its u and v channels.

    Other channels get zero. ``std`` (one per channel) turns normalized winds back into
    vector fields; subclasses turn ``(batch, level, 2, lat, lon)`` wind errors in m s-1
    into ``(batch, level)`` squared measures.
    """

    def __init__(self, channels: list[str], std: Sequence[float], term: str) -> None:
        super().__init__()
        levels = wind_levels(channels)
        if not levels:
            raise EmulatorError(f"train.loss.{term}: no level has both wind components among the channels")
        self.winds = WindChannels(channels, std, levels)
        self.variance: torch.Tensor
        self.register_buffer("variance", self.winds.std.square().mean(dim=(1, 2, 3)), persistent=False)

    def level_loss(self, error: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=prediction.device.type, enabled=False):
            loss = self.level_loss(self.winds.read(prediction - target)) / self.variance
        result = prediction.new_zeros(prediction.shape[:2], dtype=torch.float32)
        result[:, self.winds.index] = loss.repeat_interleave(2, dim=1)
        return result


class DivergenceLoss(WindLevelLoss):
    """The divergent kinetic energy of each level's wind error."""

    def __init__(self, grid: Grid, channels: list[str], std: Sequence[float]) -> None:
        super().__init__(channels, std, "divergence")
        self.vsht = RealVectorSHT(grid.nlat, grid.nlon, lmax=grid.max_degree, mmax=grid.max_degree, grid=grid.kind)
        degree = torch.arange(grid.max_degree, dtype=torch.float32)
        self.eigenvalues: torch.Tensor
        self.register_buffer("eigenvalues", degree * (degree + 1), persistent=False)

    def level_loss(self, error: torch.Tensor) -> torch.Tensor:
        potential = self.vsht(error)[:, :, DIVERGENT]
        return 0.5 * (degree_power(potential) * self.eigenvalues).sum(dim=-1)


class AxialRotationLoss(WindLevelLoss):
    """The squared error of each level's super-rotation (:class:`emulator.angular_momentum.AxialRotation`)."""

    def __init__(self, grid: Grid, channels: list[str], std: Sequence[float]) -> None:
        super().__init__(channels, std, "axial_rotation")
        self.rotation = AxialRotation(grid)

    def level_loss(self, error: torch.Tensor) -> torch.Tensor:
        return self.rotation(error[:, :, 0]).square()


class TrainingLoss(nn.Module):
    """The configured sum of terms, channel-weighted: ``(batch [* members], channel, lat, lon)`` pairs -> scalar."""

    def __init__(
        self,
        config: LossConfig,
        channels: list[str],
        grid: Grid,
        std: Sequence[float] | None = None,
        members: int = 1,
    ) -> None:
        """``std``: each channel's normalization scale, needed by the divergence term only;
        ``members``: predictions per target, consecutive in the batch."""
        super().__init__()
        unknown = sorted(set(config.channel_weights) - set(channels))
        if unknown:
            raise EmulatorError(f"train.loss.channel_weights: {unknown[0]!r} is not a prognostic channel")
        if config.crps > 0 and members < 2:
            raise EmulatorError(f"train.loss.crps needs an ensemble: train.ensemble_members is {members}")
        weights = torch.tensor([config.channel_weights.get(name, 1.0) for name in channels])
        self.channel_weights: torch.Tensor
        self.register_buffer("channel_weights", weights / weights.mean(), persistent=False)
        self.members = members
        self.crps = AlmostFairCRPS(grid, config.crps_fairness) if config.crps > 0 else None
        self.crps_weight = config.crps
        self.terms = nn.ModuleList()
        self.term_weights: list[float] = []
        if config.mse > 0:
            self.terms.append(AreaWeightedMSE(grid))
            self.term_weights.append(config.mse)
        if config.spectral > 0:
            self.terms.append(SpectralLoss(grid))
            self.term_weights.append(config.spectral)
        if config.log_spectral > 0:
            self.terms.append(LogSpectralLoss(grid))
            self.term_weights.append(config.log_spectral)
        if config.sobolev > 0:
            self.terms.append(SobolevLoss(grid, config.sobolev_order, config.sobolev_max_degree))
            self.term_weights.append(config.sobolev)
        for name, wind_term in (("divergence", DivergenceLoss), ("axial_rotation", AxialRotationLoss)):
            weight = getattr(config, name)
            if weight > 0:
                if std is None:
                    raise EmulatorError(f"train.loss.{name} needs the channels' normalization scales")
                self.terms.append(wind_term(grid, channels, std))
                self.term_weights.append(weight)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = prediction.new_zeros((), dtype=torch.float32)
        if self.crps is not None:
            members = prediction.unflatten(0, (-1, self.members))
            total = total + self.crps_weight * (self.crps(members, target).float() * self.channel_weights).mean()
        each = target.repeat_interleave(self.members, dim=0) if self.members > 1 else target
        for weight, term in zip(self.term_weights, self.terms, strict=True):
            total = total + weight * (term(prediction, each).float() * self.channel_weights).mean()
        return total
