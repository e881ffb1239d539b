"""A drag on chosen modes of the rotational wind: Rayleigh friction by degree and order.

:class:`RotationalDrag` removes ``strength`` of the rotational wind (stream function)
at the chosen degrees and orders each step, toward rest: the whole wind, not its
departure from the normalizer's mean, so that a drag on the super-rotation (degree 1,
order 0) slows it rather than pulling it toward the mean wind's solid-body part. A
model whose climate holds a mode too strongly, as session 26's candidate checkpoint
holds the super-rotation (1.3-1.4 times the truth's energy in the stream function's
(1, 0) mode), is slowed there without touching the rest of the flow
(``benchmarks/RESULTS.md``, session 34: a drag of 0.03 a step on that mode takes it to
1.1 and the kinetic energy at degree 1 from 1.22 to 0.98 of the truth's).
"""

from __future__ import annotations

from emulator.data.normalizer import Normalizer
from emulator.grid import Grid
from emulator.winds import ROTATIONAL, BandedRelaxation, WindPartDamping


class RotationalDragConfig(BandedRelaxation):
    """Remove ``strength`` of the rotational wind each step at this band of degrees and orders and each of
    ``more_bands``."""


class RotationalDrag(WindPartDamping):
    """Slow the rotational part of every level's wind toward rest; an error if no level has both winds."""

    def __init__(self, config: RotationalDragConfig, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__(ROTATIONAL, config, normalizer, grid, "rotational_drag", from_rest=True)
