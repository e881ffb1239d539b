"""Regridding: band-limited fields survive the spectral method exactly; bilinear is exact for linear fields."""

import numpy as np
import pytest

from emulator.data.regrid import RegridConfig, Regridder
from emulator.errors import EmulatorError
from emulator.grid import Grid


def band_limited(latitudes: np.ndarray, longitudes: np.ndarray) -> np.ndarray:
    """A sum of spherical harmonics of degree at most 3 (in Cartesian form)."""
    phi, lam = np.deg2rad(latitudes)[:, None], np.deg2rad(longitudes)[None, :]
    x, y, z = np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi) * np.ones_like(lam)
    return 1.0 + z**3 + 2.0 * x * y + 0.5 * x * z


@pytest.mark.parametrize("kind", ["equiangular", "legendre-gauss"])
def test_spectral_regridding_reproduces_band_limited_fields(kind: str) -> None:
    source = Grid(91, 180)  # 2 degrees, poles included
    regrid = RegridConfig(nlat=46, nlon=90, kind=kind)
    field = band_limited(source.latitudes, source.longitudes).astype(np.float32)
    out = Regridder(source.latitudes, source.longitudes, regrid, "store")(np.stack([field, 2 * field]))
    expected = band_limited(regrid.grid.latitudes, regrid.grid.longitudes)
    assert out.shape == (2, 46, 90) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    np.testing.assert_allclose(out[1], 2 * expected, atol=2e-5)


def test_spectral_regridding_removes_scales_the_target_cannot_hold() -> None:
    source = Grid(91, 180)
    lam = np.deg2rad(source.longitudes)[None, :]
    fine = np.cos(np.deg2rad(source.latitudes))[:, None] ** 40 * np.cos(40 * lam)  # degree 40 > target's 16
    out = Regridder(source.latitudes, source.longitudes, RegridConfig(nlat=33, nlon=64), "store")(fine)
    assert np.abs(out).max() < 1e-5


def test_bilinear_regridding_takes_a_grid_without_poles() -> None:
    latitudes = np.linspace(87.1875, -87.1875, 32)  # WeatherBench2's 64x32, no poles
    longitudes = np.arange(64) * 5.625
    linear = np.broadcast_to((3.0 + 0.01 * latitudes)[:, None], (32, 64)).astype(np.float32)
    regrid = RegridConfig(nlat=33, nlon=64, kind="equiangular", method="bilinear")
    out = Regridder(latitudes, longitudes, regrid, "store")(linear)
    target = regrid.grid.latitudes
    inside = np.abs(target) <= 87.1875
    np.testing.assert_allclose(out[inside, 0], 3.0 + 0.01 * target[inside], rtol=1e-6)
    np.testing.assert_allclose(out[0], 3.0 + 0.01 * 87.1875, rtol=1e-6, err_msg="the pole takes the ring's mean")
    wave = np.cos(np.deg2rad(longitudes))[None, :].repeat(32, 0)
    np.testing.assert_allclose(
        Regridder(latitudes, longitudes, regrid, "store")(wave)[16],
        np.cos(np.deg2rad(regrid.grid.longitudes)),
        atol=1e-7,
    )


def test_spectral_regridding_refuses_a_grid_without_quadrature() -> None:
    latitudes, longitudes = np.linspace(87.1875, -87.1875, 32), np.arange(64) * 5.625
    with pytest.raises(EmulatorError, match=r"store.zarr: the 32 latitudes match no grid.*method: bilinear"):
        Regridder(latitudes, longitudes, RegridConfig(nlat=32, nlon=64, kind="legendre-gauss"), "store.zarr")
