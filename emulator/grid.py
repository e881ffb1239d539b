"""The latitude-longitude grid and its quadrature.

Inside the emulator every field has the layout ``(..., lat, lon)`` with latitude
running north to south (torch-harmonics' colatitude order) and longitude east
from 0 degrees. :class:`Grid` names which torch-harmonics quadrature the
latitudes are the nodes of, so that area weights and spherical-harmonic
transforms agree: on the sphere, ``integral f dA ~ sum_ij w_i f_ij (2 pi / nlon)``
with ``sum_i w_i = 2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch_harmonics.quadrature import precompute_latitudes

from emulator.errors import EmulatorError

SHT_GRIDS = ("equiangular", "legendre-gauss", "lobatto")
TOLERANCE_DEG = 1e-3


def grid_latitudes(nlat: int, kind: str) -> np.ndarray:
    """Latitudes (degrees, north to south) of a torch-harmonics grid."""
    colatitude, _ = precompute_latitudes(nlat, grid=kind)
    return 90.0 - np.rad2deg(colatitude.numpy())


@dataclass(frozen=True)
class Grid:
    """A global grid: ``nlat`` latitudes of quadrature ``kind`` by ``nlon`` longitudes."""

    nlat: int
    nlon: int
    kind: str = "equiangular"

    def __post_init__(self) -> None:
        if self.kind not in SHT_GRIDS:
            raise EmulatorError(f"grid kind {self.kind!r} is not one of {', '.join(SHT_GRIDS)}")

    @classmethod
    def from_coordinates(
        cls, latitudes: np.ndarray, longitudes: np.ndarray, where: str, hint: str = "set data.regrid to regrid it"
    ) -> Grid:
        """Identify the grid of north-to-south latitudes and ascending longitudes (degrees)."""
        nlat, nlon = len(latitudes), len(longitudes)
        expected_lon = np.arange(nlon) * 360.0 / nlon
        if not np.allclose(longitudes, expected_lon, atol=TOLERANCE_DEG):
            raise EmulatorError(f"{where}: longitudes are not {nlon} equally spaced values from 0 degrees")
        for kind in SHT_GRIDS:
            if np.allclose(latitudes, grid_latitudes(nlat, kind), atol=TOLERANCE_DEG):
                return cls(nlat, nlon, kind)
        raise EmulatorError(
            f"{where}: the {nlat} latitudes match no grid the model can take ({', '.join(SHT_GRIDS)}); {hint}"
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def latitudes(self) -> np.ndarray:
        return grid_latitudes(self.nlat, self.kind)

    @property
    def longitudes(self) -> np.ndarray:
        return np.arange(self.nlon) * 360.0 / self.nlon

    @property
    def max_degree(self) -> int:
        """Alias-free triangular truncation (non-inclusive) for this grid's quadrature."""
        exact = {"equiangular": (self.nlat + 1) // 2, "legendre-gauss": self.nlat, "lobatto": self.nlat - 1}
        return min(exact[self.kind], self.nlon // 2 + 1)

    @property
    def area_weights(self) -> np.ndarray:
        """Quadrature weights per latitude, normalized to mean one."""
        _, weights = precompute_latitudes(self.nlat, grid=self.kind)
        weights = weights.numpy()
        return weights / weights.mean()

    def to_dict(self) -> dict[str, int | str]:
        return {"nlat": self.nlat, "nlon": self.nlon, "kind": self.kind}
