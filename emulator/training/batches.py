"""Batches of training windows from a store, in an order fixed by the seed and the epoch.

The order of an epoch is a permutation drawn from a generator seeded by
``(seed, stage, epoch)``, so a resumed run sees exactly the batches an
uninterrupted run would have seen, starting after the ones it had done.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from emulator.data.normalizer import Normalizer
from emulator.data.regrid import RegridConfig
from emulator.data.source import ZarrSource
from emulator.data.windows import EpochSampler, WindowDataset, window_starts
from emulator.errors import EmulatorError

Batch = tuple[torch.Tensor, torch.Tensor]


def epoch_key(seed: int, stage: int, epoch: int) -> int:
    """The generator seed of one epoch's order."""
    return (seed * 1_000 + stage) * 100_000 + epoch


class StoreBatches:
    """``(state (B, k+1, C, H, W), forcing (B, k+1, F, H, W))`` batches of ``k``-step windows.

    Under ``torch.distributed`` each rank takes its share of every epoch's order
    (:class:`~emulator.data.windows.EpochSampler`): together the ranks see each window once.
    """

    def __init__(
        self,
        source: ZarrSource,
        prognostic: list[str],
        forcing: list[str],
        normalizer: Normalizer,
        period: tuple[str, str] | None,
        steps: int,
        batch_size: int,
        num_workers: int,
        shuffle: bool,
        regrid: RegridConfig | None = None,
    ) -> None:
        starts = window_starts(source, source.period_indices(period), steps)
        if len(starts) == 0:
            raise EmulatorError(f"{source.store}: no {steps}-step window fits in period {period}")
        self.dataset = WindowDataset(source.store, prognostic, forcing, normalizer, starts, steps, regrid)
        self.batch_size, self.num_workers, self.shuffle = batch_size, num_workers, shuffle

    def __len__(self) -> int:
        return math.ceil(len(EpochSampler(len(self.dataset), self.shuffle)) / self.batch_size)

    def epoch(self, key: int, skip: int = 0) -> Iterator[Batch]:
        """The batches of the epoch with generator seed ``key``, leaving out the first ``skip``."""
        order = list(EpochSampler(len(self.dataset), self.shuffle, seed=key))[skip * self.batch_size :]
        loader = DataLoader(self.dataset, batch_size=self.batch_size, sampler=order, num_workers=self.num_workers)
        yield from loader
