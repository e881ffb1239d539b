"""Integrals over the sphere with the grid's quadrature, as torch modules."""

from __future__ import annotations

import torch
from torch import nn

from emulator.grid import Grid


class AreaMean(nn.Module):
    """``(..., lat, lon) -> (..., 1, 1)``: the area-weighted mean over the sphere."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        weights = torch.as_tensor(grid.area_weights, dtype=torch.float32)
        self.weights: torch.Tensor
        self.register_buffer("weights", (weights / weights.sum())[:, None] / grid.nlon, persistent=False)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        return (field * self.weights).sum(dim=(-2, -1), keepdim=True)
