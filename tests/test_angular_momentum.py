"""Angular momentum: the equatorial fixer and the axial measure, on analytic rotations, a jet, the stepper."""

import numpy as np
import pytest
import torch

from emulator.angular_momentum import AxialRotation, EquatorialAngularMomentumFixer, TiltModel
from emulator.config import StepperConfig
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.stepper import Stepper
from emulator.winds import DIVERGENT, ROTATIONAL, every_level_winds, vector_transforms
from tests.conftest import CHANNELS
from tests.test_balance import GRID, STD, galewsky_jet
from tests.test_divergent_wind import normalized, sectoral_gradient
from tests.test_stepper import Constant

NORMALIZER = Normalizer(tuple(CHANNELS), np.array([1.0e5, 0.0, 0.0]), STD, np.ones(3))
WIND = every_level_winds(NORMALIZER, "test")


def solid_body_rotation(axis: tuple[float, float, float], speed: float) -> torch.Tensor:
    """``(2, lat, lon)`` wind ``(u, v)`` of the rotation ``omega x r`` about ``axis`` (x: 0 E on the equator, z: north).

    Written out analytically: for ``omega = (a, b, c)``, ``u = -a sin(lat) cos(lon) - b sin(lat) sin(lon) + c
    cos(lat)`` and ``v = a sin(lon) - b cos(lon)``; ``speed`` is the largest speed of a unit axis.
    """
    latitude = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float64))[:, None]
    longitude = torch.linspace(0, 2 * torch.pi, GRID.nlon + 1, dtype=torch.float64)[:-1]
    a, b, c = axis
    u = -a * torch.sin(latitude) * torch.cos(longitude) - b * torch.sin(latitude) * torch.sin(longitude)
    u = u + c * torch.cos(latitude)
    v = (a * torch.sin(longitude) - b * torch.cos(longitude)).expand(GRID.shape)
    return (speed * torch.stack([u, v])).float()


def wind_error(after: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest difference of the winds of two normalized states, in m s-1."""
    wind_std = torch.as_tensor(STD[1:], dtype=torch.float32)[:, None, None]
    return float(((after - expected)[0, 1:] * wind_std).abs().max())


def test_a_tilt_the_step_adds_is_removed_and_the_rest_of_the_flow_stays() -> None:
    _, jet = galewsky_jet()
    axial, wave = solid_body_rotation((0.0, 0.0, 1.0), 15.0), sectoral_gradient(3, 10.0)
    before = normalized(jet + axial)
    stepped = normalized(jet + 1.1 * axial + wave + solid_body_rotation((0.6, -0.8, 0.0), 5.0))
    after = EquatorialAngularMomentumFixer(NORMALIZER, GRID)(stepped, before)
    assert wind_error(after, normalized(jet + 1.1 * axial + wave)) < 0.02  # m s-1, of a jet of 80
    assert torch.equal(after[:, 0], stepped[:, 0])


def test_the_tilt_before_the_step_is_kept() -> None:
    _, jet = galewsky_jet()
    tilt = solid_body_rotation((1.0, 0.0, 0.0), 2.0)
    before = normalized(jet + tilt)
    stepped = normalized(jet + solid_body_rotation((0.0, 1.0, 0.0), 3.0))
    after = EquatorialAngularMomentumFixer(NORMALIZER, GRID)(stepped, before)
    assert wind_error(after, before) < 0.02
    assert wind_error(stepped, before) > 3.0


def test_a_quarter_turn_moves_the_tilt_axis_a_quarter_of_the_way_west() -> None:
    before = normalized(solid_body_rotation((1.0, 0.0, 0.0), 2.0))
    quarter_turn = EquatorialAngularMomentumFixer(NORMALIZER, GRID, TiltModel(rotation=(0.0, 1.0)))
    after = quarter_turn(torch.zeros_like(before), before)
    assert wind_error(after, normalized(solid_body_rotation((0.0, -1.0, 0.0), 2.0))) < 0.02  # axis at 90 W


def planetary_wave(speed: float) -> torch.Tensor:
    """``(2, lat, lon)`` rotational wind of the stream function's degree-3, order-1 harmonic.

    Written out analytically: for ``psi = cos(lat) (5 sin^2(lat) - 1) cos(lon)``, ``u = -d psi / d lat =
    -sin(lat) (11 - 15 sin^2(lat)) cos(lon)`` and ``v = d psi / d lon / cos(lat) = -(5 sin^2(lat) - 1) sin(lon)``,
    scaled to a largest speed near ``speed``.
    """
    sine = torch.sin(torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float64)))[:, None]
    longitude = torch.linspace(0, 2 * torch.pi, GRID.nlon + 1, dtype=torch.float64)[:-1]
    wind = torch.stack([-sine * (11 - 15 * sine**2) * torch.cos(longitude), -(5 * sine**2 - 1) * torch.sin(longitude)])
    return (speed * wind / wind.abs().max()).float()


def test_a_tilt_model_turns_the_tilt_follows_the_wave_adds_its_innovation_sets_the_partner_and_leaves_the_rest() -> (
    None
):
    _, jet = galewsky_jet()
    before = normalized(jet + solid_body_rotation((1.0, 0.0, 0.0), 2.0))
    stepped = normalized(
        jet + solid_body_rotation((0.2, 1.0, 0.3), 3.0) + sectoral_gradient(3, 10.0) + planetary_wave(20.0)
    )
    model = TiltModel(rotation=(0.8, 0.3), wave_coupling=(0.05, -0.04), innovation=0.1, divergent_partner=(0.1, 0.5))
    innovation = torch.tensor([[complex(0.05, -0.02)]])
    after = EquatorialAngularMomentumFixer(NORMALIZER, GRID, model)(stepped, before, innovation)
    (start, _, _), (step, step_partner, wave), (tilt, partner, _) = (
        order_one(state) for state in (before, stepped, after)
    )
    assert abs(complex(0.05, -0.04) * wave) > 0.1  # m s-1: the coupling moves the tilt
    expected = complex(0.8, 0.3) * start + complex(0.05, -0.04) * wave + complex(0.05, -0.02)
    assert abs(tilt - expected) < 1e-4 * abs(expected)
    assert abs(step_partner) < 1e-4 < abs(partner - complex(0.1, 0.5) * step)
    assert abs(partner - complex(0.1, 0.5) * tilt) < 1e-4 * abs(tilt)
    vsht, _ = vector_transforms(GRID, 8)
    change = vsht(WIND.read(after)) - vsht(WIND.read(stepped))
    change[..., ROTATIONAL, 1, 1] = change[..., DIVERGENT, 2, 1] = 0
    assert float(change.abs().max()) < 1e-4 * abs(step)


def order_one(state: torch.Tensor) -> tuple[complex, complex, complex]:
    """The rotational (1, 1) and divergent (2, 1) coefficients of a normalized state's wind (the tilt and its
    partner), and its rotational (3, 1) coefficient (the planetary wave), in m s-1."""
    vsht, _ = vector_transforms(GRID, 4)
    coefficients = vsht(WIND.read(state))[0, 0]
    return tuple(
        complex(coefficients[part, degree, 1]) for part, degree in ((ROTATIONAL, 1), (DIVERGENT, 2), (ROTATIONAL, 3))
    )


def test_a_rollout_s_tilt_walks_by_the_innovation_member_by_member() -> None:
    model = TiltModel(innovation=0.5)
    stepper = Stepper(Constant(0.0, channels=3), NORMALIZER, StepperConfig(equatorial_angular_momentum=model), GRID)
    start = normalized(solid_body_rotation((1.0, 0.0, 0.0), 2.0)).expand(2, -1, -1, -1)
    forcings = [torch.zeros(1, 0, *GRID.shape)] * 400
    pair = torch.stack(list(stepper.rollout(start, forcings)))
    alone = torch.stack(list(stepper.rollout(start[1:], forcings, members=[1])))
    torch.testing.assert_close(alone[:, 0], pair[:, 1])
    tilts = torch.tensor([[order_one(state[None])[0] for state in member] for member in pair.unbind(1)])
    steps = tilts.diff(dim=1, prepend=torch.full((2, 1), order_one(start[:1])[0]))
    assert float(steps.abs().square().mean().sqrt()) == pytest.approx(0.5, rel=0.1)
    assert abs(complex((steps[0] * steps[1].conj()).mean())) < 0.1 * 0.25, "members draw apart"


@pytest.mark.parametrize("enabled", [True, False])
def test_stepper_applies_the_fixer_when_configured(enabled: bool) -> None:
    class Tilting(Constant):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return normalized(solid_body_rotation((0.0, 1.0, 0.0), 4.0))

    config = StepperConfig(residual=False, equatorial_angular_momentum=enabled)
    state = Stepper(Tilting(0.0), NORMALIZER, config, GRID).step(
        torch.zeros(1, 3, *GRID.shape), torch.zeros(1, 0, *GRID.shape)
    )
    assert (wind_error(state, torch.zeros_like(state)) < 0.02) is enabled


def test_the_fixer_needs_both_winds_of_a_level() -> None:
    config = StepperConfig(equatorial_angular_momentum=True)
    with pytest.raises(EmulatorError, match=r"stepper\.equatorial_angular_momentum: no level has both wind"):
        Stepper(Constant(0.0), NORMALIZER.subset(CHANNELS[:2]), config, GRID)


def test_axial_rotation_is_the_speed_of_a_rotation_about_the_polar_axis_alone() -> None:
    rotation = AxialRotation(GRID)
    for axis, expected in (((0.0, 0.0, 1.0), 12.0), ((0.6, -0.8, 0.0), 0.0), ((0.6, 0.0, 0.8), 9.6)):
        assert float(rotation(solid_body_rotation(axis, 12.0)[0])) == pytest.approx(expected, abs=1e-4)
    assert abs(float(rotation(sectoral_gradient(3, 10.0)[0]))) < 1e-5


def test_axial_rotation_of_a_jet_is_its_rotational_degree_one_order_zero_part() -> None:
    """The vector transform's (1, 0) stream-function mode of the jet, back on the grid, is ``U cos(lat)``."""
    _, jet = galewsky_jet()
    vsht, ivsht = vector_transforms(GRID, 2)
    mode = torch.zeros(2, 2, 2)
    mode[ROTATIONAL, 1, 0] = 1.0
    solid_body = ivsht(vsht(jet) * mode)
    speed = float(AxialRotation(GRID)(jet[0]))
    expected = solid_body_rotation((0.0, 0.0, 1.0), speed)
    assert 5.0 < speed < 30.0  # an 80 m s-1 jet at 45 N
    torch.testing.assert_close(solid_body, expected, atol=1e-3, rtol=0)
