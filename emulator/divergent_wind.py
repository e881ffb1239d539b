"""Damping of the divergent wind, for worlds whose flow is close to non-divergent.

A wind is a rotational part (stream function ``psi``) plus a divergent part
(velocity potential ``chi``). The built-in world's divergent kinetic energy is under
1 % of its rotational at every band of degrees; rollouts of an emulator trained on
it can carry far more (17 to 48 % in each band, stage 9). :class:`DivergentWindDamping`
removes ``strength`` of the divergent wind at the chosen degrees each step, as the
divergence damping of a dynamical core does; the rotational wind and every other
channel are left as they are. ``more_bands`` damps further bands of degrees, each with
its own strength (session 28: the large scales need their divergent wind, degrees
16-31 do not). A band may hold only some orders (``min_order``, ``max_order``): at
order 0 alone it damps the zonal-mean meridional wind, the only divergent part of a
zonally symmetric flow, which a single shallow layer cannot keep (its zonal-mean mass
flux), while session 26's candidate checkpoint carries 20 times the truth's day-to-day
spread of it (``benchmarks/RESULTS.md``, session 33). It is differentiable: a model trained with it on learns to
carry its energy in the rotational wind.
"""

from __future__ import annotations

import torch
from torch import nn

from emulator.data.normalizer import Normalizer
from emulator.grid import Grid
from emulator.winds import DIVERGENT, BandedRelaxation, every_level_winds, vector_transforms


class DivergentWindConfig(BandedRelaxation):
    """Remove ``strength`` of the divergent wind each step at this band of degrees and at each of ``more_bands``."""


class DivergentWindDamping(nn.Module):
    """Damp the divergent part of every level's wind, in normalized units; an error if no level has both winds."""

    def __init__(self, config: DivergentWindConfig, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__()
        self.winds = every_level_winds(normalizer, "divergent_wind")
        lmax = config.band_truncation(grid.max_degree)
        self.vsht, self.ivsht = vector_transforms(grid, lmax)
        weight = torch.zeros(2, lmax, lmax)
        weight[DIVERGENT] = config.removed_share(lmax)
        self.weight: torch.Tensor
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=state.device.type, enabled=False):
            change = -self.ivsht(self.vsht(self.winds.read(state)) * self.weight)
        return self.winds.add(state, change)
