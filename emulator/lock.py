"""An exclusive lock file held by one live process; a lock left by a dead one is taken over."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from emulator.errors import EmulatorError

LOG = logging.getLogger(__name__)


class LockedError(EmulatorError):
    """Another live process holds the lock."""

    exit_code = 3


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` (holding this process's pid) for the duration of the block."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / ".lock"
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            text = lock.read_text().strip()
            holder = int(text) if text.isdigit() else 0
            if _alive(holder):
                raise LockedError(f"{directory}: another run (pid {holder}) is working on it") from None
            LOG.warning("%s: removing the stale lock of pid %d", directory, holder)
            lock.unlink(missing_ok=True)
    else:
        raise LockedError(f"{directory}: could not take the lock")
    try:
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        yield
    finally:
        lock.unlink(missing_ok=True)
