"""Forecast Zarr stores for large ensembles: the NetCDF layout, one chunk per member and lead step.

The store is written at ``path + '.partial'`` and renamed to ``path`` (replacing an
older store) only when every step is in and the metadata is consolidated.
"""

from __future__ import annotations

import contextlib
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import zarr

from emulator.io.blocks import Members
from emulator.io.layout import ForecastLayout


class ZarrForecastWriter:
    """Writes blocks ``(member, lead, channel, lat, lon)`` as lead steps into a Zarr v3 group."""

    def __init__(self, group: zarr.Group, layout: ForecastLayout) -> None:
        self.group, self.layout = group, layout
        for coordinate in layout.coordinates:
            group.create_array(
                coordinate.name,
                data=coordinate.values,
                dimension_names=[coordinate.name],
                attributes=dict(coordinate.attrs),
            )
        sizes = layout.dimension_sizes()
        for name, (dims, attrs) in layout.variables.items():
            shape = tuple(sizes[dim] for dim in dims)
            group.create_array(
                name,
                shape=shape,
                chunks=(1,) * (len(dims) - 2) + shape[-2:],
                dtype="f4",
                fill_value=np.nan,
                dimension_names=list(dims),
                attributes=dict(attrs),
            )
        group.attrs.update(layout.attrs)

    def write_block(self, first_lead: int, block: np.ndarray, members: Members) -> None:
        """Write lead steps ``(member, lead, channel, lat, lon)`` from ``first_lead`` of ``members`` (rows)."""
        leads = slice(first_lead, first_lead + block.shape[1])
        for target in self.layout.targets:
            array = self.group[target.variable]
            assert isinstance(array, zarr.Array)
            array.oindex[self.layout.region(members, leads, target)] = target.values(block)

    def set_status(self, status: str) -> None:
        self.group.attrs["rollout_status"] = status


@contextlib.contextmanager
def atomic_zarr(path: Path) -> Iterator[zarr.Group]:
    """Yield a Zarr group at ``path + '.partial'``; consolidate it and rename it to ``path`` on success."""
    temporary = path.with_name(path.name + ".partial")
    if temporary.exists():
        shutil.rmtree(temporary)
    path.parent.mkdir(parents=True, exist_ok=True)
    group = zarr.open_group(temporary, mode="w", zarr_format=3)
    yield group
    with warnings.catch_warnings():  # xarray reads consolidated v3 metadata, which zarr calls provisional
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part", category=UserWarning)
        zarr.consolidate_metadata(temporary)
    if path.exists():
        shutil.rmtree(path)
    temporary.rename(path)
