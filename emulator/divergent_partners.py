"""The divergent wind of the planetary waves, set by the rotational waves it is locked to.

In the built-in world the divergent wind of a planetary wave is not a mode of its own: the
velocity potential's coefficient ``chi(l, m)`` is a fixed complex multiple of the stream
function's ``psi(l - 1, m)`` and ``psi(l + 1, m)`` at the same moment, to 70-94 % of its
power at degrees 1 to 3 and 50-81 % at degree 4 (orders 1 to 4, the training period; the
Coriolis force couples neighbouring degrees, and the factors are nearly imaginary: a
quarter wavelength apart in longitude). Session 26's candidate checkpoint carries 2.6 to
13 times the truth's power in ``chi(2, 2)``, ``chi(3, 1)``, ``chi(3, 2)`` and ``chi(3, 3)``,
out of step with its waves, so the zonal wind at degrees 2-3, to which ``chi(2, 2)`` and
``chi(3, 3)`` add in step with ``psi(3, 2)`` and ``psi(4, 3)`` in the truth, falls short
(``benchmarks/RESULTS.md``, session 39). :class:`DivergentPartners` moves each chosen
``chi(l, m)`` ``strength`` of the way to its partner sum each step, from the stream function
the step made. ``emulator calibrate`` fits the factors to the truth
(:class:`~emulator.training.calibration.PartnerMoments`), as it fits the tilt's divergent
partner (:mod:`emulator.angular_momentum`), of which this is the general case.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import nn

from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.schema import Strict
from emulator.winds import DIVERGENT, ROTATIONAL, every_level_winds, vector_transforms


class PartnerMode(Strict):
    """``chi(degree, order)`` as the sum over ``partners`` of ``factor * psi(partner degree, order)``."""

    degree: int = Field(ge=1)
    order: int = Field(ge=0)
    partners: dict[int, tuple[float, float]] = Field(
        description="stream-function degree -> [real, imaginary] factor (of coefficients in the same units)"
    )

    @model_validator(mode="after")
    def _coefficients_exist(self) -> PartnerMode:
        for degree in (self.degree, *self.partners):
            if not self.order <= degree:
                raise ValueError(f"order {self.order} is above degree {degree}: no such coefficient")
        return self

    def truncation(self) -> int:
        """The degrees a transform needs for this mode (non-inclusive)."""
        return max(self.degree, *self.partners) + 1


class DivergentPartnersConfig(Strict):
    """Move each of ``modes``' velocity-potential coefficients ``strength`` of the way to its partner sum each step."""

    strength: float = Field(1.0, gt=0, le=1, description="share of the way to the partner sum moved each step")
    modes: list[PartnerMode] = Field(min_length=1, description="the coefficients set, each with its partners")


class DivergentPartners(nn.Module):
    """Set the chosen divergent coefficients of every level's wind toward their rotational partners, in m s-1."""

    def __init__(self, config: DivergentPartnersConfig, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__()
        self.winds = every_level_winds(normalizer, "divergent_partners")
        lmax = max(mode.truncation() for mode in config.modes)
        if lmax > grid.max_degree:
            raise EmulatorError(
                f"stepper.divergent_partners: degree {lmax - 1} is beyond the grid's largest, {grid.max_degree - 1}"
            )
        self.vsht, self.ivsht = vector_transforms(grid, lmax)
        real, imaginary = torch.zeros(2, lmax, lmax, lmax)  # (chi degree, psi degree, order)
        chosen = torch.zeros(lmax, lmax)
        for mode in config.modes:
            chosen[mode.degree, mode.order] = config.strength
            for degree, factor in mode.partners.items():
                real[mode.degree, degree, mode.order], imaginary[mode.degree, degree, mode.order] = factor
        self.factors: torch.Tensor
        self.chosen: torch.Tensor
        self.register_buffer("factors", torch.complex(real, imaginary), persistent=False)
        self.register_buffer("chosen", chosen.to(torch.complex64), persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=state.device.type, enabled=False):
            coefficients = self.vsht(self.winds.read(state))
            partners = torch.einsum("lkm,...km->...lm", self.factors, coefficients[..., ROTATIONAL, :, :])
            change = torch.zeros_like(coefficients)
            change[..., DIVERGENT, :, :] = self.chosen * (partners - coefficients[..., DIVERGENT, :, :])
            return self.winds.add(state, self.ivsht(change))
