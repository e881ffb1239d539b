"""Atomic file writes: a temporary name beside the target, renamed only on success."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield ``path + '.partial'`` to write to; rename it to ``path`` when the block succeeds.

    On an exception the partial file is left under its temporary name, so nothing
    that looks complete is ever half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    yield temporary
    temporary.replace(path)
