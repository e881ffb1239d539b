"""Write the built-in world as a Zarr store in the WeatherBench2 reanalysis layout.

The record goes to the store's root group (``time, level, latitude, longitude``,
latitude ascending as WeatherBench2 publishes ERA5); the spin-up, daily, to the
``spinup`` group, so that it is kept but never mistaken for the record. The store
is written under a temporary name and renamed on success, by a process whose
arithmetic is the same on every x86-64 CPU (:mod:`emulator.world.portable`).
"""

from __future__ import annotations

import itertools
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm import tqdm

from emulator import __version__
from emulator.config import WorldConfig
from emulator.errors import EmulatorError
from emulator.world.portable import portable_worker
from emulator.world.shallow_water import ForcedShallowWater

LEVEL_HPA = 250
BLOCK_SAMPLES = 120
VARIABLE_ATTRS = {
    "geopotential": {
        "units": "m**2 s**-2",
        "long_name": "Geopotential",
        "standard_name": "geopotential",
    },
    "u_component_of_wind": {
        "units": "m s**-1",
        "long_name": "U component of wind",
        "standard_name": "eastward_wind",
    },
    "v_component_of_wind": {
        "units": "m s**-1",
        "long_name": "V component of wind",
        "standard_name": "northward_wind",
    },
}


def _fields_dataset(world: ForcedShallowWater, time: pd.Timestamp) -> xr.Dataset:
    """The world's current state as one time of the store (latitude ascending)."""
    latitude = world.latitudes_deg.numpy()[::-1]
    longitude = np.arange(world.physics.nlon) * 360.0 / world.physics.nlon
    data = {
        name: (
            ("time", "level", "latitude", "longitude"),
            field.numpy()[None, None, ::-1].astype(np.float32),
            VARIABLE_ATTRS[name],
        )
        for name, field in world.grid_fields().items()
    }
    dataset = xr.Dataset(
        data, coords={"time": [time], "level": [LEVEL_HPA], "latitude": latitude, "longitude": longitude}
    )
    dataset.latitude.attrs.update(units="degrees_north", long_name="latitude", standard_name="latitude")
    dataset.longitude.attrs.update(units="degrees_east", long_name="longitude", standard_name="longitude")
    dataset.level.attrs.update(units="hPa", long_name="pressure level", positive="down")
    return dataset


def _simulate(
    world: ForcedShallowWater, times: pd.DatetimeIndex, steps_between: int, label: str
) -> Iterator[xr.Dataset]:
    """Advance ``steps_between`` solver steps before each time and yield the state there."""
    for time in tqdm(times, desc=label, unit="sample"):
        world.step(steps_between)
        yield _fields_dataset(world, time)


def _write(samples: Iterator[xr.Dataset], path: Path, group: str | None, attrs: dict[str, str]) -> None:
    """Append samples to ``path`` in blocks, one time per chunk, with consolidated metadata.

    Consolidation (as in WeatherBench2's stores) makes opening fast; zarr 3 warns on
    every write that it is not yet in the v3 specification, which is known and silenced.
    """
    first = True
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part", category=UserWarning)
        while block := list(itertools.islice(samples, BLOCK_SAMPLES)):
            dataset = xr.concat(block, dim="time")
            if first:
                dataset.attrs.update(attrs)
                encoding = {name: {"chunks": (1, *dataset[name].shape[1:])} for name in dataset.data_vars}
                dataset.to_zarr(path, group=group, mode="w", encoding=encoding, zarr_format=3, consolidated=True)
                first = False
            else:
                dataset.to_zarr(path, group=group, append_dim="time", consolidated=True)


def write_world_store(config: WorldConfig, path: str | Path, overwrite: bool = False) -> Path:
    """Simulate the built-in world and write it to ``path`` (Zarr v3); return the path.

    The spin-up (daily samples, the last one interval before ``config.start``) goes to
    the ``spinup`` group, the record (every ``output_interval_hours`` from
    ``config.start``) to the root group. The world is simulated in a
    :func:`~emulator.world.portable.portable_worker`, so that a config gives the same
    store on every x86-64 CPU.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise EmulatorError(f"{path}: store exists already (pass --overwrite to replace it)")
    with portable_worker() as worker:
        worker.submit(_simulate_store, config, path).result()
    return path


def _simulate_store(config: WorldConfig, path: Path) -> None:
    """:func:`write_world_store`'s work, in its worker: written under a temporary name, renamed on success."""
    temporary = path.with_name(path.name + ".partial")
    shutil.rmtree(temporary, ignore_errors=True)
    world = ForcedShallowWater(config.physics, seed=config.seed)
    interval = pd.Timedelta(hours=config.output_interval_hours)
    start = pd.Timestamp(config.start)
    spinup_days = config.spinup_days
    last_spinup = start - interval
    spinup_times = pd.date_range(end=last_spinup, periods=spinup_days, freq="1D")
    record_times = pd.date_range(
        start, periods=round(config.record_days * pd.Timedelta(days=1) / interval), freq=interval
    )
    attrs = {
        "title": "Built-in world: forced rotating shallow water on the sphere",
        "source": f"emulator {__version__}: torch-harmonics ShallowWaterSolver, stochastic vorticity forcing",
        "Conventions": "CF-1.8",
        "world_config": config.model_dump_json(),
    }
    steps_per_day = round(86_400 / config.physics.dt_seconds)
    spinup = list(_simulate(world, spinup_times, steps_per_day, "spin-up"))
    record_steps = round(interval.total_seconds() / config.physics.dt_seconds)
    _write(_simulate(world, record_times, record_steps, "record"), temporary, None, attrs)
    if spinup:
        _write(iter(spinup), temporary, "spinup", {**attrs, "title": attrs["title"] + " (spin-up)"})
    if path.exists():
        shutil.rmtree(path)
    temporary.rename(path)
