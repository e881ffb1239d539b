"""Streaming windows: every window once per epoch across ranks and workers, reshuffled each epoch."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import xarray as xr
from torch.utils.data import DataLoader

from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_statistics
from emulator.data.windows import EpochSampler, WindowDataset, window_starts
from emulator.errors import EmulatorError
from tests.conftest import CHANNELS

STEPS = 2


def dataset_for(store: Path) -> WindowDataset:
    source = ZarrSource(str(store), CHANNELS)
    normalizer = compute_statistics(source, np.arange(len(source)))
    starts = window_starts(source, np.arange(len(source)), STEPS)
    return WindowDataset(str(store), CHANNELS[:2], CHANNELS[2:], normalizer, starts, STEPS)


def window_time(state: torch.Tensor, fingerprints: torch.Tensor) -> int:
    """Which window a state is, by its first value (unique per time in the world)."""
    return int(torch.argmin((fingerprints - state[0, 0, 5, 7]).abs()))


def epoch_on_rank(rank: int, world_size: int, store: str, port: int, queue: mp.Queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    dataset = dataset_for(Path(store))
    fingerprints = torch.stack([dataset[i][0][0, 0, 5, 7] for i in range(len(dataset))])
    sampler = EpochSampler(len(dataset), shuffle=True, seed=7)
    # a spawned process would spawn its workers too (a fresh interpreter each, every epoch): fork them, as torchrun's do
    loader = DataLoader(
        dataset, batch_size=2, sampler=sampler, num_workers=2, prefetch_factor=2, multiprocessing_context="fork"
    )
    epochs = [[window_time(state, fingerprints) for batch, _ in loader for state in batch] for _ in range(2)]
    gathered: list[list[list[int]]] = [[] for _ in range(world_size)]
    dist.all_gather_object(gathered, epochs)
    if rank == 0:
        queue.put(gathered)
    dist.destroy_process_group()


def test_two_ranks_with_two_workers_each_read_every_window_once_per_epoch(world_store: Path) -> None:
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = 29500 + os.getpid() % 1000
    mp.start_processes(epoch_on_rank, args=(2, str(world_store), port, queue), nprocs=2, start_method="spawn")
    gathered = queue.get(timeout=60)
    windows = len(dataset_for(world_store))
    for epoch in range(2):
        shares = [gathered[rank][epoch] for rank in range(2)]
        assert sorted(shares[0] + shares[1]) == list(range(windows)), "every window once, none twice"
        assert abs(len(shares[0]) - len(shares[1])) <= 1
    assert gathered[0][0] != gathered[0][1], "a new shuffle each epoch"


def test_sampler_is_reproducible_and_unshuffled_when_asked() -> None:
    first, second = EpochSampler(10, True, seed=3), EpochSampler(10, True, seed=3)
    assert list(first) == list(second) and list(first) == list(second)
    assert list(EpochSampler(10, False, rank=1, world_size=3)) == [1, 4, 7]
    assert len(EpochSampler(10, False, rank=2, world_size=3)) == 3


def test_window_with_nan_names_channel_and_time(world_store: Path, tmp_path: Path) -> None:
    dataset = xr.open_zarr(world_store).load()
    dataset["v_component_of_wind"][6, 0, 10, 10] = np.nan
    dataset.to_zarr(tmp_path / "nan.zarr", zarr_format=3)
    windows = dataset_for(world_store)
    windows.store = str(tmp_path / "nan.zarr")
    windows[2]
    with pytest.raises(
        EmulatorError,
        match=r"nan.zarr: NaN or infinite values in v_component_of_wind@250 at "
        r"2000-01-02 12:00:00 \(window from 2000-01-02 00:00:00\)",
    ):
        windows[4]
