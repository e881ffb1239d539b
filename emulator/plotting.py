"""Maps (cartopy) and energy spectra (log-log) of forecast products, offline.

Figures are plain :class:`matplotlib.figure.Figure` objects (no pyplot state), so
the same helpers serve the CLI, which saves PNGs, and notebooks, which show them.
Coastlines come from GSHHS shapefiles already on disk (Debian's
``python-cartopy-data``); without them the map is drawn without coastlines and a
warning says so. Nothing is ever downloaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cartopy
import cartopy.crs as ccrs
import cartopy.feature as cfeature
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from emulator.errors import EmulatorError
from emulator.io.forecast_reader import open_forecast

LOG = logging.getLogger(__name__)
SHAPE_DIRS = (Path(cartopy.config["data_dir"]), Path("/usr/share/cartopy/data"))
GSHHS_COARSE = Path("shapefiles/gshhs/c/GSHHS_c_L1.shp")


def offline_coastlines() -> cfeature.Feature | None:
    """GSHHS coarse coastlines if their shapefile is on disk, else ``None``."""
    for directory in SHAPE_DIRS:
        if (directory / GSHHS_COARSE).is_file():
            cartopy.config["pre_existing_data_dir"] = str(directory)
            return cfeature.GSHHSFeature(scale="c", levels=[1])
    return None


def map_figure(field: xr.DataArray, title: str) -> Figure:
    """A global Robinson map of a ``(latitude, longitude)`` field."""
    if field.dims != ("latitude", "longitude"):
        raise EmulatorError(f"map needs a (latitude, longitude) field, got dims {field.dims}")
    figure = Figure(figsize=(9, 4.8), layout="constrained")
    axes = figure.add_subplot(projection=ccrs.Robinson())
    longitude = np.append(field.longitude.values, 360.0)
    values = np.concatenate([field.values, field.values[:, :1]], axis=1)
    mesh = axes.pcolormesh(
        longitude, field.latitude.values, values, transform=ccrs.PlateCarree(), cmap="RdBu_r", shading="nearest"
    )
    coastlines = offline_coastlines()
    if coastlines is None:
        LOG.warning("coastlines skipped: no GSHHS shapefiles on disk (install Debian's python-cartopy-data)")
    else:
        axes.add_feature(coastlines, edgecolor="black", linewidth=0.5, facecolor="none")
    axes.set_global()
    units = field.attrs.get("units", "")
    figure.colorbar(
        mesh,
        ax=axes,
        orientation="horizontal",
        shrink=0.6,
        label=f"{field.attrs.get('long_name', field.name)} [{units}]",
    )
    axes.set_title(title)
    return figure


def spectrum_figure(spectra: xr.Dataset, lead_indices: list[int] | None = None) -> Figure:
    """Kinetic energy (or, without winds, each channel's power) against degree, log-log."""
    figure = Figure(figsize=(6.5, 4.8), layout="constrained")
    axes = figure.add_subplot()
    leads = (
        lead_indices
        if lead_indices is not None
        else sorted({0, spectra.sizes["lead_time"] // 2, spectra.sizes["lead_time"] - 1})
    )
    if "kinetic_energy" in spectra:
        curves = spectra.kinetic_energy.isel(wind_level=0, member=0, init_time=0)
        axes.set_ylabel("kinetic energy per degree [m$^2$ s$^{-2}$]")
        label = f"wind at {spectra.wind_level.values[0]} hPa"
    else:
        curves = spectra.power.isel(channel=0, member=0, init_time=0)
        axes.set_ylabel("power per degree")
        label = str(spectra.channel.values[0])
    degree = spectra.degree.values[1:]
    for index in leads:
        lead = curves.isel(lead_time=index)
        hours = lead.lead_time.values / np.timedelta64(1, "h")
        axes.loglog(degree, lead.values[1:], label=f"lead {hours:g} h")
    axes.set_xlabel("total wavenumber (spherical-harmonic degree)")
    axes.set_title(f"Energy spectrum, {label}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    return figure


def forecast_field(forecast: xr.Dataset, channel: str | None, lead_index: int) -> tuple[xr.DataArray, str]:
    """One channel at one lead of the first member, with a title."""
    variable, _, level = (channel or str(next(iter(forecast.data_vars)))).partition("@")
    if variable not in forecast:
        raise EmulatorError(f"forecast has no variable {variable!r} (it has {', '.join(map(str, forecast.data_vars))})")
    field = forecast[variable].isel(member=0, init_time=0, lead_time=lead_index)
    if "level" in field.dims:
        chosen = int(level) if level else int(field.level.values[0])
        if chosen not in field.level.values:
            raise EmulatorError(f"forecast has no level {chosen} of {variable!r}")
        field = field.sel(level=chosen)
        variable = f"{variable}@{chosen}"
    hours = forecast.lead_time.values[lead_index] / np.timedelta64(1, "h")
    return field, f"{variable}, lead {hours:g} h"


def plot_products(
    forecast_path: str | Path,
    spectra_path: str | Path | None,
    output: str | Path,
    channel: str | None = None,
    lead_index: int = -1,
) -> list[Path]:
    """Save a map PNG of the forecast and, given spectra, a spectrum PNG; return their paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = []
    with open_forecast(forecast_path) as forecast:
        field, title = forecast_field(forecast, channel, lead_index)
        path = output / f"map_{title.split(',')[0].replace('@', '_')}.png"
        map_figure(field.load(), title).savefig(path, dpi=110)
        paths.append(path)
    if spectra_path is not None:
        with open_forecast(spectra_path) as spectra:
            path = output / "spectrum.png"
            spectrum_figure(spectra.load()).savefig(path, dpi=110)
            paths.append(path)
    return paths
