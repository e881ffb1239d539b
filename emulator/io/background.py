"""Writing lead steps in a thread of its own, so that a rollout's next steps overlap with the writing.

netCDF4 and zarr release the GIL while they compress and write, so on a GPU the
model's next steps run while the last ones are written (on an H100 the writer
cost 62 % of a rollout of the world model when inline). At most ``depth`` steps
wait in the queue, so memory does not grow with the lead time. The wrapped
writer is only ever used by one thread at a time: :meth:`BackgroundWriter.set_status`
and the end of :func:`in_background` first wait for every queued step.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Protocol

import numpy as np

Step = tuple[int, np.ndarray, np.ndarray | slice]


class FieldWriter(Protocol):
    """Where lead steps of members go."""

    def write(self, lead_index: int, state: np.ndarray, members: np.ndarray | slice = ...) -> None: ...

    def set_status(self, status: str) -> None: ...


class BackgroundWriter:
    """A :class:`FieldWriter` whose steps are written by a thread; its first error is raised in the caller."""

    def __init__(self, writer: FieldWriter, depth: int = 2) -> None:
        self.writer = writer
        self.steps: queue.Queue[Step | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="field-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (step := self.steps.get()) is not None:
            try:
                if self.error is None:  # after a failure, later steps are dropped
                    self.writer.write(*step)
            except BaseException as error:  # raised in the caller's thread
                self.error = error
            finally:
                self.steps.task_done()
        self.steps.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, lead_index: int, state: np.ndarray, members: np.ndarray | slice = slice(None)) -> None:
        """Queue one lead step (waits while ``depth`` steps are queued); ``state`` must not change afterwards."""
        self._raise()
        self.steps.put((lead_index, state, members))

    def flush(self) -> None:
        """Wait until every queued step is written."""
        self.steps.join()
        self._raise()

    def set_status(self, status: str) -> None:
        self.flush()
        self.writer.set_status(status)

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self.steps.put(None)
        self.thread.join()


@contextlib.contextmanager
def in_background(writer: FieldWriter) -> Iterator[BackgroundWriter]:
    """``writer`` behind a thread; leaving the block waits for every step (and raises a write's error)."""
    background = BackgroundWriter(writer)
    try:
        yield background
        background.flush()
    finally:
        background.stop()
