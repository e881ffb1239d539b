"""Forcings computed from time and position, never stored: insolation, time of day and of year.

A data config names them among its forcing channels like any stored field:

- ``cos_zenith``: cosine of the solar zenith angle, ``sin(phi) sin(delta) + cos(phi) cos(delta) cos(h)``
  with latitude ``phi``, solar declination ``delta`` and hour angle ``h`` (negative at night);
- ``toa_insolation``: instantaneous top-of-atmosphere incoming solar flux (W m-2),
  ``S0 (r0 / r)^2 max(cos_zenith, 0)`` with ``S0 = 1361 W m-2``; its global mean is
  ``S0 (r0 / r)^2 / 4``;
- ``sin_time_of_day`` / ``cos_time_of_day``: the local mean solar time
  ``t_UTC + longitude / 15 h`` as an angle on the 24-hour circle;
- ``sin_day_of_year`` / ``cos_day_of_year``: the fraction of the calendar year elapsed.

Declination, equation of time and Earth-Sun distance follow Spencer (1971), "Fourier
series representation of the position of the Sun", Search 2(5), 172, accurate to
about 0.01 rad in declination, plenty for a forcing field. Times are UTC.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

SOLAR_CONSTANT = 1361.0
"""W m-2 (Kopp and Lean 2011)."""


def _year_angle(times: pd.DatetimeIndex) -> np.ndarray:
    """Spencer's fractional-year angle ``2 pi (day_of_year - 1 + hour / 24) / days_in_year``."""
    days = np.where(times.is_leap_year, 366.0, 365.0)
    elapsed = times.day_of_year.to_numpy() - 1 + _utc_hours(times) / 24.0
    return 2.0 * np.pi * elapsed / days


def _utc_hours(times: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray((times - times.normalize()) / pd.Timedelta(hours=1), dtype=np.float64)


def _declination(gamma: np.ndarray) -> np.ndarray:
    """Solar declination (radians)."""
    return (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma)
        + 0.00148 * np.sin(3 * gamma)
    )


def _equation_of_time_hours(gamma: np.ndarray) -> np.ndarray:
    """Apparent minus mean solar time (hours)."""
    minutes = 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )
    return minutes / 60.0


def _distance_factor(gamma: np.ndarray) -> np.ndarray:
    """``(r0 / r)^2``: mean over actual Earth-Sun distance, squared."""
    return (
        1.000110
        + 0.034221 * np.cos(gamma)
        + 0.001280 * np.sin(gamma)
        + 0.000719 * np.cos(2 * gamma)
        + 0.000077 * np.sin(2 * gamma)
    )


def _local_hours(times: pd.DatetimeIndex, longitudes: np.ndarray) -> np.ndarray:
    """Local mean solar time (hours), ``(time, lon)``."""
    return _utc_hours(times)[:, None] + longitudes[None, :] / 15.0


def cos_zenith(times: pd.DatetimeIndex, latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    gamma = _year_angle(times)
    declination = _declination(gamma)[:, None, None]
    solar_hours = _local_hours(times, longitudes) + _equation_of_time_hours(gamma)[:, None]
    hour_angle = np.deg2rad(15.0 * (solar_hours - 12.0))[:, None, :]
    phi = np.deg2rad(latitudes)[None, :, None]
    return np.sin(phi) * np.sin(declination) + np.cos(phi) * np.cos(declination) * np.cos(hour_angle)


def toa_insolation(times: pd.DatetimeIndex, latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    factor = _distance_factor(_year_angle(times))[:, None, None]
    return SOLAR_CONSTANT * factor * np.maximum(cos_zenith(times, latitudes, longitudes), 0.0)


def _time_of_day(times: pd.DatetimeIndex, latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    angle = 2.0 * np.pi * _local_hours(times, longitudes) / 24.0
    return np.broadcast_to(angle[:, None, :], (len(times), len(latitudes), len(longitudes)))


def _day_of_year(times: pd.DatetimeIndex, latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    angle = _year_angle(times)
    return np.broadcast_to(angle[:, None, None], (len(times), len(latitudes), len(longitudes)))


Field = Callable[[pd.DatetimeIndex, np.ndarray, np.ndarray], np.ndarray]

COMPUTED: dict[str, Field] = {
    "cos_zenith": cos_zenith,
    "toa_insolation": toa_insolation,
    "sin_time_of_day": lambda *args: np.sin(_time_of_day(*args)),
    "cos_time_of_day": lambda *args: np.cos(_time_of_day(*args)),
    "sin_day_of_year": lambda *args: np.sin(_day_of_year(*args)),
    "cos_day_of_year": lambda *args: np.cos(_day_of_year(*args)),
}
"""The reserved channel names and how each is computed; they take precedence over store variables."""

UNITS = {name: "W m-2" if name == "toa_insolation" else "1" for name in COMPUTED}


def compute_forcing(name: str, times: pd.DatetimeIndex, latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    """The computed channel ``name`` at ``times`` on a grid (degrees), ``(time, lat, lon)`` float32."""
    return COMPUTED[name](pd.DatetimeIndex(times), np.asarray(latitudes), np.asarray(longitudes)).astype(np.float32)
