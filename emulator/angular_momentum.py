"""The wind's angular momentum: a fixer of its equatorial components, a measure of its axial one.

The rotational wind at degree 1 is a solid-body rotation: the stream function's order-0
coefficient is the rotation about the polar axis (the super-rotation, the axial
relative angular momentum), its order-1 coefficient a rotation about an axis in the
equatorial plane (the two equatorial components). The built-in world drives no such
tilt (its vorticity forcing is at degrees 8 to 12), so it stays small: 0.3 % of the
rotational wind's degree-1 power over a held-out year. An emulator's errors in it
accumulate with nothing to take them out: from held-out states the committed
checkpoint's error in that coefficient is 0.9 times the truth's amplitude after one
step and 5.6 times after ten days, and in long rollouts the tilt carries about 30
times the truth's energy (``benchmarks/RESULTS.md``, "The planetary modes").
:class:`EquatorialAngularMomentumFixer` resets it to its value before the step, as
:class:`emulator.stability.ConservationFixer` does with a global mean; everything
else, the axial rotation included, is left as the step made it.

:class:`AxialRotation` measures the axial component as the equatorial speed ``U`` of
the solid-body rotation ``U cos(latitude)`` with the same relative angular momentum
(the zonal wind's projection on ``cos(latitude)``): the super-rotation. A few per cent
of it lost or gained in each step decides the super-rotation of a model's climate
(``benchmarks/RESULTS.md``, session 23), so ``benchmarks one_step_bias`` measures it
and ``train.loss.axial_rotation`` can price it.

Use it with ``divergent_wind`` at degrees 1 to 3: the committed checkpoint's tilt
partly cancels, in the meridional wind at degree 1, a cross-equatorial divergent
flow the world does not have (70 times the truth's power there), and holding the
tilt alone leaves that flow bare (the meridional wind's degree-1 power goes from
1.6 to 2.9 times the truth's). With both, it is 0.98 (``benchmarks/RESULTS.md``,
session 21).
"""

from __future__ import annotations

import torch
from torch import nn

from emulator.data.normalizer import Normalizer
from emulator.grid import Grid
from emulator.quadrature import AreaMean
from emulator.winds import ROTATIONAL, every_level_winds, vector_transforms

DEGREES = 2  # the transforms resolve degrees 0 and 1: all the fixer touches


class EquatorialAngularMomentumFixer(nn.Module):
    """Hold every wind level's rotational degree-1, order-1 part at its value before the step (normalized units)."""

    def __init__(self, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__()
        self.winds = every_level_winds(normalizer, "equatorial_angular_momentum")
        self.vsht, self.ivsht = vector_transforms(grid, DEGREES)
        tilt = torch.zeros(2, DEGREES, DEGREES)
        tilt[ROTATIONAL, 1, 1] = 1.0
        self.tilt: torch.Tensor
        self.register_buffer("tilt", tilt, persistent=False)

    def forward(self, state: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=state.device.type, enabled=False):
            drift = self.vsht(self.winds.read(state) - self.winds.read(previous))
            change = -self.ivsht(drift * self.tilt)
        return self.winds.add(state, change)


class AxialRotation(nn.Module):
    """``(..., lat, lon)`` zonal wind -> ``(...)`` super-rotation ``U``, in the wind's units, float32."""

    def __init__(self, grid: Grid) -> None:
        super().__init__()
        self.area_mean = AreaMean(grid)
        latitude = torch.deg2rad(torch.as_tensor(grid.latitudes, dtype=torch.float32))
        profile = torch.cos(latitude)[:, None].expand(grid.nlat, grid.nlon)
        self.profile: torch.Tensor
        self.register_buffer("profile", profile / self.area_mean(profile.square()), persistent=False)

    def forward(self, zonal_wind: torch.Tensor) -> torch.Tensor:
        return self.area_mean(zonal_wind.float() * self.profile)[..., 0, 0]
