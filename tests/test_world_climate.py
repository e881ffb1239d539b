"""The truth climate of the scorecard: independent years of the world, batched, cached, and its noise floor."""

from pathlib import Path

import pytest
import torch
import xarray as xr

from benchmarks.world_climate import (
    Climate,
    Diagnostics,
    ZonalPower,
    bands_within,
    world_climate,
    zonal_band_power,
    zonal_offset,
    zonal_persistence,
    zonal_spread,
)
from emulator.config import WorldConfig
from emulator.grid import Grid

CHANNELS = ["geopotential@250", "u_component_of_wind@250", "v_component_of_wind@250"]
WORLD = WorldConfig(spinup_days=1)  # the default 64x128 world: every band of the scorecard is resolved


def test_members_are_independent_years_and_the_cache_is_reused_only_for_its_recipe(tmp_path: Path) -> None:
    diagnostics = Diagnostics(Grid(WORLD.physics.nlat, WORLD.physics.nlon), CHANNELS)
    cache = tmp_path / "climate.nc"
    climate = world_climate(WORLD, diagnostics, 2, cache, days=2)
    assert climate.energy.shape == (2, 2) and climate.bands.shape == (2, 2, 4, 5)
    assert climate.zonal.shape == (2, 2, 3, WORLD.physics.nlat) and abs(float(climate.weights.sum()) - 1) < 1e-12
    assert torch.isfinite(climate.bands).all() and (climate.bands > 0).all()
    assert not torch.allclose(climate.bands[0], climate.bands[1], rtol=1e-3), "members follow their own seeds"
    stored = xr.open_dataset(cache)
    assert list(stored.quantity.values) == [*CHANNELS, "kinetic_energy@250"] and stored.band_power.dims[-1] == "band"
    stored.close()
    cached = world_climate(WORLD, diagnostics, 2, cache, days=2)
    assert torch.equal(cached.energy, climate.energy) and torch.equal(cached.bands, climate.bands)
    torch.testing.assert_close(cached.zonal, climate.zonal)
    with xr.open_dataset(cache) as stored:
        older = stored.drop_vars("zonal_mean").load()  # a cache written before zonal means were kept
    older.to_netcdf(cache)
    rebuilt = world_climate(WORLD, diagnostics, 2, cache, days=2)
    torch.testing.assert_close(rebuilt.zonal, climate.zonal)
    with xr.open_dataset(cache) as stored:
        assert "zonal_mean" in stored, "the cache was written again, with them"
    more = world_climate(WORLD, diagnostics, 3, cache, days=2)
    assert more.years == 3
    torch.testing.assert_close(more.bands[:2], climate.bands, rtol=1e-3, atol=0)


def climate_of(energy: torch.Tensor, bands: torch.Tensor) -> Climate:
    """A climate of two latitudes whose zonal means are zero."""
    return Climate(energy, bands, torch.zeros(*energy.shape, 3, 2), torch.full((2,), 0.5))


def test_floor_is_the_median_error_of_a_window_against_the_other_years() -> None:
    energy = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None].expand(4, 3)
    bands = energy[:, :, None, None].expand(4, 3, 4, 5).clone()
    bands[3, :, 2, 4] *= 3.0  # one band of the last year three times as strong
    climate = climate_of(energy, bands)
    assert climate.mean()[0] == 2.5
    floor = climate.floor(2)
    # windows {1, 2} against {3, 4} and the reverse: |1.5/3.5 - 1| and |3.5/1.5 - 1|
    assert abs(floor.energy - (4 / 7 + 4 / 3) / 2) < 1e-6
    # the tripled band: {1, 2} against {3, 12}: |1.5/7.5 - 1|; {3, 12} against {1, 2}: |7.5/1.5 - 1|
    assert abs(floor.spectrum_error - (0.8 + 4.0) / 2) < 1e-6
    assert floor.bands_within == 0.0 and floor.every_band_share == 0.0
    assert climate.floor(1).energy > 0.0


def test_floor_counts_the_bands_a_perfect_model_gets_within_the_tolerance() -> None:
    bands = torch.ones(4, 3, 4, 5)
    bands[3, :, 0, 0] = 1.2  # one band of the last year 20 % strong: 6.7 % above the other years' mean
    bands[2, :, 1, 1] = 2.0  # and another of the third year twice as strong
    floor = climate_of(torch.ones(4, 3), bands).floor(1)
    # year by year: 19 (1.0 / (4/3) in the doubled band), 19, 19 (2.0 / 1.0), 18 (1.2 / 1.0 and 1.0 / (4/3))
    assert floor.bands_within == 19.0 and floor.every_band_share == 0.0
    bands[2, :, 1, 1] = 1.05  # now only the last year misses a band: 20, 20, 20, 19
    floor = climate_of(torch.ones(4, 3), bands).floor(1)
    assert floor.bands_within == 20.0 and floor.every_band_share == 0.75
    assert floor.energy == 0.0 and abs(floor.spectrum_error - (1 - 1 / (3.2 / 3))) < 1e-6  # 1.0 / (3.2 / 3)


def test_bands_within_the_tolerance_are_counted_on_both_sides_of_the_truth() -> None:
    truth = torch.full((2, 3), 2.0)
    bands = torch.tensor([[2.0, 2.18, 1.82], [2.22, 1.0, 4.0]])
    assert bands_within(bands, truth) == 3
    assert bands_within(bands, truth, tolerance=0.5) == 5


def test_zonal_offset_and_spread_are_area_weighted_and_the_floor_takes_the_median_window() -> None:
    weights = torch.tensor([0.25, 0.75])
    days = torch.tensor([[1.0, 2.0], [3.0, 2.0]])[:, None].expand(2, 3, 2)  # two days, three channels alike
    reference = torch.tensor([[0.0, 0.0], [0.0, 4.0]])[:, None].expand(2, 3, 2)
    # means (2, 2) against (0, 2): offset sqrt(0.25 * 4); variances (1, 0) against (0, 4): sqrt(0.25 / 3)
    torch.testing.assert_close(zonal_offset(days, reference, weights), torch.full((3,), 1.0))
    torch.testing.assert_close(zonal_spread(days, reference, weights), torch.full((3,), (0.25 / 3) ** 0.5))
    zonal = torch.zeros(4, 2, 3, 2)
    zonal[:, :, 1, 0] = torch.tensor([1.0, 2.0, 3.0, 10.0])[:, None]  # u at the first latitude, year by year
    climate = Climate(torch.ones(4, 2), torch.ones(4, 2, 4, 5), zonal, weights)
    # year 1 against years 2-4: |1 - 5| * 0.5; year 2: |2 - 14/3|; year 3: |3 - 13/3|; year 4: |10 - 2|
    offsets = sorted(abs(year - (16 - year) / 3) * 0.5 for year in (1.0, 2.0, 3.0, 10.0))
    median = (offsets[1] + offsets[2]) / 2
    torch.testing.assert_close(climate.floor(1).zonal_offset, torch.tensor([0.0, median, 0.0]))


def test_zonal_persistence_is_the_lag_autocorrelation_of_each_members_departures() -> None:
    daily = torch.tensor([1.0, -1.0] * 4) + 5.0  # departures flipping every day: lag one -1, lag two 1
    paired = torch.tensor([2.0, 2.0, -2.0, -2.0] * 2)  # flipping every other day: lag one 4 / 7 of 4, lag two -4
    days = torch.stack([daily, paired], dim=1)[:, :, None, None].expand(8, 2, 3, 2)
    # pooled over the members: covariances (-1 + 4/7) / 2 and (1 - 4) / 2 over the variance (1 + 4) / 2
    for lag, value in ((1, -3 / 35), (2, -3 / 5)):
        torch.testing.assert_close(zonal_persistence(days, lag, torch.tensor([0.5, 0.5])), torch.full((3,), value))


def test_the_floor_of_the_spread_and_persistence_is_the_median_windows_distance_from_the_other_years() -> None:
    flipping = torch.tensor([1.0, -1.0] * 4)  # eight days: variance 1, lag-one autocorrelation -1
    paired = torch.tensor([2.0, 2.0, -2.0, -2.0] * 2)  # variance 4, lag-one covariance 4 / 7: autocorrelation 1 / 7
    years = torch.stack([flipping, flipping, flipping, paired])[:, :, None, None].expand(4, 8, 3, 2)
    floor = Climate(torch.ones(4, 8), torch.ones(4, 8, 4, 5), years, torch.full((2,), 0.5)).floor(1)
    # a flipping year against the other three (24 days, variance (16 + 32) / 24 = 2): spread sqrt(1 / 2); the
    # paired year against three flipping ones: spread 2. The median window is 1 - sqrt(1 / 2) from one
    torch.testing.assert_close(floor.zonal_spread, torch.full((3,), 1 - 0.5**0.5))
    # lag one: -1 against (-1 - 1 + 4/7) / (1 + 1 + 4) = -5/21, a gap of 16/21; the paired year's gap is 1/7 + 1
    assert sorted(floor.zonal_persistence) == [1, 5], "ten days do not fit in eight"
    torch.testing.assert_close(floor.zonal_persistence[1], torch.full((3,), 16 / 21))


def test_zonal_band_power_is_the_band_power_of_the_zonally_symmetric_part() -> None:
    grid = Grid(32, 64)
    diagnostics = Diagnostics(grid, CHANNELS)
    latitude = torch.deg2rad(torch.as_tensor(grid.latitudes, dtype=torch.float32))[:, None]
    longitude = torch.linspace(0, 2 * torch.pi, grid.nlon + 1)[:-1]
    symmetric = torch.stack([torch.sin(latitude) * scale + torch.cos(3 * latitude) for scale in (1.0, 2.0)])
    symmetric = symmetric[:, None].expand(2, 3, grid.nlat, grid.nlon)  # (sample, channel, lat, lon)
    wave = (torch.cos(latitude) ** 3 * torch.cos(3 * longitude)).expand(2, 3, grid.nlat, grid.nlon)
    states = symmetric + 5.0 * wave
    zonal = zonal_band_power(diagnostics, states.mean(dim=-1), chunk=1)
    torch.testing.assert_close(zonal, diagnostics.bands(symmetric).mean(dim=0), rtol=1e-4, atol=1e-6)
    whole = diagnostics.bands(states).mean(dim=0)
    assert float(whole[0, 1]) > 10 * float(zonal[0, 1]), "the wave's degree-3 power is not the zonal mean's"


def test_zonal_power_splits_the_mean_jets_from_their_day_to_day_departures() -> None:
    grid = Grid(32, 64)
    diagnostics = Diagnostics(grid, CHANNELS)
    latitude = torch.deg2rad(torch.as_tensor(grid.latitudes, dtype=torch.float32))
    jets = torch.cos(latitude) ** 2 * torch.cos(4 * latitude)  # symmetric about the equator: even degrees
    shift = 2.0 * torch.sin(latitude)  # antisymmetric: odd degrees, alternating in sign from day to day
    zonal = torch.stack([jets + sign * shift for sign in (1.0, -1.0, 1.0, -1.0)])[:, None].expand(4, 3, -1)
    power = ZonalPower.of(diagnostics, zonal.contiguous())

    def band_power_of(profile: torch.Tensor) -> torch.Tensor:
        return diagnostics.bands(profile[None, None, :, None].expand(1, 3, grid.nlat, grid.nlon)).mean(dim=0)

    torch.testing.assert_close(power.variability, band_power_of(shift), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(power.whole - power.variability, band_power_of(jets), rtol=1e-4, atol=1e-5)
    assert float(power.variability[0, 0]) > 0 and float(power.whole[0, 0]) == pytest.approx(
        float(power.variability[0, 0]), rel=1e-3
    ), "degree 1 holds the departures alone"
