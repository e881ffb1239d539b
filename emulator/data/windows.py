"""Training windows streamed from a store: ``k + 1`` consecutive normalized states.

A window starting at time index ``t`` holds the states at ``t, t+1, ..., t+k``
(prognostic channels) and the forcings at the same times, both normalized:
the model sees ``state[0]`` and ``forcing[0]`` and is scored on ``state[1:]``.
Windows never straddle a gap in the time axis nor leave the chosen period.
Each DataLoader worker opens the store itself, so no file handle or event loop
crosses a fork, and only one window is in memory per worker at a time.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.data.statistics import time_step


def window_starts(source: ZarrSource, indices: np.ndarray, steps: int) -> np.ndarray:
    """Start indices ``t`` such that ``t..t+steps`` are all in ``indices`` and evenly spaced."""
    step = time_step(source.times).to_timedelta64()
    allowed = np.zeros(len(source.times) + steps + 1, dtype=bool)
    allowed[indices] = True
    spacing_ok = np.zeros(len(source.times), dtype=bool)
    spacing_ok[:-1] = np.diff(source.times.values) == step
    starts = []
    for t in indices:
        span = slice(t, t + steps)
        if allowed[t : t + steps + 1].all() and spacing_ok[span].all():
            starts.append(t)
    return np.asarray(starts, dtype=np.int64)


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``(state (k+1, C_p, H, W), forcing (k+1, C_f, H, W))`` normalized float32 tensors."""

    def __init__(
        self,
        store: str,
        prognostic: list[str],
        forcing: list[str],
        normalizer: Normalizer,
        starts: np.ndarray,
        steps: int,
    ) -> None:
        self.store, self.prognostic, self.forcing = store, prognostic, forcing
        self.prognostic_normalizer = normalizer.subset(prognostic)
        self.forcing_normalizer = normalizer.subset(forcing) if forcing else None
        self.starts, self.steps = starts, steps
        self._sources: tuple[int, ZarrSource, ZarrSource | None] | None = None

    def _open(self) -> tuple[ZarrSource, ZarrSource | None]:
        if self._sources is None or self._sources[0] != os.getpid():
            forcing = ZarrSource(self.store, self.forcing) if self.forcing else None
            self._sources = (os.getpid(), ZarrSource(self.store, self.prognostic), forcing)
        return self._sources[1], self._sources[2]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        prognostic, forcing = self._open()
        times = np.arange(self.starts[item], self.starts[item] + self.steps + 1)
        state = self.prognostic_normalizer.normalize(torch.from_numpy(prognostic.read(times)))
        if forcing is None or self.forcing_normalizer is None:
            return state, state.new_zeros(len(times), 0, *state.shape[-2:])
        return state, self.forcing_normalizer.normalize(torch.from_numpy(forcing.read(times)))
