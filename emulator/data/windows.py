"""Training windows streamed from a store: ``k + 1`` consecutive normalized states.

A window starting at time index ``t`` holds the states at ``t, t+1, ..., t+k``
(prognostic channels) and the forcings at the same times, both normalized:
the model sees ``state[0]`` and ``forcing[0]`` and is scored on ``state[1:]``.
Windows never straddle a gap in the time axis nor leave the chosen period.
Each DataLoader worker opens the store itself, so no file handle or event loop
crosses a fork, and only the windows of the batches it prefetches are in memory:
the footprint does not grow with the store. :class:`EpochSampler` shuffles by
epoch and shards windows across distributed ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from emulator.data.normalizer import Normalizer
from emulator.data.regrid import RegridConfig
from emulator.data.source import ZarrSource
from emulator.data.statistics import time_step
from emulator.errors import EmulatorError


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
    """``(state (k+1, C_p, H, W), forcing (k+1, C_f, H, W))`` normalized float32 tensors.

    A window holding a NaN or an infinite value is refused with the store, channel
    and time, instead of being trained on.
    """

    def __init__(
        self,
        store: str,
        prognostic: list[str],
        forcing: list[str],
        normalizer: Normalizer,
        starts: np.ndarray,
        steps: int,
        regrid: RegridConfig | None = None,
    ) -> None:
        self.store, self.channels, self.regrid = store, prognostic + forcing, regrid
        self.normalizer = normalizer.subset(self.channels)
        self.prognostic_count = len(prognostic)
        self.starts, self.steps = starts, steps
        self._source: tuple[int, ZarrSource] | None = None

    def _open(self) -> ZarrSource:
        if self._source is None or self._source[0] != os.getpid():
            self._source = (os.getpid(), ZarrSource(self.store, self.channels, self.regrid))
        return self._source[1]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        source = self._open()
        times = np.arange(self.starts[item], self.starts[item] + self.steps + 1)
        window = torch.from_numpy(source.read(times))
        self.normalizer.normalize_(window)
        if not torch.isfinite(window.sum(dim=(2, 3))).all():  # a NaN or infinity anywhere makes its sum one
            t, c = torch.nonzero(~torch.isfinite(window).all(dim=3).all(dim=2))[0].tolist()
            raise EmulatorError(
                f"{self.store}: NaN or infinite values in {source.names[c]} at {source.times[times[t]]} "
                f"(window from {source.times[times[0]]})"
            )
        return window[:, : self.prognostic_count], window[:, self.prognostic_count :]


class EpochSampler(Sampler[int]):
    """Window indices for one rank: each epoch a fresh seeded shuffle, dealt out to the ranks.

    Epoch ``e`` permutes all windows with seed ``seed + e`` (the same on every rank)
    and rank ``r`` of ``R`` takes positions ``r, r + R, r + 2R, ...``: the ranks'
    shares are disjoint and together hold every window once, with no padding, so
    ranks differ by at most one window. Within a rank the DataLoader hands whole
    batches to its workers in turn, so no window is read twice in an epoch. The
    epoch advances each time the sampler is iterated (once per DataLoader epoch).
    Rank and world size default to the ``torch.distributed`` group when there is one.
    """

    def __init__(
        self, size: int, shuffle: bool, seed: int = 0, rank: int | None = None, world_size: int | None = None
    ) -> None:
        grouped = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if grouped else 0)
        self.world_size = world_size if world_size is not None else (dist.get_world_size() if grouped else 1)
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        self.epoch += 1
        return iter(order[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))
