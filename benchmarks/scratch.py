"""Scratch directories for a benchmark's files, removed when its process exits."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_directory(prefix: str) -> Path:
    """A new temporary directory named ``prefix...``, deleted with what it holds when the process exits."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory
