"""The built-in world's climate from independent simulated years: daily energy and band power.

The world's solver runs ``years`` members at once (seeds ``seed_base`` on), each spun
up as the stores are, then ``days`` days each, keeping one sample a day of the
area-mean kinetic energy and of :class:`~emulator.spectra.BandPower`. One year is too
short a climate to judge a band of degrees to 10 % (two years differ by up to 31 %),
so the benchmarks judge against many, and the climate loss of
:mod:`emulator.training.climate` trains toward such a file (made with other seeds).
"""

from __future__ import annotations

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


def simulate_climate(
    world: WorldConfig, diagnostics: Diagnostics, years: int, seed_base: int, days: int = DAYS_PER_YEAR
) -> tuple[torch.Tensor, torch.Tensor]:
    """Daily ``energy (year, day)`` and ``band power (year, day, quantity, band)`` of ``years`` members."""
    for name, value in (("years", years), ("days", days)):
        if value < 1:
            raise EmulatorError(f"world climate: {name} must be at least 1, got {value}")
    physics = world.physics
    members = ForcedShallowWater(physics, seed=range(seed_base, seed_base + years))
    steps_per_day = round(SECONDS_PER_DAY / physics.dt_seconds)
    members.step(steps_per_day * world.spinup_days)
    variables = [Channel.parse(name).variable for name in diagnostics.channels]
    energy, bands = [], []
    for _ in tqdm(range(days), desc=f"world climate, {years} members", unit="day"):
        members.step(steps_per_day)
        fields = members.grid_fields()
        state = torch.stack([fields[variable] for variable in variables], dim=1)
        energy.append(diagnostics.energy(state))
        bands.append(diagnostics.bands(state))
    return torch.stack(energy, dim=1), torch.stack(bands, dim=1)


def climate_dataset(
    energy: torch.Tensor, bands: torch.Tensor, quantities: list[str], labels: list[str], **attrs: str
) -> xr.Dataset:
    """The daily diagnostics as NetCDF-ready variables ``energy`` and ``band_power``."""
    return xr.Dataset(
        {
            "energy": (("year", "day"), energy.numpy(), {"long_name": "area-mean kinetic energy", "units": "m2 s-2"}),
            "band_power": (
                ("year", "day", "quantity", "band"),
                bands.numpy(),
                {"long_name": "mean power per spherical-harmonic degree over the band"},
            ),
        },
        coords={"quantity": quantities, "band": labels},
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
    energy, bands = simulate_climate(world, diagnostics, years, seed_base, days)
    recipe = f"{years} members of seeds {seed_base} on, {world.spinup_days} days of spin-up, then {days} days"
    band_power = diagnostics.band_power
    dataset = climate_dataset(energy, bands, band_power.quantities, band_power.labels, recipe=recipe)
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)
    return Path(path)
