"""Spectra NetCDF from a forecast NetCDF: power per degree, channel, member and lead.

``power(channel, member, init_time, lead_time, degree)`` for every channel and,
for each level (or the surface) where both ``u_component_of_wind`` and
``v_component_of_wind`` exist, ``kinetic_energy(wind_level, member, init_time,
lead_time, degree)``. One lead step is read at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

from emulator import __version__
from emulator.errors import EmulatorError
from emulator.files import atomic_path
from emulator.grid import Grid
from emulator.io.forecast_reader import FIELD_DIMS, forecast_channels, open_forecast
from emulator.spectra import KineticEnergySpectrum, PowerSpectrum, wind_levels, wind_pair


def _spectrum(field: xr.DataArray, transform: torch.nn.Module, degree: np.ndarray) -> xr.DataArray:
    """Apply ``transform`` lead step by lead step: ``(member, init_time, lead_time, ...)`` -> ``(..., degree)``."""
    steps = [
        transform(torch.from_numpy(field.isel(lead_time=i).values)).numpy() for i in range(field.sizes["lead_time"])
    ]
    return xr.DataArray(
        np.stack(steps, axis=-2), dims=["member", "init_time", "lead_time", "degree"], coords={"degree": degree}
    )


def spectra_dataset(forecast: xr.Dataset) -> xr.Dataset:
    """The spectra of every channel of ``forecast`` (and kinetic energy where winds allow)."""
    grid = Grid.from_coordinates(forecast.latitude.values, forecast.longitude.values, "forecast")
    power = PowerSpectrum(grid)
    degree = np.arange(power.degrees)
    fields = forecast_channels(forecast)
    if not fields:
        raise EmulatorError("forecast has no variable with dims " + ", ".join(FIELD_DIMS))
    spectra = xr.concat([_spectrum(f.transpose(*FIELD_DIMS), power, degree) for f in fields.values()], dim="channel")
    spectra = spectra.assign_coords(
        channel=list(fields), lead_time=forecast.lead_time, member=forecast.member, init_time=forecast.init_time
    )
    out = xr.Dataset({"power": spectra})
    out.power.attrs.update(
        long_name="power per spherical-harmonic degree (sums to the area mean of the square)",
        units="(channel units)**2",
    )
    out.degree.attrs.update(long_name="total wavenumber (spherical-harmonic degree)")
    winds = wind_levels(fields)
    if winds:
        kinetic = KineticEnergySpectrum(grid)
        energy = []
        for level in winds:
            pair = xr.concat([fields[w].transpose(*FIELD_DIMS) for w in wind_pair(level)], dim="component")
            pair = pair.transpose("member", "init_time", "lead_time", "component", "latitude", "longitude")
            energy.append(_spectrum(pair, kinetic, degree))
        out["kinetic_energy"] = xr.concat(energy, dim="wind_level").assign_coords(
            wind_level=[level or "surface" for level in winds]
        )
        out.kinetic_energy.attrs.update(long_name="kinetic energy per spherical-harmonic degree", units="m**2 s**-2")
    out.attrs.update(
        Conventions="CF-1.8", source=f"emulator {__version__}", grid=f"{grid.nlat}x{grid.nlon} {grid.kind}"
    )
    return out


def write_spectra(forecast_path: str | Path, output: str | Path) -> Path:
    """Compute the spectra of a forecast file and write them atomically."""
    forecast_path, output = Path(forecast_path), Path(output)
    if not forecast_path.exists():
        raise EmulatorError(f"{forecast_path}: forecast file not found")
    with open_forecast(forecast_path) as forecast:
        spectra = spectra_dataset(forecast)
        spectra.attrs["forecast"] = forecast_path.name
        with atomic_path(output) as temporary:
            spectra.to_netcdf(temporary)
    return output
