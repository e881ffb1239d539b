"""The planetary-mode diagnostics of the climate rollouts: power per degree and order at degrees 1-3."""

import math

import torch
from torch_harmonics import InverseRealSHT, InverseRealVectorSHT

from benchmarks.planetary_modes import PlanetaryModes, coherence, mode_factor
from emulator.grid import Grid

CHANNELS = ["geopotential@250", "u_component_of_wind@250", "v_component_of_wind@250"]
GRID = Grid(nlat=32, nlon=64)


def test_each_mode_holds_its_own_power_and_nothing_else() -> None:
    modes = PlanetaryModes(GRID, CHANNELS)
    latitude = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float64))
    coefficients = torch.zeros(GRID.max_degree, GRID.max_degree, dtype=torch.complex128)
    coefficients[2, 1] = 300.0 + 400.0j
    synthesis = InverseRealSHT(GRID.nlat, GRID.nlon, lmax=GRID.max_degree, mmax=GRID.max_degree, grid=GRID.kind)
    state = torch.zeros(1, 3, GRID.nlat, GRID.nlon, dtype=torch.float64)
    state[0, 0] = synthesis.double()(coefficients)
    state[0, 1] = 10.0 * torch.cos(latitude)[:, None]  # solid-body super-rotation: degree 1, order 0
    powers = modes.powers(state)

    # orthonormal harmonics: the area mean of z^2 is |c_21|^2 twice (m = +-1) over 4 pi
    assert math.isclose(float(powers[0, modes.labels.index("2,1")]), 2 * 500.0**2 / (4 * math.pi), rel_tol=1e-9)
    assert math.isclose(float(powers[1, modes.labels.index("1,0")]), 100.0 / 3.0, rel_tol=1e-9)  # mean of u^2 / 2
    others = powers.clone()
    others[0, modes.labels.index("2,1")] = others[1, modes.labels.index("1,0")] = 0.0
    assert float(others.abs().max()) < 1e-9 * float(powers.max())


def test_the_mode_factor_is_symmetric_and_names_the_worst_mode() -> None:
    truth = torch.ones(2, 9, dtype=torch.float64)
    powers = truth.clone()
    powers[0, 3], powers[1, 1] = 2.0, 1.0 / 3.0
    assert mode_factor(powers, truth) == (3.0, 1, 1)
    powers[1, 1] = 0.0
    assert mode_factor(powers, truth)[0] == math.inf


def test_a_velocity_potential_mode_is_divergent_kinetic_energy_as_its_stream_function_twin_is_rotational() -> None:
    modes = PlanetaryModes(GRID, CHANNELS)
    transform = InverseRealVectorSHT(GRID.nlat, GRID.nlon, lmax=GRID.max_degree, mmax=GRID.max_degree, grid=GRID.kind)
    powers = []
    for potential in (0, 1):  # stream function, then velocity potential, at degree 2, order 1
        coefficients = torch.zeros(1, 2, GRID.max_degree, GRID.max_degree, dtype=torch.complex128)
        coefficients[0, potential, 2, 1] = 3.0 - 4.0j
        state = torch.zeros(1, 3, GRID.nlat, GRID.nlon, dtype=torch.float64)
        state[:, 1:] = transform.double()(coefficients)
        powers.append(modes.powers(state))
    rotational, divergent = powers
    mode = modes.labels.index("2,1")
    assert float(rotational[1, mode]) > 0 and math.isclose(
        float(divergent[2, mode]), float(rotational[1, mode]), rel_tol=1e-9
    )
    for measured, row in ((rotational, 1), (divergent, 2)):
        others = measured.clone()
        others[row, mode] = 0.0
        assert float(others.abs().max()) < 1e-9 * float(measured.max())


def states_of(tilt: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
    """States whose wind is a stream function of (1, 1) coefficients ``tilt`` and (3, 1) coefficients ``wave``."""
    transform = InverseRealVectorSHT(GRID.nlat, GRID.nlon, lmax=GRID.max_degree, mmax=GRID.max_degree, grid=GRID.kind)
    coefficients = torch.zeros(len(tilt), 2, GRID.max_degree, GRID.max_degree, dtype=torch.complex128)
    coefficients[:, 0, 1, 1], coefficients[:, 0, 3, 1] = tilt, wave
    state = torch.zeros(len(tilt), 3, GRID.nlat, GRID.nlon, dtype=torch.float64)
    state[:, 1:] = transform.double()(coefficients)
    return state


def test_a_wave_that_carries_the_tilt_is_coherent_with_it_and_an_independent_one_is_not() -> None:
    modes = PlanetaryModes(GRID, CHANNELS)
    generator = torch.Generator().manual_seed(0)
    tilt, noise = (torch.complex(*torch.randn(2, 4000, dtype=torch.float64, generator=generator)) for _ in range(2))
    carried = modes.tilt_wave(states_of(tilt, complex(7.0, 1.5) * tilt))
    assert math.isclose(float(carried[2]), float(tilt.abs().square().mean()), rel_tol=1e-9)
    assert math.isclose(coherence(carried), 1.0, rel_tol=1e-9)
    # half the wave's variance a multiple of the tilt: a squared coherence of one half
    assert math.isclose(coherence(modes.tilt_wave(states_of(tilt, 3.0j * (tilt + noise)))), 0.5, abs_tol=0.03)
    assert coherence(modes.tilt_wave(states_of(tilt, noise))) < 0.01
