"""Out-of-core statistics equal a direct weighted computation; gaps are skipped."""

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_statistics
from emulator.data.windows import WindowDataset, window_starts
from emulator.errors import EmulatorError
from tests.conftest import CHANNELS


def direct_statistics(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = weights[None, None, :, None] * np.ones_like(values)
    mean = (values * w).sum(axis=(0, 2, 3)) / w.sum(axis=(0, 2, 3))
    var = (((values - mean[None, :, None, None]) ** 2) * w).sum(axis=(0, 2, 3)) / w.sum(axis=(0, 2, 3))
    return mean, np.sqrt(var)


def test_statistics_match_direct_weighted_moments(world_store: Path) -> None:
    source = ZarrSource(str(world_store), CHANNELS)
    stats = compute_statistics(source, np.arange(len(source)))
    values = source.read(np.arange(len(source))).astype(np.float64)
    mean, std = direct_statistics(values, source.grid.area_weights)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(stats.std, std, rtol=1e-5)
    _, tendency_std = direct_statistics(np.diff(values, axis=0), source.grid.area_weights)
    np.testing.assert_allclose(stats.tendency_std, tendency_std, rtol=1e-5)


def gapped_store(world_store: Path, tmp_path: Path) -> ZarrSource:
    ds = xr.open_zarr(world_store).load()
    keep = [i for i in range(ds.sizes["time"]) if i not in (6, 7)]
    ds.isel(time=keep).to_zarr(tmp_path / "gap.zarr", zarr_format=3)
    return ZarrSource(str(tmp_path / "gap.zarr"), CHANNELS)


def test_tendencies_and_windows_skip_gaps(world_store: Path, tmp_path: Path) -> None:
    source = gapped_store(world_store, tmp_path)
    values = source.read(np.arange(len(source))).astype(np.float64)
    differences = np.diff(values, axis=0)
    contiguous = np.delete(differences, 5, axis=0)  # the pair across the gap
    _, expected = direct_statistics(contiguous, source.grid.area_weights)
    np.testing.assert_allclose(compute_statistics(source, np.arange(len(source))).tendency_std, expected, rtol=1e-5)
    starts = window_starts(source, np.arange(len(source)), steps=2)
    assert 3 in starts and 4 not in starts and 5 not in starts and 6 in starts


def test_windows_hold_consecutive_normalized_states(world_store: Path) -> None:
    source = ZarrSource(str(world_store), CHANNELS)
    normalizer = compute_statistics(source, np.arange(len(source)))
    starts = window_starts(source, np.arange(len(source)), steps=3)
    assert starts.tolist() == list(range(len(source) - 3))
    dataset = WindowDataset(str(world_store), CHANNELS, [], normalizer, starts, steps=3)
    state, forcing = dataset[2]
    assert state.shape == (4, 3, 32, 64) and forcing.shape == (4, 0, 32, 64)
    expected = normalizer.normalize(torch.from_numpy(source.read([2, 3, 4, 5])))
    torch.testing.assert_close(state, expected)


def test_normalizer_round_trip_and_file(tmp_path: Path) -> None:
    normalizer = Normalizer(("a", "b"), np.array([1.0, -2.0]), np.array([2.0, 0.5]), np.array([0.1, 0.2]))
    x = torch.randn(3, 2, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(normalizer.denormalize(normalizer.normalize(x)), x)
    loaded = Normalizer.load(normalizer.save(tmp_path / "stats.nc"))
    np.testing.assert_array_equal(loaded.std, normalizer.std)
    assert loaded.channels == ("a", "b")
    with pytest.raises(EmulatorError, match="channel 'b' has standard deviation 0"):
        Normalizer(("a", "b"), np.zeros(2), np.array([1.0, 0.0]), np.ones(2))
