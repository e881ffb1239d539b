"""How ``navy_winds_1982.zarr`` was made: a year of Ferret's monthly Navy winds in the reanalysis layout.

Source: ``/usr/share/ferret-vis/data/monthly_navy_winds.cdf`` from Debian's
``ferret-datasets`` package (NOAA PMEL's Ferret sample data). Only names and
layout change: variables renamed to WeatherBench2's names, dims to ``time,
latitude, longitude``; values, coordinates (latitude -90..90 ascending, longitude
20..377.5 degrees east) and the numeric CF time axis (hours since 1980-01-14 14:00)
are kept exactly as published. Written as Zarr v2 with consolidated metadata.

    python tests/data/convert_navy_winds.py
"""

from pathlib import Path

import xarray as xr

SOURCE = "/usr/share/ferret-vis/data/monthly_navy_winds.cdf"
TARGET = Path(__file__).parent / "navy_winds_1982.zarr"
NAMES = {"UWND": "10m_u_component_of_wind", "VWND": "10m_v_component_of_wind"}


def main() -> None:
    raw = xr.open_dataset(SOURCE, decode_times=False, mask_and_scale=False)
    dataset = raw.isel(TIME=slice(0, 12)).rename({"TIME": "time", "FNOCY": "latitude", "FNOCX": "longitude", **NAMES})
    dataset.attrs = {
        "title": "FNOC (US Navy) monthly mean surface winds, January to December 1982",
        "source": "Ferret sample data set monthly_navy_winds.cdf (NOAA PMEL), Debian package ferret-datasets",
        "history": f"{raw.attrs['history']}; renamed to the WeatherBench2 layout by tests/data/convert_navy_winds.py",
    }
    encoding = {name: {"chunks": (6, 73, 144)} for name in NAMES.values()}
    dataset.to_zarr(TARGET, mode="w", zarr_format=2, consolidated=True, encoding=encoding)


if __name__ == "__main__":
    main()
