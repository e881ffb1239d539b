"""Writing blocks of lead steps in a thread of its own, so that a rollout's next steps overlap with the writing.

The chunk encoders and zarr's codecs release the GIL while they compress, so on a GPU the
model's next steps run while the last ones are written (on an H100 the writer
cost 62 % of a rollout of the world model when inline). At most ``depth`` blocks
wait in the queue, so memory does not grow with the lead time. The wrapped
writer is only ever used by one thread at a time: :meth:`BackgroundWriter.set_status`
and the end of :func:`in_background` first wait for every queued block.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import numpy as np

from emulator.io.blocks import BlockWriter, Members

Block = tuple[int, np.ndarray, Members]


class BackgroundWriter:
    """A :class:`BlockWriter` whose blocks are written by a thread; its first error is raised in the caller."""

    def __init__(self, writer: BlockWriter, depth: int = 2) -> None:
        self.writer = writer
        self.blocks: queue.Queue[Block | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="field-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (block := self.blocks.get()) is not None:
            try:
                if self.error is None:  # after a failure, later blocks are dropped
                    self.writer.write_block(*block)
            except BaseException as error:  # raised in the caller's thread
                self.error = error
            finally:
                self.blocks.task_done()
        self.blocks.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def write_block(self, first_lead: int, block: np.ndarray, members: Members) -> None:
        """Queue one block (waits while ``depth`` blocks are queued); ``block`` must not change afterwards."""
        self._raise()
        self.blocks.put((first_lead, block, members))

    def flush(self) -> None:
        """Wait until every queued block is written."""
        self.blocks.join()
        self._raise()

    def set_status(self, status: str) -> None:
        self.flush()
        self.writer.set_status(status)

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self.blocks.put(None)
        self.thread.join()


@contextlib.contextmanager
def in_background(writer: BlockWriter) -> Iterator[BackgroundWriter]:
    """``writer`` behind a thread; leaving the context waits for every block (and raises a write's error)."""
    background = BackgroundWriter(writer)
    try:
        yield background
        background.flush()
    finally:
        background.stop()
