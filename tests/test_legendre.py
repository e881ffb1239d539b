"""FoldedSHT equals torch-harmonics' dense transforms, forward and backward, on symmetric grids."""

import pytest
import torch
from torch_harmonics import InverseRealSHT, RealSHT

from emulator.grid import Grid
from emulator.models.legendre import FoldedSHT, order_blocks
from emulator.models.sfno import SFNOConfig, SpectralConvolution

GRIDS = [
    (121, 240, 120, 120, "equiangular"),  # odd: an equator row
    (32, 64, 32, 32, "equiangular"),
    (24, 48, 16, 12, "legendre-gauss"),  # fewer orders than degrees
    (17, 32, 17, 17, "lobatto"),
]


def dense_pair(nlat: int, nlon: int, lmax: int, mmax: int, kind: str) -> tuple[RealSHT, InverseRealSHT]:
    return (
        RealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=kind),
        InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=kind),
    )


def as_dense(coefficients: torch.Tensor) -> torch.Tensor:
    """``(l, m, batch, channels)`` -> torch-harmonics' ``(batch, channels, l, m)``."""
    return coefficients.permute(2, 3, 0, 1)


@pytest.mark.parametrize(("nlat", "nlon", "lmax", "mmax", "kind"), GRIDS)
@pytest.mark.parametrize("blocks", [1, 3])
def test_analysis_and_synthesis_equal_the_dense_transforms(
    nlat: int, nlon: int, lmax: int, mmax: int, kind: str, blocks: int
) -> None:
    torch.manual_seed(0)
    folded = FoldedSHT(nlat, nlon, lmax, mmax, kind, blocks)
    sht, isht = dense_pair(nlat, nlon, lmax, mmax, kind)
    x = torch.randn(2, 3, nlat, nlon)
    coefficients = folded.analysis(x)
    torch.testing.assert_close(as_dense(coefficients), sht(x), rtol=1e-5, atol=1e-5)
    degrees = torch.arange(folded.lmax)[:, None]
    assert coefficients[degrees < torch.arange(folded.mmax)[None]].abs().max() == 0
    torch.testing.assert_close(folded.synthesis(coefficients), isht(sht(x)), rtol=1e-5, atol=1e-5)


def test_gradients_equal_the_dense_transforms() -> None:
    torch.manual_seed(0)
    nlat, nlon, lmax, mmax, kind = GRIDS[0]
    folded = FoldedSHT(nlat, nlon, lmax, mmax, kind)
    sht, isht = dense_pair(nlat, nlon, lmax, mmax, kind)
    x = torch.randn(1, 2, nlat, nlon)
    probe = torch.randn(1, 2, nlat, nlon)
    gradients = []
    for round_trip in (lambda v: folded.synthesis(folded.analysis(v)), lambda v: isht(sht(v))):
        leaf = x.clone().requires_grad_()
        (round_trip(leaf) * probe).sum().backward()
        gradients.append(leaf.grad)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-5, atol=1e-5)


def test_order_blocks_cover_every_order_and_degree_once() -> None:
    lmax, mmax = 20, 15
    pairs = set()
    for block in order_blocks(lmax, mmax, count=4):
        for order, degrees in zip(range(block.start, block.stop), block.degrees(), strict=True):
            pairs |= {(int(degree), order) for degree in degrees if degree < lmax}
    assert pairs == {(degree, order) for order in range(mmax) for degree in range(order, lmax)}


def test_spectral_convolution_is_the_per_degree_complex_product() -> None:
    torch.manual_seed(0)
    nlat, nlon, lmax, mmax, kind = GRIDS[2]
    convolution = SpectralConvolution(FoldedSHT(nlat, nlon, lmax, mmax, kind), channels=5, degree_blocks=3)
    sht, isht = dense_pair(nlat, nlon, lmax, mmax, kind)
    x = torch.randn(2, 5, nlat, nlon)
    weight = torch.view_as_complex(convolution.weight)  # (l, in, out)
    expected = isht(torch.einsum("bilm,lio->bolm", sht(x), weight))
    torch.testing.assert_close(convolution(x), expected, rtol=1e-5, atol=1e-5)


def test_a_model_on_the_benchmark_grid_builds_with_the_reference_truncation() -> None:
    model = SFNOConfig(embed_dim=4, num_layers=1, truncation=120).build(2, 2, Grid(121, 240))
    assert model(torch.randn(1, 2, 121, 240)).shape == (1, 2, 121, 240)
