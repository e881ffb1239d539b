"""On a CPU in eval mode a model, and the stepper's controls, run the samples of a batch one by one.

There BLAS and FFT kernels are chosen by shape, so batched, a forecast member's
last bits would depend on how many members share its batch (the controls' spherical
transforms by one bit in 10^7); alone, they are those of a forecast of one, and any
member can be re-run by itself exactly. It is also
the faster way there: 64 members of the world model's SFNO cost 62 times one
member, against 103 batched (fresh large tensors cost page faults;
benchmarks/RESULTS.md). On a GPU the loop would launch every kernel once per sample
(64 members: 36 times one member's time on an H100, against 1.5 batched), so there
the batch runs whole, and ensembles pad their batches to one size
(:func:`emulator.ensemble.pads_batches`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Concatenate, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)
Forward = Callable[Concatenate[M, torch.Tensor, ...], torch.Tensor]


def sample_by_sample_on_cpu(forward: Forward[M]) -> Forward[M]:
    """Wrap a module's ``forward(x, *more)``, ``x`` ``(batch, ...)``, to run each sample alone on a CPU in eval
    mode; each of ``more`` is a tensor with the same batch, split with it, or None."""

    @functools.wraps(forward)
    def each_sample(self: M, x: torch.Tensor, *more: torch.Tensor | None) -> torch.Tensor:
        if not self.training and x.device.type == "cpu" and len(x) > 1:
            rows = zip(x.split(1), *(itertools.repeat(m) if m is None else m.split(1) for m in more), strict=False)
            return torch.cat([forward(self, *row) for row in rows])
        return forward(self, x, *more)

    return each_sample
