"""The stochastic forcing: its spectrum, band and memory, seeding, calibration and use in training and forecasts."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml

from emulator.angular_momentum import TiltModel
from emulator.balance import EARTH_RADIUS_M, EARTH_ROTATION_RATE_S
from emulator.checkpoint import load_checkpoint
from emulator.cli import main
from emulator.config import StepperConfig, load_config
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.io.forecast_reader import open_forecast
from emulator.perturbations import seeded_generator
from emulator.spectra import KineticEnergySpectrum, PowerSpectrum
from emulator.stepper import Stepper
from emulator.stochastic import (
    ResidualStatistics,
    SpectralComponents,
    StochasticForcing,
    StochasticForcingConfig,
)
from emulator.training.calibration import TiltMoments
from emulator.training.loss import AlmostFairCRPS, LossConfig, TrainingLoss
from emulator.training.train import rollout_loss
from emulator.winds import DIVERGENT, ROTATIONAL, every_level_winds, vector_transforms
from tests.conftest import CHANNELS
from tests.test_stepper import Constant

GRID = Grid(32, 64)
DEGREES = GRID.max_degree
NAMES = ["geopotential@250", "stream_function@250", "velocity_potential@250"]
STD = torch.tensor([100.0, 5.0, 7.0])
TILT_NORMALIZER = Normalizer(tuple(CHANNELS), np.array([1.0e5, 0.0, 0.0]), np.array([3000.0, 12.0, 8.0]), np.ones(3))
DRIVE = {"components": ["geopotential@250", "stream_function@250"], "min_degree": 3, "max_degree": 10}


def known_statistics(lag_correlation: float = 0.6) -> ResidualStatistics:
    """A spectrum per component, z and psi correlated 0.5 at every degree, one lag correlation for all."""
    degree = torch.arange(DEGREES, dtype=torch.float64)
    spectra = torch.stack([1e4 / (degree + 1) ** 2, 50.0 / (degree + 1) ** 3, 30.0 / (degree + 1) ** 3], dim=1)
    spectra[0, 1:] = 0.0  # winds have no degree-0 potential
    covariance = torch.diag_embed(spectra)
    covariance[:, 0, 1] = covariance[:, 1, 0] = 0.5 * torch.sqrt(spectra[:, 0] * spectra[:, 1])
    return ResidualStatistics(NAMES, covariance, lag_correlation * spectra, {"source": "test"})


def per_coefficient_moments(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-degree covariance ``(l, i, j)`` of ``first`` and lag covariance ``(l, i)`` with ``second`` (physical)."""
    transform = SpectralComponents(CHANNELS, GRID)
    a, b = (transform.analysis(x.double() * STD[:, None, None]) for x in (first, second))
    orders = torch.arange(1, DEGREES + 1, dtype=torch.float64)  # m = 0..l, alike for isotropic draws
    covariance = torch.einsum("bilm,bjlm->lij", a, a.conj()).real / (len(a) * orders[:, None, None])
    lag = torch.einsum("bilm,bilm->li", a, b.conj()).real / (len(a) * orders[:, None])
    return covariance, lag


def test_components_are_scalars_then_each_wind_level_as_potentials_and_round_trip() -> None:
    channels = ["u_component_of_wind@250", "geopotential@500", "v_component_of_wind@250", "temperature@850"]
    transform = SpectralComponents(channels, GRID)
    assert transform.names == ["geopotential@500", "temperature@850", "stream_function@250", "velocity_potential@250"]
    coefficients = torch.randn(2, 4, DEGREES, DEGREES, dtype=torch.complex128).tril()
    coefficients[..., 0] = coefficients[..., 0].real
    coefficients[:, 2:, 0] = 0.0  # potentials have no degree 0
    fields = transform.synthesis(coefficients)
    assert fields.shape == (2, 4, 32, 64)
    torch.testing.assert_close(transform.analysis(fields.double()), coefficients, atol=2e-4, rtol=0)


def test_forcing_has_the_calibrated_covariance_in_its_band_and_the_lag_correlation() -> None:
    statistics = known_statistics()
    forcing = StochasticForcing(StochasticForcingConfig(**DRIVE), statistics, CHANNELS, STD, GRID)
    assert [band.correlation for band in forcing.bands] == [pytest.approx(0.6)]
    draws = forcing.draws([seeded_generator((7, member)) for member in range(100)])
    first, second = next(draws), next(draws)
    covariance, lag = per_coefficient_moments(first, second)
    band = slice(3, 11)
    expected = statistics.covariance[band]
    # z and psi: their variances and their covariance, summed over the band (11,200 real coefficients)
    for i, j in ((0, 0), (1, 1), (0, 1)):
        measured, truth = float(covariance[band, i, j].sum()), float(expected[:, i, j].sum())
        assert measured == pytest.approx(truth, rel=0.1)
    assert float(covariance[band, 2, 2].sum()) < 1e-6 * float(expected[:, 2, 2].sum())  # chi not chosen
    outside = torch.cat([covariance[:3], covariance[11:]])
    assert float(outside.abs().max()) < 1e-6 * float(expected.abs().max())
    ratio = lag[band, [0, 1]].sum() / covariance[band, [0, 1], [0, 1]].sum()
    assert float(ratio) == pytest.approx(0.6, abs=0.05)
    later = [next(draws) for _ in range(20)][-1]
    stationary, _ = per_coefficient_moments(later, later)
    assert float(stationary[band, 0, 0].sum()) == pytest.approx(float(expected[:, 0, 0].sum()), rel=0.1)


def test_each_band_is_its_own_process_with_its_components_degrees_scale_and_correlation() -> None:
    statistics = known_statistics()
    planetary = {"components": ["stream_function@250"], "min_degree": 1, "max_degree": 2, "scale": 2.0}
    config = StochasticForcingConfig(**DRIVE, more_bands=[planetary | {"correlation": 0.9}])
    forcing = StochasticForcing(config, statistics, CHANNELS, STD, GRID)
    assert [band.correlation for band in forcing.bands] == [pytest.approx(0.6), 0.9]
    generators = [seeded_generator((11, member)) for member in range(400)]
    draws = forcing.draws(generators)
    first, second = next(draws), next(draws)
    covariance, lag = per_coefficient_moments(first, second)
    low, synoptic = slice(1, 3), slice(3, 11)
    # degrees 1-2: psi alone, four times its calibrated variance (scale 2), lag correlation 0.9
    psi = float(statistics.covariance[low, 1, 1].sum())
    assert float(covariance[low, 1, 1].sum()) == pytest.approx(4 * psi, rel=0.1)
    assert float(covariance[low, 0, 0].sum()) < 1e-6 * float(statistics.covariance[low, 0, 0].sum())
    assert float(lag[low, 1].sum() / covariance[low, 1, 1].sum()) == pytest.approx(0.9, abs=0.05)
    # degrees 3-10: the first band, as it is alone
    for i in (0, 1):
        expected = float(statistics.covariance[synoptic, i, i].sum())
        assert float(covariance[synoptic, i, i].sum()) == pytest.approx(expected, rel=0.1)
    assert float(lag[synoptic, 1].sum() / covariance[synoptic, 1, 1].sum()) == pytest.approx(0.6, abs=0.05)


def test_a_band_of_orders_forces_only_those_zonal_wavenumbers() -> None:
    statistics = known_statistics()
    zonal = {"components": ["stream_function@250"], "min_degree": 2, "max_degree": 7, "max_order": 0}
    forcing = StochasticForcing(StochasticForcingConfig(**zonal), statistics, CHANNELS, STD, GRID)
    fields = next(forcing.draws([seeded_generator((5, member)) for member in range(200)]))
    wind = fields[:, 1:] * STD[1:, None, None]
    assert float(wind[:, 0].std(dim=-1).max()) < 1e-4 * float(wind[:, 0].std())  # symmetric about the axis
    assert float(wind[:, 1].abs().max()) < 1e-4 * float(wind[:, 0].abs().max())  # zonal rotation has no v
    covariance, _ = per_coefficient_moments(fields, fields)
    orders = torch.arange(1, DEGREES + 1, dtype=torch.float64)
    band = slice(2, 8)  # per coefficient over the l + 1 orders: m = 0 alone carries 1 / (l + 1) of it
    expected = statistics.covariance[band, 1, 1] / orders[band]
    assert float(covariance[band, 1, 1].sum()) == pytest.approx(float(expected.sum()), rel=0.15)
    waves = StochasticForcingConfig(**zonal | {"min_order": 1, "max_order": 2, "min_degree": 1, "max_degree": 12})
    forcing = StochasticForcing(waves, statistics, CHANNELS, STD, GRID)
    coefficients = SpectralComponents(CHANNELS, GRID).analysis(
        next(forcing.draws([seeded_generator((6,))])).double() * STD[:, None, None]
    )
    power = coefficients.abs().square().sum(dim=(0, 1, 2))  # per order
    assert float(torch.cat([power[:1], power[3:]]).max()) < 1e-6 * float(power[1:3].min())


def grid_divergence_and_vorticity(wind: torch.Tensor) -> tuple[float, float]:
    """RMS divergence and vorticity of ``(2, lat, lon)`` winds by centred finite differences, poles left out.

    Independent of the spherical-harmonic transforms, so it checks which potential is which.
    """
    u, v = wind.double().numpy()
    latitude = np.deg2rad(GRID.latitudes)[:, None]
    step = 2 * np.pi / GRID.nlon

    def along_longitude(field: np.ndarray) -> np.ndarray:
        return (np.roll(field, -1, axis=1) - np.roll(field, 1, axis=1)) / (2 * step)

    def along_latitude(field: np.ndarray) -> np.ndarray:
        return np.gradient(field, latitude[:, 0], axis=0)

    metric = np.cos(latitude)
    divergence = (along_longitude(u) + along_latitude(v * metric)) / metric
    vorticity = (along_longitude(v) - along_latitude(u * metric)) / metric
    inner = slice(4, -4)
    return float(np.sqrt((divergence[inner] ** 2).mean())), float(np.sqrt((vorticity[inner] ** 2).mean()))


@pytest.mark.parametrize("component", ["stream_function@250", "velocity_potential@250"])
def test_stream_function_forcing_is_rotational_and_velocity_potential_forcing_divergent(component: str) -> None:
    config = StochasticForcingConfig(components=[component], min_degree=2, max_degree=8)
    forcing = StochasticForcing(config, known_statistics(), CHANNELS, STD, GRID)
    divergence, vorticity = grid_divergence_and_vorticity(
        next(forcing.draws([seeded_generator((3,))]))[0, 1:] * STD[1:, None, None]
    )
    if component.startswith("stream_function"):
        assert divergence < 0.05 * vorticity
    else:
        assert vorticity < 0.05 * divergence


@pytest.mark.parametrize("factor", [0.5, 1.0])
def test_balanced_geopotential_makes_the_wind_noise_geostrophic_in_the_middle_latitudes(factor: float) -> None:
    config = StochasticForcingConfig(
        components=["stream_function@250"], min_degree=8, max_degree=12, balanced_geopotential=factor
    )
    forcing = StochasticForcing(config, known_statistics(), CHANNELS, STD, GRID)
    noise = next(forcing.draws([seeded_generator((5, member)) for member in range(4)]))
    assert torch.equal(noise[2:3], next(forcing.draws([seeded_generator((5, 2))])))  # batch-free
    geopotential, u, v = (noise.double() * STD[:, None, None]).unbind(1)
    # geostrophic wind of the noise's geopotential by centred differences, 30-60 degrees of both hemispheres
    latitude = torch.as_tensor(np.deg2rad(GRID.latitudes), dtype=torch.float64)[:, None]
    coriolis_radius = 2 * EARTH_ROTATION_RATE_S * torch.sin(latitude) * EARTH_RADIUS_M
    along_latitude = torch.gradient(geopotential, spacing=(latitude[:, 0],), dim=1)[0]
    along_longitude = (geopotential.roll(-1, 2) - geopotential.roll(1, 2)) / (2 * 2 * math.pi / GRID.nlon)
    u_geostrophic = -along_latitude / coriolis_radius
    v_geostrophic = along_longitude / (coriolis_radius * torch.cos(latitude))
    middle = (latitude[:, 0].abs() > math.radians(30)) & (latitude[:, 0].abs() < math.radians(60))
    wind = torch.stack([u, v])[:, :, middle].flatten()
    geostrophic = torch.stack([u_geostrophic, v_geostrophic])[:, :, middle].flatten()
    assert float(torch.corrcoef(torch.stack([wind, geostrophic]))[0, 1]) > 0.9
    assert float(geostrophic.norm() / wind.norm()) == pytest.approx(factor, rel=0.2)


def test_the_bands_noise_is_the_sum_of_each_band_transformed_alone_with_its_balanced_geopotential() -> None:
    synoptic = {"components": ["stream_function@250"], "min_degree": 6, "max_degree": 12, "balanced_geopotential": 0.5}
    planetary = {"min_degree": 1, "max_degree": 4, "balanced_geopotential": 1.0}
    bands = [DRIVE, synoptic, planetary]
    forcing = StochasticForcing(
        StochasticForcingConfig(**bands[0], more_bands=bands[1:]), known_statistics(), CHANNELS, STD, GRID
    )
    eta = forcing.advance(None, [seeded_generator((8, member)) for member in range(3)])
    alone = [
        StochasticForcing(StochasticForcingConfig(**band), known_statistics(), CHANNELS, STD, GRID).noise(
            eta[i : i + 1]
        )
        for i, band in enumerate(bands)
    ]
    torch.testing.assert_close(forcing.noise(eta), sum(alone), atol=1e-5, rtol=1e-5)
    assert float(alone[2][:, 0].abs().max()) > 0.1 * float(alone[0][:, 0].abs().max())  # each band counts


def test_forcing_refuses_unknown_components_other_channels_statistics_states_without_bands_and_unbalanceable() -> None:
    with pytest.raises(EmulatorError, match="components: 'vorticity@250' is not one of geopotential@250"):
        StochasticForcing(
            StochasticForcingConfig(components=["vorticity@250"]), known_statistics(), CHANNELS, STD, GRID
        )
    with pytest.raises(EmulatorError, match=r"more_bands\[0\]\.components: 'divergence@250' is not one of"):
        StochasticForcing(
            StochasticForcingConfig(more_bands=[{"components": ["divergence@250"]}]),
            known_statistics(),
            CHANNELS,
            STD,
            GRID,
        )
    single = StochasticForcing(StochasticForcingConfig(**DRIVE), known_statistics(), CHANNELS, STD, GRID)
    with pytest.raises(EmulatorError, match=r"a forcing state of shape \(4, 3, 32, 64\), not \(1 bands"):
        single.advance(torch.zeros(4, 3, 32, 64), [seeded_generator((0,))] * 4)  # saved in grid space
    statistics = known_statistics()
    winds = ResidualStatistics(NAMES[1:], statistics.covariance[:, 1:, 1:], statistics.lag_covariance[:, 1:])
    with pytest.raises(EmulatorError, match=r"more_bands\[0\]\.balanced_geopotential: no level has a geopotential"):
        StochasticForcing(
            StochasticForcingConfig(more_bands=[{"balanced_geopotential": 1.0}]), winds, CHANNELS[1:], STD[1:], GRID
        )
    with pytest.raises(EmulatorError, match="residual statistics are of"):
        StochasticForcing(StochasticForcingConfig(), known_statistics(), ["geopotential@250"], STD[:1], GRID)


def stepper_normalizer() -> Normalizer:
    return Normalizer(tuple(CHANNELS), np.zeros(3), STD.numpy().astype(np.float64), np.ones(3))


def stochastic_stepper(**forcing: object) -> Stepper:
    config = StepperConfig(stochastic_forcing=StochasticForcingConfig(**(DRIVE | forcing)))
    return Stepper(Constant(0.0, channels=3), stepper_normalizer(), config, GRID, known_statistics())


def roll(stepper: Stepper, members: list[int], steps: int = 3) -> torch.Tensor:
    """``(step, member, channel, lat, lon)`` of a persistence model from zero, so the forcing alone."""
    initial = torch.zeros(len(members), 3, 32, 64)
    forcings = (torch.zeros(1, 0, 32, 64) for _ in range(steps))
    return torch.stack(list(stepper.rollout(initial, forcings, members)))


def test_stepper_forcing_is_seeded_per_member_and_recorded() -> None:
    stepper = stochastic_stepper()
    both = roll(stepper, [0, 1])
    assert torch.equal(both, roll(stepper, [0, 1]))
    assert torch.equal(both[:, 1], roll(stepper, [1])[:, 0])  # a member is the same alone or in a batch
    assert not torch.allclose(both[:, 0], both[:, 1])
    assert not torch.equal(both, roll(stochastic_stepper(seed=1), [0, 1]))
    potentials = SpectralComponents(CHANNELS, GRID).analysis(both[-1].double() * STD[:, None, None])
    assert float(potentials[:, 2].abs().max()) < 1e-6 * float(potentials[:, 1].abs().max())  # no divergent wind
    assert '"min_degree":3' in stepper.controls()["stepper_stochastic_forcing"].replace(" ", "")
    with pytest.raises(EmulatorError, match="needs the checkpoint's residual statistics: run emulator calibrate"):
        Stepper(Constant(0.0, channels=3), stepper_normalizer(), StepperConfig(stochastic_forcing={}), GRID)


def test_ensemble_rollout_loss_scores_each_windows_members_with_their_own_forcing() -> None:
    stepper, steps = stochastic_stepper(), 3
    windows = torch.randn(2, steps + 1, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    windows[:, 0] = 0.0
    loss = TrainingLoss(LossConfig(mse=0.0, crps=1.0), CHANNELS, GRID, members=2)
    keys = stepper.member_keys(range(4))
    value = rollout_loss(stepper, loss, windows, torch.zeros(2, steps, 0, 32, 64), keys, members=2)
    alone = roll(stepper, [0, 1, 2, 3], steps).unflatten(1, (2, 2))  # (step, window, member, ...)
    crps = AlmostFairCRPS(GRID, 0.95)
    expected = sum(crps(alone[i], windows[:, i + 1]).mean() for i in range(steps)) / steps
    torch.testing.assert_close(value, expected)
    assert not torch.allclose(alone[-1, :, 0], alone[-1, :, 1]), "a window's members differ by their forcing"


def test_the_tilt_model_fitted_to_a_truth() -> None:
    generator = torch.Generator().manual_seed(3)
    start, wave = (
        2.0**k * torch.complex(*torch.randn(2, 64, dtype=torch.float64, generator=generator)) for k in (0, 1)
    )
    departure = 0.1 * torch.complex(*torch.randn(2, 64, dtype=torch.float64, generator=generator))
    rotation, coupling, partner = 0.9 * np.exp(0.35j), 0.05 - 0.04j, 0.55j
    following = rotation * start + coupling * wave + departure
    moments = TiltMoments(TILT_NORMALIZER, GRID)
    moments.add(tilt_states(start, partner * start, 0 * wave), tilt_states(following, partner * following, wave))
    fitted = moments.fit()
    regressors = torch.stack([start, wave], dim=1)
    least_squares = torch.linalg.lstsq(regressors, following[:, None]).solution[:, 0]
    for value, fit in zip(least_squares.tolist(), (fitted.rotation, fitted.wave_coupling), strict=True):
        np.testing.assert_allclose(fit, (value.real, value.imag), atol=1e-4)
    assert abs(least_squares[0] - rotation) < 0.03 and abs(least_squares[1] - coupling) < 0.01
    innovation = float((following - regressors @ least_squares).abs().square().mean().sqrt())
    assert fitted.innovation == pytest.approx(innovation, abs=2e-4) and 0.12 < innovation < 0.16
    np.testing.assert_allclose(fitted.divergent_partner, (0.0, 0.55), atol=1e-4)


def tilt_states(tilt: torch.Tensor, partner: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
    """Normalized states whose wind (m s-1) is a rotational (1, 1) coefficient ``tilt``, a divergent (2, 1)
    coefficient ``partner`` and a rotational (3, 1) coefficient ``wave`` each, by the inverse vector transform."""
    coefficients = torch.zeros(len(tilt), 2, 4, 4, dtype=torch.complex64)
    coefficients[:, ROTATIONAL, 1, 1], coefficients[:, DIVERGENT, 2, 1] = tilt, partner
    coefficients[:, ROTATIONAL, 3, 1] = wave
    wind = vector_transforms(GRID, 4)[1](coefficients)
    state = torch.zeros(len(tilt), 3, *GRID.shape)
    return every_level_winds(TILT_NORMALIZER, "test").add(state, wind[:, None])


def calibrated_checkpoint(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    config, workdir = trained
    output = tmp_path / "calibrated.ckpt"
    arguments = ["--config", str(config), "--checkpoint", str(workdir / "model.ckpt"), "--output", str(output)]
    assert main(["calibrate", *arguments, "--windows", "100", "--device", "cpu"]) == 0
    return output


def test_calibration_measures_the_one_step_residuals(trained: tuple[Path, Path], tmp_path: Path) -> None:
    statistics = load_checkpoint(calibrated_checkpoint(trained, tmp_path)).residual_statistics
    assert statistics is not None and statistics.components == NAMES
    # the tiny store's training period has 12 times: 10 two-step windows, all of them measured
    assert statistics.provenance["windows"] == "10" and statistics.provenance["checkpoint"] == "model.ckpt"
    config = load_config(trained[0])
    loaded = load_checkpoint(trained[1] / "model.ckpt")
    normalizer = loaded.normalizer.subset(CHANNELS)
    source = ZarrSource(config.data.store, CHANNELS)
    states = normalizer.normalize(torch.from_numpy(source.read(list(source.period_indices(config.data.train_period)))))
    rotational = vector_transforms(GRID, 4)[0](every_level_winds(normalizer, "test").read(states))[:, 0, ROTATIONAL]
    tilt, wave = (rotational[:, degree, 1].to(torch.complex128) for degree in (1, 3))
    regressors = torch.stack([tilt[:10], wave[1:11]], dim=1)  # the truth's x_1 = a x_0 + b y_1
    least_squares = torch.linalg.lstsq(regressors, tilt[1:11, None]).solution[:, 0]
    fitted = TiltModel.model_validate_json(statistics.provenance["tilt_model"])
    for value, fit in zip(least_squares.tolist(), (fitted.rotation, fitted.wave_coupling), strict=True):
        np.testing.assert_allclose(fit, (value.real, value.imag), atol=1e-4)
    assert_partners_fitted(statistics.provenance, states[:10], normalizer)
    stepper = Stepper(loaded.model, normalizer, config.stepper, GRID)
    with torch.no_grad():
        residuals = (states[1:] - stepper.step(states[:-1], torch.zeros(1, 0, 32, 64))).double()
    residuals = residuals * torch.from_numpy(normalizer.std)[:, None, None]
    # each window gives the residuals of steps s and s + 1 (s = 0..9); per degree, from the spectra module
    first, second = residuals[:10], residuals[1:]
    power, kinetic = PowerSpectrum(GRID), KineticEnergySpectrum(GRID)
    z_power = torch.cat([power(first[:, 0]), power(second[:, 0])]).mean(dim=0)
    wind_energy = torch.cat([kinetic(first[:, 1:]), kinetic(second[:, 1:])]).mean(dim=0)
    z_lag = (power(first[:, 0] + second[:, 0]) - power(first[:, 0] - second[:, 0])).mean(dim=0) / 4  # polarization
    degree = torch.arange(DEGREES, dtype=torch.float64)
    coefficients = (2 * degree + 1) / (4 * math.pi)  # a degree's power is its 2l + 1 coefficients' over 4 pi
    covariance = statistics.covariance.double()
    torch.testing.assert_close(coefficients * covariance[:, 0, 0], z_power, rtol=1e-4, atol=1e-6 * z_power.max())
    potentials = degree * (degree + 1) / 2 * (covariance[:, 1, 1] + covariance[:, 2, 2])
    torch.testing.assert_close(coefficients * potentials, wind_energy, rtol=1e-4, atol=1e-6 * wind_energy.max())
    lag = coefficients * statistics.lag_covariance[:, 0].double()
    torch.testing.assert_close(lag, z_lag, rtol=1e-4, atol=1e-6 * z_power.max())


def assert_partners_fitted(provenance: dict[str, str], states: torch.Tensor, normalizer: Normalizer) -> None:
    """Each divergent (l, m)'s explained share and kept factors are the least squares on its rotational neighbours."""
    kept = json.loads(provenance["divergent_partners"])
    explained = json.loads(provenance["divergent_partners_explained"])
    modes = {} if kept is None else {(mode["degree"], mode["order"]): mode for mode in kept["modes"]}
    vector = vector_transforms(GRID, 7)[0](every_level_winds(normalizer, "test").read(states))[:, 0]
    vector = vector.to(torch.complex128)
    assert len(explained) == 14  # orders 1-4, degrees up to 5
    for key, share in explained.items():
        degree, order = map(int, key.split(","))
        partners = [k for k in (degree - 1, degree + 1) if k >= order]
        chi = vector[:, DIVERGENT, degree, order]
        regressors = vector[:, ROTATIONAL, partners, order]
        least_squares = torch.linalg.lstsq(regressors, chi[:, None]).solution[:, 0]
        direct = 1 - float((chi - regressors @ least_squares).abs().square().sum() / chi.abs().square().sum())
        assert share == pytest.approx(direct, abs=2e-3)
        assert ((degree, order) in modes) == (share >= 0.5)
        if (degree, order) in modes:
            fitted = [complex(*modes[degree, order]["partners"][str(k)]) for k in partners]
            np.testing.assert_allclose(fitted, least_squares.numpy(), atol=1e-4)


def forced_config(trained: tuple[Path, Path], tmp_path: Path, init: Path, name: str) -> Path:
    tree = yaml.safe_load(trained[0].read_text())
    tree["stepper"]["stochastic_forcing"] = {"components": ["stream_function@250"], "min_degree": 2, "max_degree": 8}
    tree["train"] |= {"init_checkpoint": str(init), "checkpoint": str(tmp_path / name), "epochs": 1, "max_steps": 2}
    tree["forecast"]["checkpoint"] = str(tmp_path / name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_training_through_the_forcing_keeps_the_statistics_and_forecasts_with_it_are_seeded(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uncalibrated = forced_config(trained, tmp_path, trained[1] / "model.ckpt", "refused.ckpt")
    assert main(["train", "--config", str(uncalibrated), "--device", "cpu"]) != 0
    assert "train.init_checkpoint must be a checkpoint with residual statistics" in capsys.readouterr().err
    calibrated = calibrated_checkpoint(trained, tmp_path)
    config = forced_config(trained, tmp_path, calibrated, "forced.ckpt")
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0
    statistics, before = (load_checkpoint(path).residual_statistics for path in (tmp_path / "forced.ckpt", calibrated))
    assert statistics is not None and before is not None
    assert torch.equal(statistics.covariance, before.covariance)

    def forecast(output: str, *overrides: str) -> xr.Dataset:
        arguments = ["--config", str(config), "--output", str(tmp_path / output), "--device", "cpu"]
        assert main(["forecast", *arguments, *[f"--set={item}" for item in overrides]]) == 0
        with open_forecast(next((tmp_path / output).glob("forecast_*.nc"))) as dataset:
            return dataset.load()

    first, again = forecast("first"), forecast("again")
    deterministic = forecast("deterministic", "stepper.stochastic_forcing=null")
    reseeded = forecast("reseeded", "stepper.stochastic_forcing.seed=5")
    assert '"max_degree": 8' in first.attrs["stepper_stochastic_forcing"]
    assert deterministic.attrs["stepper_stochastic_forcing"] == "null"
    for name in first.data_vars:
        assert np.array_equal(first[name].values, again[name].values)
        assert not np.allclose(first[name].values, deterministic[name].values)
        assert not np.allclose(first[name].values, reseeded[name].values)


def test_ensemble_training_needs_the_forcing_and_trains_through_it(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ensemble = ["--set", "train.ensemble_members=2", "--set", "train.loss.crps=1.0", "--set", "train.loss.mse=0"]
    unforced = ["train", "--config", str(trained[0]), "--device", "cpu", *ensemble]
    assert main([*unforced, "--set", f"train.checkpoint={tmp_path / 'refused.ckpt'}"]) != 0
    assert "train.ensemble_members is 2: members differ only by stepper.stochastic_forcing" in capsys.readouterr().err
    config = forced_config(trained, tmp_path, calibrated_checkpoint(trained, tmp_path), "ensemble.ckpt")
    assert main(["train", "--config", str(config), "--device", "cpu", *ensemble]) == 0
    with (tmp_path / "ensemble.metrics.csv").open() as metrics:
        validation = [float(row["validation_loss"]) for row in csv.DictReader(metrics) if row["validation_loss"]]
    assert len(validation) == 1 and math.isfinite(validation[0])
    assert not (tmp_path / "refused.ckpt").exists()
