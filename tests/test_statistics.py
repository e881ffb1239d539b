"""Out-of-core statistics equal a direct weighted computation; gaps are skipped."""

from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from distributed import LocalCluster

from emulator.cli import main
from emulator.data.forcings import SOLAR_CONSTANT
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_statistics
from emulator.data.windows import WindowDataset, window_starts
from emulator.errors import EmulatorError
from tests.conftest import CHANNELS, tiny_config_tree
from tests.test_source import NAVY_WINDS


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


def test_statistics_on_a_local_cluster_by_address_equal_the_local_ones(world_store: Path) -> None:
    source = ZarrSource(str(world_store), [*CHANNELS, "cos_zenith"])
    local = compute_statistics(source, np.arange(len(source)))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = compute_statistics(source, np.arange(len(source)), scheduler=cluster.scheduler_address)
    for name in ("mean", "std", "tendency_std"):
        np.testing.assert_allclose(getattr(remote, name), getattr(local, name), rtol=1e-10, atol=1e-12)
    with pytest.raises(EmulatorError, match=r"dask scheduler tcp://127\.0\.0\.1:9: cannot connect"):
        compute_statistics(source, np.arange(len(source)), scheduler="tcp://127.0.0.1:9")


@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract:RuntimeWarning")  # inf - inf in a tendency
def test_statistics_name_the_first_non_finite_value(world_store: Path, tmp_path: Path) -> None:
    dataset = xr.open_zarr(world_store).load()
    dataset["geopotential"][9, 0, 3, 3] = np.inf
    dataset.to_zarr(tmp_path / "inf.zarr", zarr_format=3)
    source = ZarrSource(str(tmp_path / "inf.zarr"), CHANNELS)
    with pytest.raises(
        EmulatorError,
        match=r"inf.zarr: 1 NaN or infinite value\(s\); first in geopotential@250 at "
        r"2000-01-03 06:00:00",
    ):
        compute_statistics(source, np.arange(len(source)))


def test_real_winds_statistics_match_a_direct_computation() -> None:
    source = ZarrSource(str(NAVY_WINDS), ["10m_u_component_of_wind", "10m_v_component_of_wind", "toa_insolation"])
    stats = compute_statistics(source, np.arange(len(source)))
    values = source.read(np.arange(len(source))).astype(np.float64)
    mean, std = direct_statistics(values, source.grid.area_weights)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(stats.std, std, rtol=1e-6)
    assert stats.mean[2] == pytest.approx(SOLAR_CONSTANT / 4, rel=0.02), "insolation averages S0/4 over a year"


def test_ingest_validates_reports_gaps_and_writes_statistics(
    world_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gapped_store(world_store, tmp_path)
    tree = tiny_config_tree(tmp_path / "gap.zarr", tmp_path)
    tree["data"]["forcing"] = ["toa_insolation", "sin_time_of_day"]
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml.safe_dump(tree))
    stats = tmp_path / "stats.nc"
    arguments = ["ingest", "--config", str(config), "--output", str(stats), "--climatology", str(tmp_path / "c.nc")]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "14 times every 0 days 06:00:00, model grid 32x64 equiangular, 5 channels" in out
    assert "gap: 2000-01-02 06:00:00 -> 2000-01-03 00:00:00 (windows across it are skipped)" in out
    assert Normalizer.load(stats).channels == (*CHANNELS, "toa_insolation", "sin_time_of_day")
    assert main([*arguments, "--set", "data.prognostic=[temperature@850]"]) == 1
    assert "variable 'temperature' not in store" in capsys.readouterr().err
