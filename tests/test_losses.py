"""Training losses on the sphere against fields whose answer is known."""

import math

import pytest
import torch
from torch_harmonics import InverseRealSHT, RealSHT

from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.training.loss import (
    AlmostFairCRPS,
    AreaWeightedMSE,
    AxialRotationLoss,
    DivergenceLoss,
    LogSpectralLoss,
    LossConfig,
    SobolevLoss,
    SpectralLoss,
    TrainingLoss,
)

GRID = Grid(32, 64, "legendre-gauss")


def band_limited(seed: int, channels: int = 2) -> torch.Tensor:
    """Random fields of degree below 16, exactly resolved on the grid."""
    generator = torch.Generator().manual_seed(seed)
    coefficients = torch.randn(1, channels, 16, 16, 2, generator=generator)
    coefficients = torch.view_as_complex(coefficients).tril()
    coefficients[..., 0] = coefficients[..., 0].real.to(coefficients.dtype)
    return InverseRealSHT(32, 64, lmax=16, mmax=16, grid="legendre-gauss")(coefficients)


def test_sobolev_norm_of_order_zero_is_the_area_mse() -> None:
    prediction, target = band_limited(0), band_limited(1)
    sobolev = SobolevLoss(GRID, order=0.0)(prediction, target)
    torch.testing.assert_close(sobolev, AreaWeightedMSE(GRID)(prediction, target), rtol=1e-4, atol=0)


def test_sobolev_norm_up_to_a_degree_is_the_mse_of_those_degrees_alone() -> None:
    prediction, target = band_limited(0), band_limited(1)
    low_pass = torch.zeros(16, 16)
    low_pass[:4] = 1.0
    coarse_error = InverseRealSHT(32, 64, lmax=16, mmax=16, grid="legendre-gauss")(
        RealSHT(32, 64, lmax=16, mmax=16, grid="legendre-gauss")(prediction - target) * low_pass
    )
    sobolev = SobolevLoss(GRID, order=0.0, max_degree=3)(prediction, target)
    expected = AreaWeightedMSE(GRID)(coarse_error, torch.zeros_like(coarse_error))
    torch.testing.assert_close(sobolev, expected, rtol=1e-4, atol=0)
    assert float((sobolev / SobolevLoss(GRID, order=0.0)(prediction, target)).max()) < 0.5


def test_sobolev_norm_of_negative_order_weighs_large_scales_more() -> None:
    coarse, fine = torch.zeros(1, 1, 32, 32, dtype=torch.complex64), torch.zeros(1, 1, 32, 32, dtype=torch.complex64)
    coarse[0, 0, 2, 1], fine[0, 0, 20, 1] = 1.0, 1.0
    isht = InverseRealSHT(32, 64, lmax=32, mmax=32, grid="legendre-gauss")
    zero = torch.zeros(1, 1, 32, 64)
    loss = SobolevLoss(GRID, order=1.0)
    ratio = loss(isht(coarse), zero) / loss(isht(fine), zero)
    torch.testing.assert_close(float(ratio), (1 + 20 * 21) / (1 + 2 * 3), rtol=1e-4, atol=0)


def test_spectral_loss_ignores_phase_and_sees_lost_energy() -> None:
    field = band_limited(2)
    spectral = SpectralLoss(GRID)
    rotated = torch.roll(field, shifts=5, dims=-1)  # same spectrum, other phases
    assert float(spectral(rotated, field).max()) < 1e-6 < float(AreaWeightedMSE(GRID)(rotated, field).min())
    assert float(spectral(0.5 * field, field).min()) > 0.01


def test_log_spectral_loss_is_the_relative_amplitude_error_at_every_scale() -> None:
    field = band_limited(7)
    log_spectral = LogSpectralLoss(GRID)
    rotated = torch.roll(field, shifts=3, dims=-1)
    assert float(log_spectral(rotated, field).max()) < 1e-4
    # degrees 0-15 scaled by 2 in amplitude, 16-31 have no power in either field
    expected = torch.log(torch.tensor(2.0)) ** 2 * 16 / 32
    torch.testing.assert_close(log_spectral(2.0 * field, field), expected.expand(1, 2), rtol=1e-2, atol=0)
    # a small field that loses half its amplitude weighs as much as a large one
    torch.testing.assert_close(
        log_spectral(0.5e-3 * field, 1e-3 * field), log_spectral(0.5 * field, field), rtol=1e-3, atol=0
    )


def test_channel_weights_scale_each_channel() -> None:
    prediction, target = band_limited(3), band_limited(4)
    per_channel = AreaWeightedMSE(GRID)(prediction, target)[0]
    config = LossConfig(channel_weights={"a": 3.0, "b": 1.0})
    weighted = TrainingLoss(config, ["a", "b"], GRID)(prediction, target)
    torch.testing.assert_close(weighted, (1.5 * per_channel[0] + 0.5 * per_channel[1]) / 2.0)  # weights of mean 1


def test_terms_add_with_their_weights() -> None:
    prediction, target = band_limited(5), band_limited(6)
    config = LossConfig(spectral=0.5, log_spectral=0.25, sobolev=2.0, sobolev_order=1.5)
    total = TrainingLoss(config, ["a", "b"], GRID)(prediction, target)
    expected = (
        AreaWeightedMSE(GRID)(prediction, target).mean()
        + 0.5 * SpectralLoss(GRID)(prediction, target).mean()
        + 0.25 * LogSpectralLoss(GRID)(prediction, target).mean()
        + 2.0 * SobolevLoss(GRID, 1.5)(prediction, target).mean()
    )
    torch.testing.assert_close(total, expected)


def test_weight_for_an_unknown_channel_is_refused() -> None:
    with pytest.raises(EmulatorError, match=r"train.loss.channel_weights: 'c' is not a prognostic channel"):
        TrainingLoss(LossConfig(channel_weights={"c": 1.0}), ["a", "b"], GRID)


WIND_CHANNELS = ["geopotential@250", "u_component_of_wind@250", "v_component_of_wind@250"]


def test_divergence_loss_prices_the_divergent_wind_error_alone() -> None:
    """Solid-body rotation (``u = cos(lat)``) has no divergence; ``v = cos(lat)`` is all divergence."""
    std = [5.0, 2.0, 3.0]
    loss = DivergenceLoss(GRID, WIND_CHANNELS, std)
    latitude = torch.deg2rad(torch.from_numpy(GRID.latitudes).float())[:, None].expand(*GRID.shape)
    zero, cosine = torch.zeros(*GRID.shape), torch.cos(latitude)

    def normalized(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.ones(*GRID.shape), u / std[1], v / std[2]])[None]

    divergent = loss(normalized(zero, cosine), torch.zeros(1, 3, *GRID.shape))
    kinetic = 0.5 * AreaWeightedMSE(GRID)(cosine[None, None], torch.zeros(1, 1, *GRID.shape))[0, 0]
    expected = kinetic / ((std[1] ** 2 + std[2] ** 2) / 2)
    torch.testing.assert_close(divergent[0, 1:], expected.expand(2), rtol=1e-4, atol=0)
    assert divergent[0, 0] == 0.0, "the geopotential's error is not the divergence term's business"
    rotational = loss(normalized(cosine, zero), torch.zeros(1, 3, *GRID.shape))
    assert float(rotational.max()) < 1e-6 * float(expected)


def test_divergence_loss_needs_winds_and_their_scales() -> None:
    with pytest.raises(EmulatorError, match=r"train.loss.divergence: no level has both wind components"):
        DivergenceLoss(GRID, ["geopotential@250", "u_component_of_wind@250"], [1.0, 1.0])
    with pytest.raises(EmulatorError, match=r"train.loss.divergence needs the channels' normalization scales"):
        TrainingLoss(LossConfig(divergence=1.0), WIND_CHANNELS, GRID)


def test_axial_rotation_loss_prices_the_error_of_the_super_rotation_alone() -> None:
    """``u = U cos(lat)`` is all axial rotation; a divergent ``v = cos(lat)`` and an order-1 ``u`` have none."""
    std = [5.0, 2.0, 3.0]
    loss = AxialRotationLoss(GRID, WIND_CHANNELS, std)
    latitude = torch.deg2rad(torch.from_numpy(GRID.latitudes).float())[:, None].expand(*GRID.shape)
    longitude = torch.linspace(0, 2 * torch.pi, GRID.nlon + 1)[:-1].expand(*GRID.shape)
    zero, cosine = torch.zeros(*GRID.shape), torch.cos(latitude)

    def normalized(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.ones(*GRID.shape), u / std[1], v / std[2]])[None]

    rotating = loss(normalized(4.0 * cosine, zero), torch.zeros(1, 3, *GRID.shape))
    expected = torch.tensor(16.0 / ((std[1] ** 2 + std[2] ** 2) / 2))
    torch.testing.assert_close(rotating[0, 1:], expected.expand(2), rtol=1e-4, atol=0)
    assert rotating[0, 0] == 0.0
    others = loss(normalized(cosine * torch.cos(longitude), cosine), torch.zeros(1, 3, *GRID.shape))
    assert float(others.max()) < 1e-6 * float(expected)
    with pytest.raises(EmulatorError, match=r"train.loss.axial_rotation needs the channels' normalization scales"):
        TrainingLoss(LossConfig(axial_rotation=1.0), WIND_CHANNELS, GRID)


def gaussian_crps(mean: float, std: float, observed: float) -> float:
    """The CRPS of ``N(mean, std^2)`` at ``observed`` (Gneiting and Raftery 2007)."""
    z = (observed - mean) / std
    cdf, pdf = 0.5 * (1 + math.erf(z / math.sqrt(2))), math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return std * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def test_fair_crps_of_a_gaussian_ensemble_is_the_gaussian_crps_and_beats_its_mean() -> None:
    generator = torch.Generator().manual_seed(0)
    members = 0.5 + torch.randn(4, 8, 3, *GRID.shape, generator=generator)  # N(0.5, 1) at every point
    truth = torch.zeros(4, 3, *GRID.shape)
    fair = AlmostFairCRPS(GRID, fairness=1.0)(members, truth)
    torch.testing.assert_close(fair.mean().item(), gaussian_crps(0.5, 1.0, 0.0), rtol=0.02, atol=0)
    collapsed = AlmostFairCRPS(GRID, fairness=1.0)(members.mean(dim=1, keepdim=True).expand_as(members), truth)
    assert float(collapsed.mean()) > 0.45 > 0.34 > float(fair.mean()), "MSE's favourite, the mean, scores worse"
    almost = AlmostFairCRPS(GRID, fairness=0.9)(members, truth)
    assert bool((almost > fair).all()), "less credit for spread than the fair estimator"


def test_crps_of_identical_members_is_the_absolute_error() -> None:
    prediction, target = band_limited(8), band_limited(9)
    members = prediction[:, None].expand(1, 3, *prediction.shape[1:])
    absolute = AreaWeightedMSE(GRID).area_mean((prediction - target).abs())[..., 0, 0]
    torch.testing.assert_close(AlmostFairCRPS(GRID, fairness=0.95)(members, target), absolute)


def test_ensemble_loss_scores_members_together_and_every_other_term_member_by_member() -> None:
    first, second, target = band_limited(10), band_limited(11), band_limited(12)
    config = LossConfig(mse=0.5, crps=2.0, spectral=0.25)
    total = TrainingLoss(config, ["a", "b"], GRID, members=2)(torch.cat([first, second]), target)
    expected = (
        2.0 * AlmostFairCRPS(GRID, 0.95)(torch.stack([first, second], dim=1), target).mean()
        + 0.5 * (AreaWeightedMSE(GRID)(first, target) + AreaWeightedMSE(GRID)(second, target)).mean() / 2
        + 0.25 * (SpectralLoss(GRID)(first, target) + SpectralLoss(GRID)(second, target)).mean() / 2
    )
    torch.testing.assert_close(total, expected)
    with pytest.raises(EmulatorError, match=r"train.loss.crps needs an ensemble: train.ensemble_members is 1"):
        TrainingLoss(LossConfig(crps=1.0), ["a", "b"], GRID)
