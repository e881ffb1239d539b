"""Grid identification and quadrature against analytic integrals."""

import numpy as np
import pytest

from emulator.errors import EmulatorError
from emulator.grid import Grid


@pytest.mark.parametrize("kind", ["equiangular", "legendre-gauss"])
def test_area_weights_integrate_polynomials_in_sin_latitude(kind: str) -> None:
    grid = Grid(33, 64, kind)
    mu = np.sin(np.deg2rad(grid.latitudes))
    weights = grid.area_weights / grid.area_weights.sum()
    assert float((weights * mu**2).sum()) == pytest.approx(1.0 / 3.0, abs=1e-10)
    assert float((weights * mu**4).sum()) == pytest.approx(1.0 / 5.0, abs=1e-10)


def test_grid_is_identified_from_coordinates() -> None:
    grid = Grid(24, 48, "legendre-gauss")
    assert Grid.from_coordinates(grid.latitudes, grid.longitudes, "x") == grid


def test_unknown_latitudes_are_refused_with_a_clear_message() -> None:
    offset = np.linspace(87.5, -87.5, 36)  # equiangular without poles
    with pytest.raises(EmulatorError, match=r"store.zarr: the 36 latitudes match no grid"):
        Grid.from_coordinates(offset, np.arange(72) * 5.0, "store.zarr")
