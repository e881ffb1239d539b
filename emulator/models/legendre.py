"""Real spherical harmonic transforms that skip the zeros a dense Legendre transform multiplies.

The quadrature-weighted associated Legendre matrices are torch-harmonics'
(``RealSHT.weights`` and ``InverseRealSHT.pct``); only their application differs:

* triangle: ``P_l^m = 0`` for ``l < m``, so orders are taken in blocks, each of which
  skips the degrees below its first order;
* parity (analysis): on a grid symmetric about the equator
  ``P_l^m(-mu) = (-1)^(l+m) P_l^m(mu)``, so the sum over all latitudes is a sum over one
  hemisphere of the symmetric part (``l + m`` even) or the antisymmetric part (``l + m``
  odd) of the field: half the products. Synthesis does not fold: unfolding its output
  (add, subtract, flip, concatenate) costs more on a CPU than the products it saves.

Coefficients are complex and *packed* degree-major: blocks of degrees
``start <= l < stop``, each ``(stop - start, orders, batch, channels)`` with the
``orders = min(stop, mmax)`` orders its largest degree has, flattened to
``(rows, batch, channels)``. In this layout a per-degree channel mixing is one
batched matrix product per block with no copies. Entries with ``m > l`` are zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from torch import nn
from torch_harmonics import InverseRealSHT, RealSHT


@dataclass(frozen=True)
class OrderBlock:
    """Orders ``start <= m < stop`` and, for each, the degrees ``l = m + parity + step k``."""

    start: int
    stop: int
    parity: int
    step: int
    lmax: int

    @property
    def depth(self) -> int:
        """Degrees per order, enough for the block's first (largest) column."""
        return max(0, -(-(self.lmax - self.start - self.parity) // self.step))

    @property
    def orders(self) -> int:
        return self.stop - self.start

    def degrees(self) -> np.ndarray:
        """``(orders, depth)`` degrees; ``lmax`` or more marks padding."""
        orders = np.arange(self.start, self.stop)[:, None]
        return orders + self.parity + self.step * np.arange(self.depth)[None, :]


@dataclass(frozen=True)
class DegreeBlock:
    """Degrees ``start <= l < stop`` with the orders ``m < orders`` the largest of them has."""

    start: int
    stop: int
    orders: int

    @property
    def rows(self) -> int:
        return (self.stop - self.start) * self.orders


def block_edges(size: int, count: int) -> list[int]:
    """Edges of ``count`` near-equal blocks of ``range(size)`` (fewer when ``size`` is smaller)."""
    return sorted({int(edge) for edge in np.linspace(0, size, min(count, size) + 1).round()})


def order_blocks(lmax: int, mmax: int, count: int, folded: bool) -> list[OrderBlock]:
    """``count`` blocks of orders (fewer when ``mmax`` is smaller); folded: for parity 0, then 1."""
    edges = block_edges(mmax, count)
    parities, step = ((0, 1), 2) if folded else ((0,), 1)
    blocks = [OrderBlock(start, stop, parity, step, lmax) for parity in parities for start, stop in pairwise(edges)]
    return [block for block in blocks if block.depth > 0]


class FoldedSHT(nn.Module):
    """``analysis``: grid -> packed coefficients; ``synthesis``: the inverse.

    Equal to torch-harmonics' ``RealSHT``/``InverseRealSHT`` with the same
    arguments to float rounding (tested), on any grid symmetric about the equator.
    """

    def __init__(
        self, nlat: int, nlon: int, lmax: int, mmax: int, grid: str, order_blocks: int = 4, degree_blocks: int = 4
    ) -> None:
        super().__init__()
        dense = RealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid)
        lmax, mmax = dense.lmax, dense.mmax  # as torch-harmonics clamps them
        if mmax > lmax:
            raise ValueError(f"mmax {mmax} above lmax {lmax}")
        self.nlat, self.nlon, self.lmax, self.mmax = nlat, nlon, lmax, mmax
        self.hemisphere = (nlat + 1) // 2  # rows from the north pole to the equator
        self.degree_blocks = [
            DegreeBlock(start, stop, min(stop, mmax)) for start, stop in pairwise(block_edges(lmax, degree_blocks))
        ]
        packed = self._packed_rows()
        self.packed_degrees: torch.Tensor
        self.register_buffer("packed_degrees", torch.as_tensor(np.nonzero(packed >= 0)[0]), persistent=False)
        self._analysis_tables(dense.weights.double(), packed, order_blocks)
        inverse = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid).pct.double()  # (m, lat, l)
        self._synthesis_tables(inverse, packed, order_blocks)

    def _packed_rows(self) -> np.ndarray:
        """``(lmax, mmax)``: the packed row of each ``(l, m)``, -1 where a block has no such order."""
        packed, offset = np.full((self.lmax, self.mmax), -1), 0
        for block in self.degree_blocks:
            packed[block.start : block.stop, : block.orders] = offset + np.arange(block.rows).reshape(-1, block.orders)
            offset += block.rows
        return packed

    def _analysis_tables(self, weights: torch.Tensor, packed: np.ndarray, count: int) -> None:
        """Folded ``(orders, depth, hemisphere)`` matrices and the gather of their rows into packed order."""
        weights = weights[..., : self.hemisphere].clone()  # (m, l, lat)
        if self.nlat % 2:
            weights[..., -1] *= 0.5  # the equator row is its own mirror image, counted twice
        self.analysis_blocks = order_blocks(self.lmax, self.mmax, count, folded=True)
        product_row, offset = np.full((self.lmax, self.mmax), -1), 0  # of each (l, m) in the products
        for index, block in enumerate(self.analysis_blocks):
            degrees, orders, valid = self._grid_of(block)
            order = torch.as_tensor(orders[:, :1].copy())
            matrices = weights[order, torch.as_tensor(np.where(valid, degrees, 0))] * torch.as_tensor(valid)[..., None]
            self.register_buffer(f"forward_{index}", matrices.float(), persistent=False)
            product_row[degrees[valid], orders[valid]] = offset + np.flatnonzero(valid.ravel())
            offset += valid.size
        in_packed = packed >= 0
        gather = np.where(product_row[in_packed] >= 0, product_row[in_packed], offset)  # offset: a zero row appended
        self.analysis_rows: torch.Tensor
        self.register_buffer("analysis_rows", torch.as_tensor(gather), persistent=False)
        self.mirror: torch.Tensor
        self.register_buffer(
            "mirror", torch.arange(self.nlat - 1, self.nlat - 1 - self.hemisphere, -1), persistent=False
        )
        self.order_splits = tuple(self._order_splits(parity) for parity in (0, 1))
        self.index_in_parity = [
            sum(other.parity == block.parity for other in self.analysis_blocks[:index])
            for index, block in enumerate(self.analysis_blocks)
        ]

    def _synthesis_tables(self, inverse: torch.Tensor, packed: np.ndarray, count: int) -> None:
        """Unfolded ``(orders, nlat, depth)`` matrices and the gather of packed rows they multiply."""
        self.synthesis_blocks = order_blocks(self.lmax, self.mmax, count, folded=False)
        gathers = []
        for index, block in enumerate(self.synthesis_blocks):
            degrees, orders, valid = self._grid_of(block)
            clipped = np.where(valid, degrees, 0)
            order = torch.as_tensor(orders[:, :1].copy())
            matrices = inverse[order, :, torch.as_tensor(clipped)].transpose(1, 2) * torch.as_tensor(valid)[:, None, :]
            self.register_buffer(f"inverse_{index}", matrices.float(), persistent=False)
            gathers.append(np.where(valid, packed[clipped, orders], 0).ravel())  # padding: any row, weight 0
        self.synthesis_rows: torch.Tensor
        self.register_buffer("synthesis_rows", torch.as_tensor(np.concatenate(gathers)), persistent=False)

    def _grid_of(self, block: OrderBlock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The block's ``(orders, depth)`` degrees, orders and mask of degrees below ``lmax``."""
        degrees = block.degrees()
        orders = np.broadcast_to(np.arange(block.start, block.stop)[:, None], degrees.shape)
        return degrees, orders, degrees < self.lmax

    def _order_splits(self, parity: int) -> list[int]:
        """Sizes that split the ``mmax`` orders into the blocks of ``parity`` and the orders after them."""
        sizes = [block.orders for block in self.analysis_blocks if block.parity == parity]
        return [*sizes, self.mmax - sum(sizes)] if sum(sizes) < self.mmax else sizes

    @property
    def packed_sizes(self) -> list[int]:
        """Rows of each degree block in the packed layout."""
        return [block.rows for block in self.degree_blocks]

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, nlat, nlon)`` real -> packed ``(rows, batch, channels)`` complex."""
        batch, channels = x.shape[:2]
        columns = 2 * batch * channels
        spectrum = torch.fft.rfft(x.float(), dim=-1, norm="forward")[..., : self.mmax]
        # permuting complex elements is several times faster than permuting their real pairs
        field = torch.view_as_real(spectrum.permute(3, 2, 0, 1).contiguous()).view(self.mmax, self.nlat, columns)
        north, south = field[:, : self.hemisphere], field.index_select(1, self.mirror)
        parts = [
            part.split(splits) for part, splits in zip((north + south, north - south), self.order_splits, strict=True)
        ]
        products = [
            torch.bmm(getattr(self, f"forward_{index}"), parts[block.parity][position]).view(-1, columns)
            for index, (block, position) in enumerate(zip(self.analysis_blocks, self.index_in_parity, strict=True))
        ]
        rows = torch.cat([*products, x.new_zeros(1, columns)]).index_select(0, self.analysis_rows)
        return torch.view_as_complex(rows.view(-1, batch, channels, 2))

    def synthesis(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Packed ``(rows, batch, channels)`` complex -> ``(batch, channels, nlat, nlon)``."""
        batch, channels = coefficients.shape[1:]
        columns = 2 * batch * channels
        gathered = torch.view_as_real(coefficients).reshape(-1, columns).index_select(0, self.synthesis_rows)
        values = gathered.split([block.orders * block.depth for block in self.synthesis_blocks])
        field = torch.cat(
            [
                torch.bmm(getattr(self, f"inverse_{index}"), value.view(block.orders, block.depth, columns))
                for index, (block, value) in enumerate(zip(self.synthesis_blocks, values, strict=True))
            ]
        )
        spectrum = torch.view_as_complex(field.view(self.mmax, self.nlat, batch, channels, 2))
        # the inverse FFT copies its input anyway: handed the permuted view, it does the permutation in that copy
        grid = torch.fft.irfft(spectrum.permute(2, 3, 1, 0), n=self.nlon, dim=-1, norm="forward")
        return grid.contiguous()
