"""Lead steps gathered into blocks, so that files are written in fewer, larger calls.

A rollout hands its states over one lead step at a time; :class:`StepBuffer`
keeps consecutive steps of the same members and passes them on as one block of
at most :data:`MAX_BLOCK_STEPS` steps and :data:`MAX_BLOCK_BYTES` bytes, so
memory does not grow with the lead time. The NetCDF writer resizes, writes the
lead times and flushes once per block, the Zarr writer makes one call per
variable and block: a world-model rollout's 40 zlib-compressed steps are written
to NetCDF in 27 ms in blocks of 8, in 47 ms a step at a time
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

import numpy as np

MAX_BLOCK_STEPS = 8
MAX_BLOCK_BYTES = 64 * 2**20

Members = np.ndarray | slice


class BlockWriter(Protocol):
    """Where blocks of consecutive lead steps of some members go."""

    def write_block(self, first_lead: int, block: np.ndarray, members: Members) -> None:
        """``block`` ``(member, lead, channel, lat, lon)`` in physical units, from lead index ``first_lead``."""
        ...

    def set_status(self, status: str) -> None: ...


def _same_members(first: Members, second: Members) -> bool:
    if isinstance(first, slice) or isinstance(second, slice):
        return first == second
    return np.array_equal(first, second)


class StepBuffer:
    """Lead steps of members, written to a :class:`BlockWriter` a block at a time.

    A step that does not continue the block (another lead, other members, another
    shape) first writes the block; so does :meth:`set_status`.
    """

    def __init__(self, writer: BlockWriter) -> None:
        self.writer = writer
        self.states: list[np.ndarray] = []
        self.first_lead = 0
        self.members: Members = slice(None)

    def _continues_block(self, lead_index: int, state: np.ndarray, members: Members) -> bool:
        return (
            lead_index == self.first_lead + len(self.states)
            and state.shape == self.states[0].shape
            and _same_members(members, self.members)
        )

    def write(self, lead_index: int, state: np.ndarray, members: Members = slice(None)) -> None:
        """One lead step ``(member, channel, lat, lon)`` of ``members``; ``state`` must not change afterwards."""
        if self.states and not self._continues_block(lead_index, state, members):
            self.flush()
        if not self.states:
            self.first_lead, self.members = lead_index, members
        self.states.append(state)
        steps = min(MAX_BLOCK_STEPS, MAX_BLOCK_BYTES // max(state.nbytes, 1))
        if len(self.states) >= steps:
            self.flush()

    def flush(self) -> None:
        """Write the steps held so far."""
        if self.states:
            block = np.stack(self.states, axis=1)
            self.states = []
            self.writer.write_block(self.first_lead, block, self.members)

    def set_status(self, status: str) -> None:
        self.flush()
        self.writer.set_status(status)


@contextlib.contextmanager
def in_blocks(writer: BlockWriter) -> Iterator[StepBuffer]:
    """``writer`` behind a :class:`StepBuffer`; the held steps are written when the context ends.

    When it ends with an error, the held steps are still written if they can be,
    so that a partial file keeps every step computed before the error; the
    original error is the one raised.
    """
    buffer = StepBuffer(writer)
    try:
        yield buffer
    except BaseException:
        with contextlib.suppress(Exception):
            buffer.flush()
        raise
    buffer.flush()
