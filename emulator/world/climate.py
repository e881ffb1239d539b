"""The built-in world's climate from independent simulated years: daily energy, band power and zonal means.

The world's solver runs ``years`` members at once (seeds ``seed_base`` on), each spun
up as the stores are, then ``days`` days each, keeping one sample a day of the
area-mean kinetic energy, of :class:`~emulator.spectra.BandPower` and of each
channel's zonal mean (its jets and their variability). One year is too
short a climate to judge a band of degrees to 10 % (two years differ by up to 31 %),
so the benchmarks judge against many, and the climate loss of
:mod:`emulator.training.climate` trains toward such a file (made with other seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import xarray as xr
from tqdm import tqdm

from emulator.config import WorldConfig
from emulator.data.source import Channel
from emulator.errors import EmulatorError
from emulator.files import atomic_path
from emulator.grid import Grid
from emulator.quadrature import AreaMean
from emulator.spectra import BandPower, wind_levels, wind_pair
from emulator.world.shallow_water import SECONDS_PER_DAY, ForcedShallowWater

DAYS_PER_YEAR = 365


class Diagnostics:
    """Area-mean kinetic energy (the first wind level's) and band power of physical ``(batch, channel, lat, lon)``."""

    def __init__(self, grid: Grid, channels: list[str]) -> None:
        self.grid, self.channels = grid, channels
        self.area_mean = AreaMean(grid)
        self.band_power = BandPower(grid, channels)
        self.wind = [channels.index(name) for name in wind_pair(wind_levels(channels)[0])]

    def energy(self, state: torch.Tensor) -> torch.Tensor:
        """``(batch,)`` area mean of ``(u^2 + v^2) / 2``."""
        return self.area_mean(0.5 * state[:, self.wind].square().sum(dim=1))[:, 0, 0]

    def bands(self, state: torch.Tensor) -> torch.Tensor:
        """``(batch, quantity, band)``: :class:`~emulator.spectra.BandPower`."""
        return self.band_power(state)


@dataclass(frozen=True)
class DailyClimate:
    """Daily diagnostics of ``years`` members: ``energy (year, day)``, ``bands (year, day, quantity, band)``
    and ``zonal_mean (year, day, channel, lat)``."""

    energy: torch.Tensor
    bands: torch.Tensor
    zonal_mean: torch.Tensor


def simulate_climate(
    world: WorldConfig, diagnostics: Diagnostics, years: int, seed_base: int, days: int = DAYS_PER_YEAR
) -> DailyClimate:
    """The :class:`DailyClimate` of ``years`` members."""
    for name, value in (("years", years), ("days", days)):
        if value < 1:
            raise EmulatorError(f"world climate: {name} must be at least 1, got {value}")
    physics = world.physics
    members = ForcedShallowWater(physics, seed=range(seed_base, seed_base + years))
    steps_per_day = round(SECONDS_PER_DAY / physics.dt_seconds)
    members.step(steps_per_day * world.spinup_days)
    variables = [Channel.parse(name).variable for name in diagnostics.channels]
    energy, bands, zonal_mean = [], [], []
    for _ in tqdm(range(days), desc=f"world climate, {years} members", unit="day"):
        members.step(steps_per_day)
        fields = members.grid_fields()
        state = torch.stack([fields[variable] for variable in variables], dim=1)
        energy.append(diagnostics.energy(state))
        bands.append(diagnostics.bands(state))
        zonal_mean.append(state.mean(dim=-1))
    return DailyClimate(*(torch.stack(series, dim=1) for series in (energy, bands, zonal_mean)))


def climate_dataset(daily: DailyClimate, diagnostics: Diagnostics, **attrs: str) -> xr.Dataset:
    """The daily diagnostics as NetCDF-ready variables ``energy``, ``band_power`` and ``zonal_mean``."""
    band_power = diagnostics.band_power
    return xr.Dataset(
        {
            "energy": (
                ("year", "day"),
                daily.energy.numpy(),
                {"long_name": "area-mean kinetic energy", "units": "m2 s-2"},
            ),
            "band_power": (
                ("year", "day", "quantity", "band"),
                daily.bands.numpy(),
                {"long_name": "mean power per spherical-harmonic degree over the band"},
            ),
            "zonal_mean": (
                ("year", "day", "channel", "latitude"),
                daily.zonal_mean.numpy(),
                {"long_name": "zonal mean of each channel"},
            ),
        },
        coords={
            "quantity": band_power.quantities,
            "band": band_power.labels,
            "channel": diagnostics.channels,
            "latitude": ("latitude", diagnostics.grid.latitudes, {"units": "degrees_north"}),
        },
        attrs={"title": "Daily climate diagnostics of independent years of the built-in world", **attrs},
    )


def write_world_climate(
    world: WorldConfig,
    grid: Grid,
    channels: list[str],
    years: int,
    seed_base: int,
    path: str | Path,
    days: int = DAYS_PER_YEAR,
) -> Path:
    """Simulate :func:`simulate_climate` and write it to ``path`` (NetCDF, atomically)."""
    diagnostics = Diagnostics(grid, channels)
    daily = simulate_climate(world, diagnostics, years, seed_base, days)
    recipe = f"{years} members of seeds {seed_base} on, {world.spinup_days} days of spin-up, then {days} days"
    dataset = climate_dataset(daily, diagnostics, recipe=recipe)
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)
    return Path(path)
