"""Streaming training windows from a Zarr store into normalized tensors, against plain ``zarr``.

The store: the reanalysis layout at 1.5 degrees (121 x 240, latitude ascending as
WeatherBench2 writes it), five variables on four pressure levels and four surface
variables (24 channels), one time per chunk, zstd-compressed (zarr's default).

Figures:
- ``fraction_of_raw``: windows per second through :class:`WindowDataset` and a
  DataLoader with two workers (read, orient, check, normalize, batch), over windows
  per second reading and decoding the same chunks with plain ``zarr`` in one
  process; epochs interleaved, median of repeats, workers persistent and warm.
- ``peak_rss_mb``: peak resident memory of a process streaming one epoch of the base
  store with its workers (sum over the process tree, sampled every 20 ms).
- ``rss_growth_10x``: the same peak with a store ten times longer over the base one.
- ``stats_seconds``, ``stats_peak_rss_mb``: :func:`compute_statistics` (mean, std,
  tendency std, non-finite count per time and channel) over the longer store, on the
  local threaded scheduler, in a fresh process.

Every process measured is killed, failing the benchmark, past ``MEMORY_LIMIT_MB``.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch
import xarray as xr
import zarr
from torch.utils.data import DataLoader

from benchmarks.timing import emit, interleaved_medians, note
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_statistics
from emulator.data.windows import EpochSampler, WindowDataset, window_starts

BENCH = "ingest_throughput"
LEVELS = [250, 500, 700, 850]
UPPER = ["geopotential", "temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity"]
SURFACE = ["2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind", "mean_sea_level_pressure"]
CHANNELS = [f"{name}@{level}" for name in UPPER for level in LEVELS] + SURFACE
NLAT, NLON = 121, 240
BLOCK = 8
WORKERS, BATCH = 2, 4
MEMORY_LIMIT_MB = 3072


def _block(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``BLOCK`` times of smooth fields plus noise: compresses about as well as real data."""
    latitude = np.deg2rad(np.linspace(-90, 90, NLAT))[:, None]
    longitude = np.deg2rad(np.arange(NLON) * 1.5)[None, :]
    base = np.cos(latitude) ** 2 + 0.3 * np.sin(3 * longitude) * np.cos(latitude)

    def fields(*shape: int) -> np.ndarray:
        noise = rng.normal(scale=0.05, size=(*shape, NLAT, NLON))
        return (base + noise).astype(np.float32)

    return {name: fields(BLOCK, len(LEVELS)) for name in UPPER} | {name: fields(BLOCK) for name in SURFACE}


def write_store(path: Path, times: int, seed: int = 0) -> Path:
    """A ``times``-long store written ``BLOCK`` times at a time (the block's values repeat)."""
    data = _block(np.random.default_rng(seed))
    stamps = pd.date_range("2000-01-01", periods=times, freq="6h")
    coords = {"level": LEVELS, "latitude": np.linspace(-90, 90, NLAT), "longitude": np.arange(NLON) * 1.5}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        for first in range(0, times, BLOCK):
            count = min(BLOCK, times - first)
            variables = {
                name: (
                    ("time", "level", "latitude", "longitude") if name in UPPER else ("time", "latitude", "longitude"),
                    values[:count],
                )
                for name, values in data.items()
            }
            block = xr.Dataset(variables, coords={"time": stamps[first : first + count], **coords})
            if first == 0:
                encoding = {name: {"chunks": (1, *block[name].shape[1:])} for name in data}
                block.to_zarr(path, mode="w", encoding=encoding, zarr_format=3, consolidated=True)
            else:
                block.to_zarr(path, append_dim="time", consolidated=True)
    return path


def _normalizer() -> Normalizer:
    count = len(CHANNELS)
    return Normalizer(tuple(CHANNELS), np.full(count, 0.5), np.full(count, 0.4), np.full(count, 0.07))


def _loader(store: Path) -> DataLoader:
    source = ZarrSource(str(store), CHANNELS)
    starts = window_starts(source, np.arange(len(source)), steps=1)
    dataset = WindowDataset(str(store), CHANNELS, [], _normalizer(), starts, steps=1)
    return DataLoader(
        dataset,
        batch_size=BATCH,
        sampler=EpochSampler(len(dataset), shuffle=True),
        num_workers=WORKERS,
        prefetch_factor=2,
        persistent_workers=True,
        multiprocessing_context="fork",
    )


def _stream(loader: DataLoader) -> int:
    windows = 0
    for state, _ in loader:
        windows += len(state)
    return windows


def _raw(store: Path, starts: np.ndarray) -> int:
    """Read and decode the chunks of every window with plain zarr, in the sampler's shuffled order."""
    group = zarr.open_group(str(store), mode="r")
    arrays = [group[name] for name in [*UPPER, *SURFACE]]
    for t in starts[torch.randperm(len(starts)).numpy()]:
        for array in arrays:
            np.asarray(array[t : t + 2], dtype=np.float32)
    return len(starts)


def _peak_rss_mb(target: Callable[..., object], *args: object, limit_mb: float = MEMORY_LIMIT_MB) -> float:
    """Peak resident memory (MB) of ``target(*args)`` run in a forked process, its children included.

    The process is killed, and the benchmark fails, if the peak passes ``limit_mb``.
    """
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    watched = psutil.Process(process.pid)
    peak = 0
    while process.is_alive():
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(member.memory_info().rss for member in tree))
        except psutil.NoSuchProcess:
            pass
        if peak > limit_mb * 2**20:
            process.kill()
            raise RuntimeError(f"{target.__name__} passed the memory limit of {limit_mb:.0f} MB")
        time.sleep(0.02)
    process.join()
    return peak / 2**20


def _one_epoch(store: Path) -> None:
    loader = _loader(store)
    _stream(loader)


def _statistics(store: Path) -> None:
    source = ZarrSource(str(store), CHANNELS)
    compute_statistics(source, np.arange(len(source)))


def run(quick: bool, device: torch.device) -> None:
    times, repeats = (8, 2) if quick else (200, 5)
    directory = Path(tempfile.mkdtemp(prefix="ingest_throughput_"))
    try:
        base = write_store(directory / "base.zarr", times)
        longer = write_store(directory / "longer.zarr", 10 * times)
        note(f"stores: {times} and {10 * times} times of {len(CHANNELS)} channels at {NLAT}x{NLON}")
        loader = _loader(base)
        starts = loader.dataset.starts
        seconds = interleaved_medians(
            {"raw": partial(_raw, base, starts), "ours": partial(_stream, loader)}, repeats, device
        )
        windows = len(starts)
        note(f"{windows} windows: {windows / seconds['ours']:.1f}/s ours, {windows / seconds['raw']:.1f}/s plain zarr")
        config = {"grid": [NLAT, NLON], "channels": len(CHANNELS), "times": times, "workers": WORKERS, "batch": BATCH}
        emit(BENCH, "fraction_of_raw", seconds["raw"] / seconds["ours"], config, device)
        del loader  # its workers exit before the memory is measured
        peak_base = _peak_rss_mb(_one_epoch, base)
        peak_longer = _peak_rss_mb(_one_epoch, longer)
        note(f"peak RSS streaming one epoch: {peak_base:.0f} MB ({times} times), {peak_longer:.0f} MB ({10 * times})")
        emit(BENCH, "peak_rss_mb", peak_base, config, device)
        emit(BENCH, "rss_growth_10x", peak_longer / peak_base, config, device)
        gigabytes = sum(f.stat().st_size for f in longer.rglob("*") if f.is_file()) / 1e9
        start = time.perf_counter()
        peak_statistics = _peak_rss_mb(_statistics, longer)
        elapsed = time.perf_counter() - start
        note(f"statistics over {10 * times} times ({gigabytes:.2f} GB): {elapsed:.1f} s, {peak_statistics:.0f} MB")
        statistics_config = {**config, "times": 10 * times, "gb_on_disk": round(gigabytes, 2)}
        emit(BENCH, "stats_seconds", elapsed, statistics_config, device)
        emit(BENCH, "stats_peak_rss_mb", peak_statistics, statistics_config, device)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
