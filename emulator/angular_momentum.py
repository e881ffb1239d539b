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

Held, the tilt keeps each member's starting value for ever, while the world's turns
about 20 degrees a step (a Rossby wave) and its amplitude varies from month to month
(0.13 to 0.35 of a held-out year's monthly means): its power in a rollout is that of
the members' starting states (0.56 of the truth's for the benchmark's four), and the
divergent (2, 1) coefficient, which the world locks to the tilt (``c = 0.56i x``,
90 % of its variance), runs free. A :class:`TiltModel` advances it instead: the
truth's one-step regression ``x_1 = a x_0`` predicts its next value with an rms error
of 0.10 where the network's step errs by 0.27, its departures from ``a x_0`` all but
uncorrelated with the truth's (0.07; session 26's candidate, training states). So the
tilt becomes ``a x_0`` plus a white innovation as large as the truth's departure, drawn
from each member's generator as the stochastic forcing is, and the divergent partner
follows it (``benchmarks/RESULTS.md``, session 34). Nor is the world's tilt a mode of its
own: the stream function's (3, 1) coefficient, the order-1 planetary wave, carries it (63 %
of that wave's variance is a multiple of the tilt over a held-out year), and half the
meridional wind's degree-1 power is their coherence. A tilt advanced apart from the
network's wave has its power and none of that coherence (v at degree 1 0.8 of the truth's),
so the model adds ``b y_1``, a multiple of the wave the step made: the truth's regression
``x_1 = a x_0 + b y_1`` errs by 0.082 where ``a x_0`` alone errs by 0.108, and
``emulator calibrate`` fits ``a``, ``b``, the innovation and the partner (session 37).

:class:`AxialRotation` measures the axial component as the equatorial speed ``U`` of
the solid-body rotation ``U cos(latitude)`` with the same relative angular momentum
(the zonal wind's projection on ``cos(latitude)``): the super-rotation. A few per cent
of it lost or gained in each step decides the super-rotation of a model's climate
(``benchmarks/RESULTS.md``, session 23), so ``benchmarks one_step_bias`` measures it
and ``train.loss.axial_rotation`` can price it.

Use it with ``divergent_wind`` at degrees 1 to 3: stage 9's tilt (``checkpoints/world_sfno.ckpt``)
partly cancels, in the meridional wind at degree 1, a cross-equatorial divergent
flow the world does not have (70 times the truth's power there), and holding the
tilt alone leaves that flow bare (the meridional wind's degree-1 power goes from
1.6 to 2.9 times the truth's). With both, it is 0.98 (``benchmarks/RESULTS.md``,
session 21).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import Field
from torch import nn

from emulator.data.normalizer import Normalizer
from emulator.grid import Grid
from emulator.quadrature import AreaMean
from emulator.schema import Strict
from emulator.winds import DIVERGENT, ROTATIONAL, every_level_winds, vector_transforms


class TiltModel(Strict):
    """The tilt's linear model: each step, its coefficient becomes ``rotation`` times its value before the step,
    plus ``wave_coupling`` times the stream function's (3, 1) coefficient after the step, plus a white
    ``innovation`` (the rms of a complex normal draw, m s-1); with ``divergent_partner``, the velocity
    potential's (2, 1) coefficient becomes that multiple of the new tilt. The default holds the tilt."""

    rotation: tuple[float, float] = Field(
        (1.0, 0.0), description="[real, imaginary] factor the tilt is multiplied by each step"
    )
    wave_coupling: tuple[float, float] | None = Field(
        None, description="[real, imaginary] factor of the stream function's (3, 1) coefficient added to the tilt"
    )
    innovation: float = Field(0.0, ge=0, description="rms of the tilt's white innovation each step, m s-1")
    divergent_partner: tuple[float, float] | None = Field(
        None, description="[real, imaginary] factor of the tilt that is the divergent (2, 1) coefficient; None: free"
    )


class EquatorialAngularMomentumFixer(nn.Module):
    """Set every wind level's rotational degree-1, order-1 part (and, when asked, its divergent (2, 1) partner)
    by a :class:`TiltModel` from its value before the step and, when coupled, the step's (3, 1) wave (normalized
    units)."""

    def __init__(self, normalizer: Normalizer, grid: Grid, model: TiltModel | None = None) -> None:
        """``model`` None: hold the tilt."""
        super().__init__()
        self.model = model = model or TiltModel()
        self.winds = every_level_winds(normalizer, "equatorial_angular_momentum")
        degrees = 4 if model.wave_coupling is not None else 2 if model.divergent_partner is None else 3
        self.vsht, self.ivsht = vector_transforms(grid, degrees)

    def innovations(self, generators: Sequence[torch.Generator]) -> torch.Tensor | None:
        """One step's innovation ``(member, level)`` (complex, m s-1), one member per generator; ``None`` if none."""
        if not self.model.innovation:
            return None
        draws = [torch.randn(2, self.winds.levels, generator=generator) for generator in generators]
        return self.model.innovation * torch.complex(*torch.stack(draws, dim=1)) / math.sqrt(2.0)

    def forward(
        self, state: torch.Tensor, previous: torch.Tensor, innovation: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``state`` after the step from ``previous``; ``innovation`` (:meth:`innovations`) None: the expected
        tilt alone."""
        model = self.model
        with torch.autocast(device_type=state.device.type, enabled=False):
            after = self.vsht(self.winds.read(state))
            tilt = complex(*model.rotation) * self.vsht(self.winds.read(previous))[..., ROTATIONAL, 1, 1]
            if model.wave_coupling is not None:
                tilt = tilt + complex(*model.wave_coupling) * after[..., ROTATIONAL, 3, 1]
            if innovation is not None:
                tilt = tilt + innovation.to(tilt)
            change = torch.zeros_like(after)
            change[..., ROTATIONAL, 1, 1] = tilt - after[..., ROTATIONAL, 1, 1]
            if model.divergent_partner is not None:
                partner = complex(*model.divergent_partner) * tilt
                change[..., DIVERGENT, 2, 1] = partner - after[..., DIVERGENT, 2, 1]
            return self.winds.add(state, self.ivsht(change))


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
