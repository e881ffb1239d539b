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

from emulator.data.normalizer import Normalizer
from emulator.grid import Grid
from emulator.winds import DIVERGENT, BandedRelaxation, WindPartDamping


class DivergentWindConfig(BandedRelaxation):
    """Remove ``strength`` of the divergent wind each step at this band of degrees and at each of ``more_bands``."""


class DivergentWindDamping(WindPartDamping):
    """Damp the divergent part of every level's wind, in normalized units; an error if no level has both winds."""

    def __init__(self, config: DivergentWindConfig, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__(DIVERGENT, config, normalizer, grid, "divergent_wind", from_rest=False)
