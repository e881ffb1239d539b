"""Spectra against fields whose spectrum is known in closed form."""

import numpy as np
import pytest
import torch
from torch_harmonics import InverseRealVectorSHT

from emulator.grid import Grid
from emulator.spectra import KineticEnergySpectrum, PowerSpectrum

GRID = Grid(48, 96, "legendre-gauss")


def coordinates() -> tuple[torch.Tensor, torch.Tensor]:
    lat = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float64))[:, None]
    lon = torch.deg2rad(torch.as_tensor(GRID.longitudes, dtype=torch.float64))[None, :]
    return lat.expand(GRID.nlat, GRID.nlon), lon.expand(GRID.nlat, GRID.nlon)


def area_mean(field: torch.Tensor) -> float:
    weights = torch.as_tensor(GRID.area_weights, dtype=torch.float64)[:, None]
    return float((field * weights).mean())


def test_single_harmonic_has_all_power_at_its_degree() -> None:
    lat, lon = coordinates()
    # Y_3^2 up to normalization: cos^2(lat) sin(lat) cos(2 lon)
    field = torch.cos(lat) ** 2 * torch.sin(lat) * torch.cos(2 * lon)
    power = PowerSpectrum(GRID)(field)
    assert int(power.argmax()) == 3
    assert float(power[3]) == pytest.approx(area_mean(field**2), rel=1e-10)
    assert float(power.sum() - power[3]) < 1e-12


def test_parseval_for_a_random_band_limited_field() -> None:
    torch.manual_seed(0)
    lat, lon = coordinates()
    field = sum(
        torch.randn(()) * torch.cos(lat) ** m * torch.cos(m * lon + k) for m, k in [(0, 0.0), (1, 0.3), (5, 1.0)]
    )
    power = PowerSpectrum(GRID)(field)
    assert float(power.sum()) == pytest.approx(area_mean(field**2), rel=1e-9)


def test_solid_body_rotation_is_all_degree_one_kinetic_energy() -> None:
    lat, _ = coordinates()
    wind = torch.stack([20.0 * torch.cos(lat), torch.zeros_like(lat)])
    energy = KineticEnergySpectrum(GRID)(wind)
    assert int(energy.argmax()) == 1
    assert float(energy.sum()) == pytest.approx(area_mean(0.5 * wind.square().sum(0)), rel=1e-9)
    assert float(energy[1]) / float(energy.sum()) == pytest.approx(1.0, abs=1e-9)


def test_kinetic_energy_parseval_for_band_limited_random_wind() -> None:
    torch.manual_seed(1)
    lmax = GRID.max_degree
    coefficients = torch.randn(2, lmax, lmax, dtype=torch.complex128).tril()
    coefficients[..., 0] = coefficients[..., 0].real
    coefficients[..., 0, :] = 0.0  # no degree-0 vector harmonic
    wind = InverseRealVectorSHT(GRID.nlat, GRID.nlon, lmax=lmax, mmax=lmax, grid=GRID.kind).double()(coefficients)
    energy = KineticEnergySpectrum(GRID)(wind)
    assert float(energy.sum()) == pytest.approx(area_mean(0.5 * wind.square().sum(0)), rel=1e-6)
    assert np.all(energy.numpy() >= 0)
