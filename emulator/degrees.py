"""A band of spherical-harmonic degrees, as controls choose them in config."""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from emulator.schema import Strict


class DegreeBand(Strict):
    """Degrees ``min_degree`` to ``max_degree`` (none: every degree resolved)."""

    min_degree: int = Field(1, ge=0)
    max_degree: int | None = Field(None, ge=0, description="None: the grid's largest")

    @model_validator(mode="after")
    def _degrees_ordered(self) -> DegreeBand:
        if self.max_degree is not None and self.max_degree < self.min_degree:
            raise ValueError(f"max_degree {self.max_degree} is below min_degree {self.min_degree}")
        return self

    def truncation(self, lmax: int) -> int:
        """The degrees a transform needs for this band out of ``lmax`` (non-inclusive): up to ``max_degree``."""
        return lmax if self.max_degree is None else min(lmax, self.max_degree + 1)

    def mask(self, lmax: int) -> torch.Tensor:
        """``(lmax,)``: whether each degree below ``lmax`` is in the band."""
        degree = torch.arange(lmax)
        highest = self.max_degree if self.max_degree is not None else lmax
        return (degree >= self.min_degree) & (degree <= highest)
