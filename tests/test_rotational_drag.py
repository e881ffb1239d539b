"""Rotational drag: a super-rotation slows by its share, toward rest; the rest of the flow stays."""

import numpy as np
import pytest
import torch

from emulator.config import StepperConfig
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.rotational_drag import RotationalDrag, RotationalDragConfig
from emulator.stepper import Stepper
from tests.conftest import CHANNELS
from tests.test_angular_momentum import solid_body_rotation, wind_error
from tests.test_balance import GRID, STD
from tests.test_divergent_wind import sectoral_gradient
from tests.test_stepper import Constant

MEAN_WIND = 5.0  # m s-1 of both components: a drag toward the normalizer's mean would move a flow at rest
NORMALIZER = Normalizer(tuple(CHANNELS), np.array([1.0e5, MEAN_WIND, MEAN_WIND]), STD, np.ones(3))
SUPER_ROTATION = RotationalDragConfig(strength=0.03, min_degree=1, max_degree=1, max_order=0)


def normalized(wind: torch.Tensor) -> torch.Tensor:
    """``(2, lat, lon)`` wind in m s-1 -> a normalized state ``(1, 3, lat, lon)`` of :data:`NORMALIZER`."""
    winds = (wind - MEAN_WIND) / torch.as_tensor(STD[1:], dtype=torch.float32)[:, None, None]
    return torch.cat([torch.zeros(1, *GRID.shape), winds])[None]


def degree_3_jets(speed: float) -> torch.Tensor:
    """``(2, lat, lon)`` zonal wind of the stream function ``P_3(sin(lat))``: ``u = (3 - 15 sin^2(lat)) cos(lat) /
    2`` times ``speed``, ``v = 0``; rotational, zonally symmetric and orthogonal to the super-rotation."""
    latitude = torch.deg2rad(torch.as_tensor(GRID.latitudes, dtype=torch.float64))[:, None]
    u = (3 - 15 * torch.sin(latitude) ** 2) * torch.cos(latitude) / 2
    return (speed * torch.stack([u.expand(GRID.shape), torch.zeros(GRID.shape, dtype=torch.float64)])).float()


def test_a_drag_on_the_super_rotation_slows_it_by_its_share_and_leaves_the_rest() -> None:
    axial, tilt = solid_body_rotation((0.0, 0.0, 1.0), 20.0), solid_body_rotation((0.6, -0.8, 0.0), 5.0)
    others = degree_3_jets(5.0) + tilt + sectoral_gradient(3, 10.0)
    before = normalized(axial + others)
    after = RotationalDrag(SUPER_ROTATION, NORMALIZER, GRID)(before)
    assert wind_error(after, normalized(0.97 * axial + others)) < 0.02  # m s-1, of a rotation of 20
    assert torch.equal(after[:, 0], before[:, 0])


def test_a_flow_at_rest_stays_at_rest_whatever_the_mean_wind() -> None:
    rest = normalized(torch.zeros(2, *GRID.shape))
    config = RotationalDragConfig(strength=0.5, min_degree=1, max_degree=8)
    assert wind_error(RotationalDrag(config, NORMALIZER, GRID)(rest), rest) < 1e-4


@pytest.mark.parametrize("configured", [True, False])
def test_stepper_applies_the_drag_when_configured(configured: bool) -> None:
    rotating = normalized(solid_body_rotation((0.0, 0.0, 1.0), 20.0))

    class Rotating(Constant):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return rotating

    config = StepperConfig(residual=False, rotational_drag=SUPER_ROTATION if configured else None)
    state = Stepper(Rotating(0.0), NORMALIZER, config, GRID).step(rotating, torch.zeros(1, 0, *GRID.shape))
    assert (wind_error(state, rotating) > 0.5) is configured


def test_the_drag_needs_both_winds_of_a_level() -> None:
    config = StepperConfig(rotational_drag=SUPER_ROTATION)
    with pytest.raises(EmulatorError, match=r"stepper\.rotational_drag: no level has both wind"):
        Stepper(Constant(0.0), NORMALIZER.subset(CHANNELS[:2]), config, GRID)
