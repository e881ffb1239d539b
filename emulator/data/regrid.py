"""Regridding from a store's latitude-longitude grid to the model's grid.

Two methods, chosen in the data config (``data.regrid``):

- ``spectral`` (default): the field's spherical-harmonic coefficients on the store's
  grid (torch-harmonics ``RealSHT``, exact quadrature) synthesised on the model's grid
  (``InverseRealSHT``), both truncated at the smaller grid's alias-free degree. A
  band-limited field within that truncation is reproduced exactly; finer scales are
  removed instead of aliased. Needs a store grid with a quadrature (equiangular with
  poles, Legendre-Gauss, Lobatto).
- ``bilinear``: linear in latitude then periodic-linear in longitude, for any grid of
  equally spaced longitudes and monotonic latitudes (e.g. WeatherBench2's equiangular
  grids without poles); where the model's grid reaches past the store's outermost
  latitudes, the poles are filled with the mean of the nearest ring, as in
  torch-harmonics' ``ResampleS2``. Reproduces constants and fields linear in latitude.

Fields are ``(..., lat, lon)`` with latitude north to south and longitude east from 0.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch_harmonics import InverseRealSHT, RealSHT

from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.schema import Strict


class RegridConfig(Strict):
    """The model's grid, when it differs from the store's, and how to get there."""

    nlat: int = Field(gt=2)
    nlon: int = Field(gt=3)
    kind: Literal["equiangular", "legendre-gauss", "lobatto"] = "equiangular"
    method: Literal["spectral", "bilinear"] = "spectral"

    @property
    def grid(self) -> Grid:
        return Grid(self.nlat, self.nlon, self.kind)


def _linear_weights(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(len(target), len(source))`` matrix interpolating linearly in an ascending ``source``."""
    right = np.clip(np.searchsorted(source, target, side="right"), 1, len(source) - 1)
    left = right - 1
    fraction = (target - source[left]) / (source[right] - source[left])
    weights = np.zeros((len(target), len(source)))
    rows = np.arange(len(target))
    weights[rows, left] = 1.0 - fraction
    weights[rows, right] += fraction
    return weights


class Regridder:
    """A fixed map from the store's grid to ``regrid.grid``; call it on ``(..., lat, lon)`` arrays."""

    def __init__(self, latitudes: np.ndarray, longitudes: np.ndarray, regrid: RegridConfig, where: str) -> None:
        self.target = regrid.grid
        self.method = regrid.method
        self.source_shape = (len(latitudes), len(longitudes))
        if regrid.method == "spectral":
            source = Grid.from_coordinates(latitudes, longitudes, where, hint="use data.regrid.method: bilinear")
            lmax = min(source.max_degree, self.target.max_degree)
            self.forward = RealSHT(source.nlat, source.nlon, lmax, lmax, grid=source.kind).double()
            self.inverse = InverseRealSHT(self.target.nlat, self.target.nlon, lmax, lmax, grid=self.target.kind)
            self.inverse = self.inverse.double()
        else:
            self._bilinear_matrices(np.asarray(latitudes, dtype=np.float64), np.asarray(longitudes, dtype=np.float64))

    def _bilinear_matrices(self, latitudes: np.ndarray, longitudes: np.ndarray) -> None:
        target_lat = self.target.latitudes
        self.pad_poles = bool(target_lat.max() > latitudes.max() or target_lat.min() < latitudes.min())
        if self.pad_poles:
            latitudes = np.concatenate([[90.0], latitudes, [-90.0]])
        # ascending in -latitude, i.e. north to south, the order of the rows
        self.latitude_weights = _linear_weights(-latitudes, -target_lat)
        period = np.concatenate([longitudes, [longitudes[0] + 360.0]])
        wrapped = _linear_weights(period, self.target.longitudes)
        wrapped[:, 0] += wrapped[:, -1]
        self.longitude_weights = wrapped[:, :-1].T.copy()

    def __call__(self, fields: np.ndarray) -> np.ndarray:
        if fields.shape[-2:] != self.source_shape:
            raise EmulatorError(f"regrid: fields of shape {fields.shape[-2:]}, expected {self.source_shape}")
        if self.method == "spectral":
            with torch.no_grad():
                coefficients = self.forward(torch.from_numpy(np.asarray(fields, dtype=np.float64)))
                return self.inverse(coefficients).numpy().astype(np.float32)
        values = np.asarray(fields, dtype=np.float64)
        if self.pad_poles:
            north = np.broadcast_to(values[..., :1, :].mean(axis=-1, keepdims=True), values[..., :1, :].shape)
            south = np.broadcast_to(values[..., -1:, :].mean(axis=-1, keepdims=True), values[..., -1:, :].shape)
            values = np.concatenate([north, values, south], axis=-2)
        return (self.latitude_weights @ values @ self.longitude_weights).astype(np.float32)
