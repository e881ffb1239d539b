"""Linear balance: the balanced geopotential of analytic and solver-balanced flows, and the relaxation toward it."""

import numpy as np
import pytest
import torch
from torch_harmonics import RealSHT
from torch_harmonics.examples import ShallowWaterSolver

from emulator.balance import EARTH_RADIUS_M, EARTH_ROTATION_RATE_S, BalanceConfig, BalanceRelaxation, LinearBalance
from emulator.config import StepperConfig
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.spectra import degree_power
from emulator.stepper import Stepper
from tests.conftest import CHANNELS
from tests.test_stepper import Constant

GRID = Grid(32, 64)
STD = np.array([3000.0, 12.0, 8.0])


def analysis(field: torch.Tensor) -> torch.Tensor:
    return RealSHT(GRID.nlat, GRID.nlon, lmax=GRID.max_degree, mmax=GRID.max_degree, grid=GRID.kind)(field)


def correlation(a: torch.Tensor, b: torch.Tensor, degrees: slice) -> float:
    """Correlation of two coefficient sets over ``degrees``, orders ``m > 0`` counted twice (as ``degree_power``)."""
    cross = degree_power(a + b)[..., degrees].sum() - degree_power(a - b)[..., degrees].sum()
    norms = degree_power(a)[..., degrees].sum() * degree_power(b)[..., degrees].sum()
    return float(cross / (4 * norms.sqrt()))


def test_solid_body_rotation_balances_a_geopotential_low_at_the_poles() -> None:
    speed = 20.0
    latitude = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float32))[:, None].expand(GRID.shape)
    wind = torch.stack([speed * torch.cos(latitude), torch.zeros(GRID.shape)])
    # integrating d(phi)/d(latitude) = -f a u gives -a Omega U sin^2, less its mean
    expected = -EARTH_RADIUS_M * EARTH_ROTATION_RATE_S * speed * (torch.sin(latitude) ** 2 - 1.0 / 3.0)
    balanced = LinearBalance(GRID)(wind)
    assert torch.allclose(balanced, analysis(expected), atol=1e-3 * float(expected.abs().max()))


def galewsky_jet() -> tuple[torch.Tensor, torch.Tensor]:
    """Geopotential ``(lat, lon)`` and wind ``(2, lat, lon)`` of a zonal jet that torch-harmonics' solver balances.

    Its balance equation is the full (gradient-wind) one, solved by its own spectral
    operators: independent of :class:`LinearBalance`, and a little different from it.
    """
    solver = ShallowWaterSolver(*GRID.shape, 600.0, lmax=GRID.max_degree, mmax=GRID.max_degree, hamp=0.0)
    state = solver.float().galewsky_initial_condition()
    return solver.spec2grid(state[0]), solver.getuv(state[1:])


def test_a_jet_in_gradient_wind_balance_is_close_to_linear_balance() -> None:
    geopotential, wind = galewsky_jet()
    full, linear = analysis(geopotential), LinearBalance(GRID)(wind)
    assert correlation(full, linear, slice(1, None)) > 0.99
    # the cyclostrophic term adds to a westerly jet's pressure gradient: linear balance has less power
    power_ratio = degree_power(linear)[1:].sum() / degree_power(full)[1:].sum()
    assert 0.75 < float(power_ratio) < 1.0


def noisy_jet() -> tuple[torch.Tensor, torch.Tensor]:
    """A normalized ``(2, 3, lat, lon)`` state of the jet with noise in its geopotential, and the jet's balanced one."""
    geopotential, wind = galewsky_jet()
    noisy = geopotential + 500.0 * torch.randn(2, *GRID.shape, generator=torch.Generator().manual_seed(0))
    winds = (wind / torch.as_tensor(STD[1:], dtype=torch.float32)[:, None, None]).expand(2, -1, -1, -1)
    state = torch.cat([(noisy[:, None] - 1.0e5) / STD[0], winds], dim=1).float()
    return state, LinearBalance(GRID)(wind)


def imbalance_before_and_after(config: BalanceConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The jet's imbalance ``(2, l, m)`` before and after one relaxation by ``config``; the winds must not change."""
    normalizer = Normalizer(tuple(CHANNELS), np.array([1.0e5, 0.0, 0.0]), STD, np.ones(3))
    state, balanced = noisy_jet()
    after = BalanceRelaxation(config, normalizer, GRID)(state)
    assert torch.equal(after[:, 1:], state[:, 1:])
    return balanced - analysis(state[:, 0] * STD[0] + 1.0e5), balanced - analysis(after[:, 0] * STD[0] + 1.0e5)


@pytest.mark.parametrize("strength", [1.0, 0.25])
def test_relaxation_removes_its_share_of_the_imbalance_above_min_degree_only(strength: float) -> None:
    before, after = imbalance_before_and_after(BalanceConfig(strength=strength, min_degree=4))
    assert torch.allclose(after[:, :4], before[:, :4], atol=1.0)
    assert torch.allclose(after[:, 4:], (1 - strength) * before[:, 4:], atol=1.0)


def test_more_bands_relax_their_own_degrees_and_overlaps_act_in_turn() -> None:
    bands = [{"strength": 0.5, "min_degree": 10, "max_degree": 14}, {"strength": 0.5, "min_degree": 12}]
    before, after = imbalance_before_and_after(BalanceConfig(strength=1.0, max_degree=1, more_bands=bands))
    kept = torch.ones(GRID.max_degree)
    kept[1], kept[10:12], kept[12:15], kept[15:] = 0.0, 0.5, 0.25, 0.5
    assert torch.allclose(after, kept[:, None] * before, atol=1.0)
    assert float(before[:, 2:10].abs().max()) > 100.0  # the untouched degrees had an imbalance to keep


def test_stepper_applies_the_relaxation_and_needs_a_geopotential_with_both_winds() -> None:
    normalizer = Normalizer(tuple(CHANNELS), np.zeros(3), STD, np.ones(3))
    config = StepperConfig(residual=False, balance=BalanceConfig(strength=1.0))
    latitude = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float32))[:, None].expand(GRID.shape)

    class SolidBody(Constant):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([torch.zeros(GRID.shape), torch.cos(latitude), torch.zeros(GRID.shape)])[None]

    state = Stepper(SolidBody(0.0), normalizer, config, GRID).step(
        torch.zeros(1, 3, *GRID.shape), torch.zeros(1, 0, *GRID.shape)
    )
    expected = -EARTH_RADIUS_M * EARTH_ROTATION_RATE_S * STD[1] * (torch.sin(latitude) ** 2 - 1.0 / 3.0) / STD[0]
    assert torch.allclose(state[0, 0], expected, atol=1e-3 * float(expected.abs().max()))
    with pytest.raises(EmulatorError, match=r"stepper\.balance: no level has a geopotential and both wind components"):
        Stepper(Constant(0.0), normalizer.subset(CHANNELS[:2]), config, GRID)
