"""Atomic NetCDF files: written under a temporary name, renamed only on success."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import netCDF4

from emulator.files import atomic_path


@contextlib.contextmanager
def atomic_netcdf(path: str | Path) -> Iterator[netCDF4.Dataset]:
    """Yield a NetCDF4 dataset written at ``path + '.partial'``, renamed to ``path`` on success.

    On an exception the partial file is closed and stays readable under its temporary name.
    """
    with atomic_path(path) as temporary:
        dataset = netCDF4.Dataset(temporary, "w", format="NETCDF4")
        try:
            yield dataset
        finally:
            dataset.close()
