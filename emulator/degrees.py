"""A band of spherical-harmonic degrees, as controls choose them in config."""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from emulator.schema import Strict


class DegreeBand(Strict):
    """Degrees ``min_degree`` to ``max_degree`` (none: every degree resolved), orders ``min_order`` to ``max_order``."""

    min_degree: int = Field(1, ge=0)
    max_degree: int | None = Field(None, ge=0, description="None: the grid's largest")
    min_order: int = Field(0, ge=0, description="lowest zonal wavenumber (1: leave the zonal mean out)")
    max_order: int | None = Field(
        None, ge=0, description="highest zonal wavenumber (0: the zonally symmetric part alone); None: every order"
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> DegreeBand:
        if self.max_degree is not None and self.max_degree < self.min_degree:
            raise ValueError(f"max_degree {self.max_degree} is below min_degree {self.min_degree}")
        if self.max_order is not None and self.max_order < self.min_order:
            raise ValueError(f"max_order {self.max_order} is below min_order {self.min_order}")
        return self

    def truncation(self, lmax: int) -> int:
        """The degrees a transform needs for this band out of ``lmax`` (non-inclusive): up to ``max_degree``."""
        return lmax if self.max_degree is None else min(lmax, self.max_degree + 1)

    def mask(self, lmax: int) -> torch.Tensor:
        """``(lmax,)``: whether each degree below ``lmax`` is in the band."""
        degree = torch.arange(lmax)
        highest = self.max_degree if self.max_degree is not None else lmax
        return (degree >= self.min_degree) & (degree <= highest)

    def coefficient_mask(self, lmax: int) -> torch.Tensor:
        """``(lmax, lmax)``: whether each coefficient ``(degree, order)`` below ``lmax`` is in the band (``order <=
        degree``, as a coefficient needs)."""
        degree, order = torch.arange(lmax)[:, None], torch.arange(lmax)[None, :]
        highest = self.max_order if self.max_order is not None else lmax
        return self.mask(lmax)[:, None] & (order <= degree) & (order >= self.min_order) & (order <= highest)
