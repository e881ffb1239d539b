"""North-south mirror augmentation, for worlds whose climate is symmetric about the equator.

The built-in world is one: its shallow-water equations, its relaxation jets at
plus and minus 45 degrees, its drag and its (isotropic, random) vorticity forcing
are all unchanged by the reflection ``latitude -> -latitude`` that also flips the
sign of the meridional wind (and of vorticity), so the mirror image of a
trajectory is as likely as the trajectory. A model is not told so; training on the
mirror image of a random share of the windows shows it twice the data and the
symmetry. (What it did to the built-in world's long climate: benchmarks/RESULTS.md,
"Candidate: the mirror augmentation".)

Not for the Earth: land, orography and the seasons break the symmetry.
"""

from __future__ import annotations

import torch
from pydantic import Field

from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.perturbations import seeded_generator
from emulator.schema import Strict

MIRROR_STREAM = 3  # last entropy word of a training step's mirror generator


class MirrorConfig(Strict):
    """Which channels change sign in the mirror image, and how often a window is mirrored."""

    odd: list[str] = Field(description="channels whose sign flips (meridional wind, relative vorticity)")
    probability: float = Field(0.5, ge=0, le=1)


class Mirror:
    """Mirror the chosen windows of normalized ``(window, time, channel, lat, lon)`` batches.

    Every grid the models take (equiangular with poles, Legendre-Gauss, Lobatto) is
    symmetric about the equator, so the mirror image is the latitude axis reversed.
    """

    def __init__(self, config: MirrorConfig, normalizer: Normalizer, seed: int) -> None:
        channels = list(normalizer.channels)
        unknown = next((name for name in config.odd if name not in channels), None)
        if unknown is not None:
            raise EmulatorError(f"train.mirror.odd: {unknown!r} is not one of {', '.join(channels)}")
        self.config, self.normalizer, self.seed = config, normalizer, seed
        sign = [-1.0 if name in config.odd else 1.0 for name in channels]
        self.sign = torch.tensor(sign)[:, None, None]

    def chosen(self, windows: int, step: int) -> torch.Tensor:
        """Which windows of training step ``step`` are mirrored, from a generator seeded by the step."""
        generator = seeded_generator((self.seed, step, MIRROR_STREAM))
        return torch.rand(windows, generator=generator) < self.config.probability

    def reflect(self, fields: torch.Tensor) -> torch.Tensor:
        """The mirror image of normalized ``(..., channel, lat, lon)`` fields of every channel."""
        physical = self.normalizer.denormalize(fields)
        return self.normalizer.normalize(physical.flip(-2) * self.sign.to(fields.device, fields.dtype))

    def __call__(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(state, forcing)`` with the windows :meth:`chosen` for ``step`` mirrored."""
        state, forcing = batch
        chosen = self.chosen(len(state), step).to(state.device)
        if not bool(chosen.any()):
            return state, forcing
        prognostic = state.shape[2]
        both = torch.cat([state, forcing], dim=2)
        mirrored = torch.where(chosen[:, None, None, None, None], self.reflect(both), both)
        return mirrored[:, :, :prognostic], mirrored[:, :, prognostic:]
