"""TriangularSHT equals torch-harmonics' dense transforms, forward and backward."""

import pytest
import torch
from torch_harmonics import InverseRealSHT, RealSHT

from emulator.grid import Grid
from emulator.models.legendre import TriangularSHT
from emulator.models.sfno import SFNOConfig, SpectralConvolution

GRIDS = [
    (121, 240, 120, 120, "equiangular"),  # odd: an equator row
    (32, 64, 32, 32, "equiangular"),
    (24, 48, 16, 12, "legendre-gauss"),  # torch-harmonics truncates both to 12
    (17, 32, 17, 17, "lobatto"),
]


def dense_pair(nlat: int, nlon: int, lmax: int, mmax: int, kind: str) -> tuple[RealSHT, InverseRealSHT]:
    return (
        RealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=kind),
        InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=kind),
    )


def as_dense(transform: TriangularSHT, packed: torch.Tensor) -> torch.Tensor:
    """Packed ``(rows, batch, channels)`` -> torch-harmonics' ``(batch, channels, l, m)``, zero where unpacked."""
    dense = packed.new_zeros(transform.lmax, transform.mmax, *packed.shape[1:])
    for block, rows in zip(transform.degree_blocks, packed.split(transform.packed_sizes), strict=True):
        dense[block.start : block.stop, : block.orders] = rows.view(
            block.stop - block.start, block.orders, -1, rows.shape[-1]
        )
    return dense.permute(2, 3, 0, 1)


@pytest.mark.parametrize(("nlat", "nlon", "lmax", "mmax", "kind"), GRIDS)
@pytest.mark.parametrize("blocks", [1, 3])
def test_analysis_and_synthesis_equal_the_dense_transforms(
    nlat: int, nlon: int, lmax: int, mmax: int, kind: str, blocks: int
) -> None:
    torch.manual_seed(0)
    triangular = TriangularSHT(nlat, nlon, lmax, mmax, kind, order_blocks=blocks, degree_blocks=blocks)
    sht, isht = dense_pair(nlat, nlon, lmax, mmax, kind)
    x = torch.randn(2, 3, nlat, nlon)
    coefficients = triangular.analysis(x)
    torch.testing.assert_close(as_dense(triangular, coefficients), sht(x), rtol=1e-5, atol=1e-5)
    above_degree = as_dense(triangular, coefficients)[
        ..., torch.arange(triangular.lmax)[:, None] < torch.arange(triangular.mmax)
    ]
    assert above_degree.abs().max() == 0
    blocks = triangular.degree_blocks
    rows = torch.cat([torch.arange(block.start, block.stop).repeat_interleave(block.orders) for block in blocks])
    assert torch.equal(triangular.packed_degrees, rows)
    torch.testing.assert_close(triangular.synthesis(coefficients), isht(sht(x)), rtol=1e-5, atol=1e-5)


def test_gradients_equal_the_dense_transforms() -> None:
    torch.manual_seed(0)
    nlat, nlon, lmax, mmax, kind = GRIDS[0]
    triangular = TriangularSHT(nlat, nlon, lmax, mmax, kind)
    sht, isht = dense_pair(nlat, nlon, lmax, mmax, kind)
    x = torch.randn(1, 2, nlat, nlon)
    probe = torch.randn(1, 2, nlat, nlon)
    gradients = []
    for round_trip in (lambda v: triangular.synthesis(triangular.analysis(v)), lambda v: isht(sht(v))):
        leaf = x.clone().requires_grad_()
        (round_trip(leaf) * probe).sum().backward()
        gradients.append(leaf.grad)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-5, atol=1e-5)


def test_order_blocks_cover_every_order_and_degree_once() -> None:
    transform = TriangularSHT(24, 48, 20, 20, "legendre-gauss", order_blocks=3)
    lmax, mmax = transform.lmax, transform.mmax
    pairs = []
    for block in transform.order_blocks:
        for order, degrees in zip(range(block.start, block.stop), block.degrees(), strict=True):
            pairs += [(int(degree), order) for degree in degrees if degree < lmax]
    assert sorted(pairs) == [(degree, order) for degree in range(lmax) for order in range(min(degree + 1, mmax))]


def test_spectral_convolution_is_the_per_degree_complex_product() -> None:
    torch.manual_seed(0)
    nlat, nlon, lmax, mmax, kind = GRIDS[2]
    convolution = SpectralConvolution(TriangularSHT(nlat, nlon, lmax, mmax, kind, degree_blocks=3), channels=5)
    sht, isht = dense_pair(nlat, nlon, lmax, mmax, kind)
    x = torch.randn(2, 5, nlat, nlon)
    weight = torch.view_as_complex(convolution.weight)  # (l, in, out)
    expected = isht(torch.einsum("bilm,lio->bolm", sht(x), weight))
    torch.testing.assert_close(convolution(x), expected, rtol=1e-5, atol=1e-5)


def test_a_model_on_the_benchmark_grid_builds_with_the_reference_truncation() -> None:
    model = SFNOConfig(embed_dim=4, num_layers=1, truncation=120).build(2, 2, Grid(121, 240))
    assert model(torch.randn(1, 2, 121, 240)).shape == (1, 2, 121, 240)
