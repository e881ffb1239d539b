"""Ensemble members across ranks: which rank runs which members, and the assembly of their parts.

Launched with ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the
environment) or inside an initialized process group, each rank runs the members
``rank, rank + world, ...`` into a part file of its own; rank 0 then writes the
output from the parts, lead step by lead step, and removes them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from emulator.io.forecast_reader import FIELD_DIMS, forecast_channels, open_forecast
from emulator.io.layout import ForecastLayout
from emulator.io.output import forecast_output

LOG = logging.getLogger(__name__)


def member_ranks() -> tuple[int, int]:
    """``(rank, world size)``; joins the ``torchrun`` group (gloo) if the environment names one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def smallest_over_ranks(value: int, world: int) -> int:
    """The smallest of every rank's ``value``: one number all ranks agree on."""
    if world == 1:
        return value
    agreed = torch.tensor([value])
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
    return int(agreed)


def part_path(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.name}.rank{rank}.part")


def assemble_parts(parts: Sequence[Path], path: Path, layout: ForecastLayout) -> Path:
    """Write ``path`` from the ranks' part files (NetCDF), one lead step of one part at a time."""
    rows = {int(member): row for row, member in enumerate(layout.coordinates[0].values)}
    with forecast_output(path, layout) as writer:
        for part in parts:
            with open_forecast(part) as forecast:
                members = np.array([rows[int(m)] for m in forecast.member.values])
                channels = [c.transpose(*FIELD_DIMS).isel(init_time=0) for c in forecast_channels(forecast).values()]
                for lead in range(forecast.sizes["lead_time"]):
                    state = np.stack([c.isel(lead_time=lead).values for c in channels], axis=1)
                    writer.write(lead, state, members)
        writer.set_status(f"complete: {len(rows)} member(s) from {len(parts)} ranks")
    for part in parts:
        part.unlink()
    LOG.info("assembled %s from %d parts", path, len(parts))
    return path
