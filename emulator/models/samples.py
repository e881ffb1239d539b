"""On a CPU in eval mode a model runs the samples of a batch one by one.

There BLAS and FFT kernels are chosen by shape, so batched, a forecast member's
last bits would depend on how many members share its batch; alone, they are those
of a forecast of one, and any member can be re-run by itself exactly. It is also
the faster way there: 64 members of the world model's SFNO cost 62 times one
member, against 103 batched (fresh large tensors cost page faults;
benchmarks/RESULTS.md). On a GPU the loop would launch every kernel once per sample
(64 members: 36 times one member's time on an H100, against 1.5 batched), so there
the batch runs whole, and ensembles pad their batches to one size
(:func:`emulator.ensemble.pads_batches`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def sample_by_sample_on_cpu(
    forward: Callable[[M, torch.Tensor], torch.Tensor],
) -> Callable[[M, torch.Tensor], torch.Tensor]:
    """Wrap a model's ``forward(x)``, ``x`` ``(batch, ...)``, to run each sample alone on a CPU in eval mode."""

    @functools.wraps(forward)
    def each_sample(self: M, x: torch.Tensor) -> torch.Tensor:
        if not self.training and x.device.type == "cpu" and len(x) > 1:
            return torch.cat([forward(self, sample) for sample in x.split(1)])
        return forward(self, x)

    return each_sample
