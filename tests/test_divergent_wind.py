"""Divergent-wind damping: analytic divergent winds go, a solver's rotational jet stays."""

import numpy as np
import pytest
import torch

from emulator.config import StepperConfig, load_config
from emulator.data.normalizer import Normalizer
from emulator.divergent_wind import DivergentWindConfig, DivergentWindDamping
from emulator.errors import EmulatorError
from emulator.stepper import Stepper
from tests.conftest import CHANNELS
from tests.test_balance import GRID, STD, galewsky_jet
from tests.test_stepper import Constant

NORMALIZER = Normalizer(tuple(CHANNELS), np.array([1.0e5, 0.0, 0.0]), STD, np.ones(3))


def sectoral_gradient(degree: int, speed: float) -> torch.Tensor:
    """``(2, lat, lon)`` wind ``grad(chi)`` of the degree-``degree`` sectoral harmonic ``chi = cos^l(lat) cos(l lon)``.

    Written out analytically: u = -l cos^(l-1)(lat) sin(l lon), v = -l cos^(l-1)(lat) sin(lat) cos(l lon),
    scaled to a largest speed near ``speed``: a wind with divergence and no vorticity at one degree.
    """
    latitude = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float64))[:, None]
    longitude = torch.linspace(0, 2 * torch.pi, GRID.nlon + 1, dtype=torch.float64)[:-1]
    envelope = -degree * torch.cos(latitude) ** (degree - 1)
    u = envelope * torch.sin(degree * longitude)
    v = envelope * torch.sin(latitude) * torch.cos(degree * longitude)
    wind = torch.stack([u, v])
    return (speed * wind / wind.abs().max()).float()


def normalized(wind: torch.Tensor) -> torch.Tensor:
    """``(2, lat, lon)`` wind -> a normalized state ``(1, 3, lat, lon)`` with a zero geopotential anomaly."""
    winds = wind / torch.as_tensor(STD[1:], dtype=torch.float32)[:, None, None]
    return torch.cat([torch.zeros(1, *GRID.shape), winds])[None]


def assert_same_winds_and_geopotential(after: torch.Tensor, expected: torch.Tensor, before: torch.Tensor) -> None:
    wind_std = torch.as_tensor(STD[1:], dtype=torch.float32)[:, None, None]
    assert float(((after - expected)[0, 1:] * wind_std).abs().max()) < 0.05  # m s-1, of a jet of 80
    assert torch.equal(after[:, 0], before[:, 0])


@pytest.mark.parametrize("strength", [1.0, 0.3])
def test_damping_removes_its_share_of_the_divergent_wind_from_min_degree_only(strength: float) -> None:
    _, jet = galewsky_jet()
    low, high = sectoral_gradient(3, 10.0), sectoral_gradient(12, 10.0)
    damping = DivergentWindDamping(DivergentWindConfig(strength=strength, min_degree=8), NORMALIZER, GRID)
    state = normalized(jet + low + high)
    after = damping(state)
    expected = normalized(jet + low + (1 - strength) * high)
    assert_same_winds_and_geopotential(after, expected, state)


def test_damping_up_to_max_degree_leaves_the_degrees_above() -> None:
    _, jet = galewsky_jet()
    low, high = sectoral_gradient(3, 10.0), sectoral_gradient(12, 10.0)
    config = DivergentWindConfig(strength=1.0, min_degree=1, max_degree=5)
    state = normalized(jet + low + high)
    after = DivergentWindDamping(config, NORMALIZER, GRID)(state)
    expected = normalized(jet + high)
    assert_same_winds_and_geopotential(after, expected, state)


def test_a_band_up_to_order_zero_removes_the_zonal_mean_meridional_flow_alone() -> None:
    _, jet = galewsky_jet()
    sectoral = sectoral_gradient(3, 10.0)
    latitude = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float64))[:, None]
    meridional = torch.zeros_like(sectoral)
    meridional[1] = (10.0 * torch.sin(latitude) * torch.cos(latitude)).expand(GRID.shape)  # grad of 5 sin^2(lat)
    config = DivergentWindConfig(strength=1.0, max_order=0)
    state = normalized(jet + sectoral + meridional)
    after = DivergentWindDamping(config, NORMALIZER, GRID)(state)
    assert_same_winds_and_geopotential(after, normalized(jet + sectoral), state)


def test_more_bands_damp_their_own_degrees_and_overlaps_act_in_turn() -> None:
    _, jet = galewsky_jet()
    low, middle, high = sectoral_gradient(3, 10.0), sectoral_gradient(7, 10.0), sectoral_gradient(12, 10.0)
    config = DivergentWindConfig(
        strength=1.0,
        max_degree=3,
        more_bands=[{"strength": 0.5, "min_degree": 10, "max_degree": 14}, {"strength": 0.5, "min_degree": 12}],
    )
    state = normalized(jet + low + middle + high)
    after = DivergentWindDamping(config, NORMALIZER, GRID)(state)
    expected = normalized(jet + middle + 0.25 * high)
    assert_same_winds_and_geopotential(after, expected, state)


@pytest.mark.parametrize(
    ("band", "message"),
    [
        ("min_degree: 31, max_degree: 16", "max_degree 16 is below"),
        ("min_order: 2, max_order: 1", "max_order 1 is below"),
    ],
)
def test_a_bad_band_is_refused_naming_its_key(band: str, message: str) -> None:
    override = f"stepper.divergent_wind={{max_degree: 3, more_bands: [{{{band}}}]}}"
    with pytest.raises(EmulatorError, match=rf"stepper\.divergent_wind\.more_bands\.0: .*{message}"):
        load_config("configs/world.yaml", [override])


def test_stepper_applies_the_damping_and_needs_both_winds() -> None:
    config = StepperConfig(residual=False, divergent_wind=DivergentWindConfig(strength=1.0))

    class Divergent(Constant):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return normalized(sectoral_gradient(5, 20.0))

    state = Stepper(Divergent(0.0), NORMALIZER, config, GRID).step(
        torch.zeros(1, 3, *GRID.shape), torch.zeros(1, 0, *GRID.shape)
    )
    assert float(state.abs().max()) < 1e-4
    with pytest.raises(EmulatorError, match=r"stepper\.divergent_wind: no level has both wind components"):
        Stepper(Constant(0.0), NORMALIZER.subset(CHANNELS[:2]), config, GRID)
