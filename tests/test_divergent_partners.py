"""Divergent partners: the chosen velocity-potential coefficients follow their stream-function partners, the rest
stays; the partners fitted to a truth."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from emulator.config import StepperConfig
from emulator.divergent_partners import DivergentPartners, DivergentPartnersConfig
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.stepper import Stepper
from emulator.training.calibration import PartnerMoments
from emulator.winds import DIVERGENT, ROTATIONAL, every_level_winds, vector_transforms
from tests.test_angular_momentum import NORMALIZER
from tests.test_balance import GRID

LMAX = 8
WIND = every_level_winds(NORMALIZER, "test")
TRANSFORM, INVERSE = vector_transforms(GRID, LMAX)
TWO_TWO = {"degree": 2, "order": 2, "partners": {3: (0.005, 0.08)}}
THREE_TWO = {"degree": 3, "order": 2, "partners": {2: (0.0, 0.04), 4: (0.003, 0.026)}}


def random_coefficients(batch: int, seed: int) -> torch.Tensor:
    """``(batch, 2, LMAX, LMAX)`` rotational and divergent coefficients (m s-1) of a random large-scale wind."""
    generator = torch.Generator().manual_seed(seed)
    coefficients = torch.complex(*torch.randn(2, batch, 2, LMAX, LMAX, generator=generator))
    degree, order = torch.arange(LMAX)[:, None], torch.arange(LMAX)[None, :]
    coefficients = coefficients * ((order <= degree) & (degree >= 1))
    coefficients[..., 0] = coefficients[..., 0].real.to(coefficients.dtype)  # order 0 of a real field is real
    return coefficients.to(torch.complex64)


def states(coefficients: torch.Tensor) -> torch.Tensor:
    """Normalized states whose wind is that of ``coefficients``, over a geopotential that is not zero."""
    geopotential = torch.linspace(-1.0, 1.0, GRID.nlon).expand(len(coefficients), 1, *GRID.shape)
    zero_wind = torch.cat([geopotential, torch.zeros(len(coefficients), 2, *GRID.shape)], dim=1)
    return WIND.add(zero_wind, INVERSE(coefficients)[:, None])


def analysed(state: torch.Tensor) -> torch.Tensor:
    return TRANSFORM(WIND.read(state)[:, 0])


@pytest.mark.parametrize("strength", [1.0, 0.3])
def test_the_chosen_coefficients_move_to_their_partners_and_the_rest_of_the_flow_stays(strength: float) -> None:
    coefficients = random_coefficients(2, seed=0)
    state = states(coefficients)
    config = DivergentPartnersConfig(strength=strength, modes=[TWO_TWO, THREE_TWO])
    after = DivergentPartners(config, NORMALIZER, GRID)(state)
    expected = coefficients.clone()
    psi = coefficients[:, ROTATIONAL]
    partner = {(2, 2): complex(0.005, 0.08) * psi[:, 3, 2]}
    partner[3, 2] = complex(0.0, 0.04) * psi[:, 2, 2] + complex(0.003, 0.026) * psi[:, 4, 2]
    for (degree, order), value in partner.items():
        before = coefficients[:, DIVERGENT, degree, order]
        expected[:, DIVERGENT, degree, order] = before + strength * (value - before)
    torch.testing.assert_close(analysed(after), expected, atol=2e-4, rtol=0)
    assert torch.equal(after[:, 0], state[:, 0])


def test_the_stepper_applies_the_partners_and_parses_them_as_the_cli_gives_them() -> None:
    tree = {"divergent_partners": {"modes": [{"degree": 2, "order": 2, "partners": {"3": [0.005, 0.08]}}]}}
    config = StepperConfig.model_validate(tree | {"residual": False})
    coefficients = random_coefficients(1, seed=1)
    stepper = Stepper(IdentityModel(), NORMALIZER, config, GRID)
    stepped = analysed(stepper.step(states(coefficients), torch.zeros(1, 0, *GRID.shape)))
    partner = complex(0.005, 0.08) * coefficients[:, ROTATIONAL, 3, 2]
    torch.testing.assert_close(stepped[:, DIVERGENT, 2, 2], partner, atol=1e-4, rtol=0)
    assert abs(complex(coefficients[0, DIVERGENT, 2, 2] - partner[0])) > 0.1
    assert '"partners":{"3":[0.005,0.08]}' in stepper.controls()["stepper_divergent_partners"].replace(" ", "")


class IdentityModel(torch.nn.Module):
    """A network whose output is its input's state channels: with ``residual`` off the step keeps the state."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, :3]


def test_modes_that_are_not_coefficients_or_beyond_the_grid_are_named() -> None:
    with pytest.raises(ValidationError, match="order 3 is above degree 2"):
        DivergentPartnersConfig(modes=[{"degree": 3, "order": 3, "partners": {2: (0.0, 0.1), 4: (0.0, 0.1)}}])
    with pytest.raises(ValidationError, match="modes"):
        DivergentPartnersConfig(modes=[])
    far = DivergentPartnersConfig(modes=[{"degree": 40, "order": 1, "partners": {41: (0.0, 0.1)}}])
    with pytest.raises(EmulatorError, match=r"stepper\.divergent_partners: degree 41 is beyond the grid.s largest"):
        DivergentPartners(far, NORMALIZER, Grid(32, 64))


def test_partners_fitted_to_a_truth_keep_the_locked_modes_alone() -> None:
    coefficients = random_coefficients(256, seed=2)
    psi = coefficients[:, ROTATIONAL]
    noise = 0.3 * random_coefficients(256, seed=3)[:, DIVERGENT]
    locked = complex(0.01, 0.5) * psi[:, 3, 2] + noise[:, 2, 2]  # 0.5 / (0.5 + 0.18) of its power explained
    coefficients[:, DIVERGENT] = noise
    coefficients[:, DIVERGENT, 2, 2] = locked
    moments = PartnerMoments(NORMALIZER, GRID)
    for chunk in states(coefficients).split(64):
        moments.add(chunk)
    kept, explained = moments.fit()
    assert kept is not None and [(mode.degree, mode.order) for mode in kept.modes] == [(2, 2)]
    regressor = psi[:, 3, 2].to(torch.complex128)[:, None]
    least_squares = torch.linalg.lstsq(regressor, locked.to(torch.complex128)[:, None]).solution[0, 0]
    np.testing.assert_allclose(kept.modes[0].partners[3], (least_squares.real, least_squares.imag), atol=1e-4)
    assert abs(complex(*kept.modes[0].partners[3]) - complex(0.01, 0.5)) < 0.03
    assert 0.65 < explained["2,2"] < 0.85 and max(v for k, v in explained.items() if k != "2,2") < 0.1
