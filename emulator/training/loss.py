"""Area-weighted losses on the sphere."""

from __future__ import annotations

import torch
from torch import nn

from emulator.grid import Grid


class AreaWeightedMSE(nn.Module):
    """``mean over batch, channel of sum_ij w_i (x - y)^2 / sum_ij w_i``, ``w`` the quadrature weights.

    With the grid's quadrature this is the mean squared error per unit area of the
    sphere, so polar rows of an equiangular grid do not count more than they cover.
    """

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        weights = torch.as_tensor(grid.area_weights, dtype=torch.float32)
        self.weights: torch.Tensor
        self.register_buffer("weights", (weights / weights.sum())[:, None] / grid.nlon, persistent=False)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        squared = (prediction - target).square() * self.weights
        return squared.sum(dim=(-2, -1)).mean()
