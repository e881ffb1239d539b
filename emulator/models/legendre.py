"""Real spherical harmonic transforms that skip the zero triangle a dense Legendre transform multiplies.

The quadrature-weighted associated Legendre matrices are torch-harmonics'
(``RealSHT.weights`` and ``InverseRealSHT.pct``); only their application differs.
``P_l^m = 0`` for ``l < m``, so orders are taken in blocks, each of which skips the
degrees below its first order: one batched matrix product per block and direction.

Coefficients are complex and *packed* degree-major: blocks of degrees
``start <= l < stop``, each ``(stop - start, orders, batch, channels)`` with the
``orders = min(stop, mmax)`` orders its largest degree has, flattened to
``(rows, batch, channels)``. In this layout a per-degree channel mixing is one
batched matrix product per block with no copies. Entries with ``m > l`` are zero.

Folding by parity about the equator would halve the Legendre products, but on a CPU
the adds, subtracts and flips it needs cost as much as it saves (measured in
``benchmarks/RESULTS.md``), so the transforms do not fold.
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
    """Orders ``start <= m < stop`` and, for each, the degrees ``l = m + k``, ``k < lmax - start``."""

    start: int
    stop: int
    lmax: int

    @property
    def orders(self) -> int:
        return self.stop - self.start

    @property
    def depth(self) -> int:
        """Degrees per order, enough for the block's first (largest) column."""
        return self.lmax - self.start

    def degrees(self) -> np.ndarray:
        """``(orders, depth)`` degrees; ``lmax`` or more marks padding."""
        return np.arange(self.start, self.stop)[:, None] + np.arange(self.depth)[None, :]


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


class TriangularSHT(nn.Module):
    """``analysis``: grid -> packed coefficients; ``synthesis``: the inverse.

    Equal to torch-harmonics' ``RealSHT``/``InverseRealSHT`` with the same
    arguments to float rounding (tested).
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
        self.order_blocks = [OrderBlock(start, stop, lmax) for start, stop in pairwise(block_edges(mmax, order_blocks))]
        self.degree_blocks = [
            DegreeBlock(start, stop, min(stop, mmax)) for start, stop in pairwise(block_edges(lmax, degree_blocks))
        ]
        packed = self._packed_rows()
        self.packed_degrees: torch.Tensor
        self.register_buffer("packed_degrees", torch.as_tensor(np.nonzero(packed >= 0)[0]), persistent=False)
        forward = dense.weights.double()  # (m, l, lat)
        inverse = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid).pct.double()  # (m, lat, l)
        product_row = np.full((lmax, mmax), -1)  # the row of each (l, m) in the analysis products
        gathers, offset = [], 0
        for index, block in enumerate(self.order_blocks):
            degrees = block.degrees()
            orders = np.broadcast_to(np.arange(block.start, block.stop)[:, None], degrees.shape)
            valid = degrees < lmax
            clipped, mask = torch.as_tensor(np.where(valid, degrees, 0)), torch.as_tensor(valid)
            rows = torch.as_tensor(orders[:, :1].copy())
            self.register_buffer(
                f"forward_{index}", (forward[rows, clipped] * mask[..., None]).float(), persistent=False
            )
            synthesis = inverse[rows, :, clipped].transpose(1, 2) * mask[:, None, :]  # (orders, lat, depth)
            self.register_buffer(f"inverse_{index}", synthesis.float(), persistent=False)
            product_row[degrees[valid], orders[valid]] = offset + np.flatnonzero(valid.ravel())
            offset += valid.size
            gathers.append(np.where(valid, packed[clipped, orders], 0).ravel())  # padding: any row, weight 0
        in_packed = packed >= 0
        analysis_rows = np.where(product_row[in_packed] >= 0, product_row[in_packed], offset)  # offset: a zero row
        self.analysis_rows: torch.Tensor
        self.synthesis_rows: torch.Tensor
        self.register_buffer("analysis_rows", torch.as_tensor(analysis_rows), persistent=False)
        self.register_buffer("synthesis_rows", torch.as_tensor(np.concatenate(gathers)), persistent=False)

    def _packed_rows(self) -> np.ndarray:
        """``(lmax, mmax)``: the packed row of each ``(l, m)``, -1 where a block has no such order."""
        packed, offset = np.full((self.lmax, self.mmax), -1), 0
        for block in self.degree_blocks:
            packed[block.start : block.stop, : block.orders] = offset + np.arange(block.rows).reshape(-1, block.orders)
            offset += block.rows
        return packed

    @property
    def degree_sizes(self) -> list[int]:
        """Degrees in each degree block."""
        return [block.stop - block.start for block in self.degree_blocks]

    @property
    def packed_sizes(self) -> list[int]:
        """Rows of each degree block in the packed layout."""
        return [block.rows for block in self.degree_blocks]

    def _matrices(self, direction: str) -> list[torch.Tensor]:
        return [getattr(self, f"{direction}_{index}") for index in range(len(self.order_blocks))]

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, nlat, nlon)`` real -> packed ``(rows, batch, channels)`` complex."""
        batch, channels = x.shape[:2]
        columns = 2 * batch * channels
        spectrum = torch.fft.rfft(x.float(), dim=-1, norm="forward")[..., : self.mmax]
        # permuting complex elements is several times faster than permuting their real pairs
        field = torch.view_as_real(spectrum.permute(3, 2, 0, 1).contiguous()).view(self.mmax, self.nlat, columns)
        orders = field.split([block.orders for block in self.order_blocks])
        products = [
            torch.bmm(matrix, part).view(-1, columns)
            for matrix, part in zip(self._matrices("forward"), orders, strict=True)
        ]
        rows = torch.cat([*products, x.new_zeros(1, columns)]).index_select(0, self.analysis_rows)
        return torch.view_as_complex(rows.view(-1, batch, channels, 2))

    def synthesis(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Packed ``(rows, batch, channels)`` complex -> ``(batch, channels, nlat, nlon)``."""
        batch, channels = coefficients.shape[1:]
        columns = 2 * batch * channels
        gathered = torch.view_as_real(coefficients).reshape(-1, columns).index_select(0, self.synthesis_rows)
        values = gathered.split([block.orders * block.depth for block in self.order_blocks])
        orders = [
            torch.bmm(matrix, value.view(block.orders, block.depth, columns))
            for matrix, block, value in zip(self._matrices("inverse"), self.order_blocks, values, strict=True)
        ]
        # every order the inverse FFT takes, the ones above mmax as zeros: padding them there costs another copy
        frequencies = self.nlon // 2 + 1
        orders.append(gathered.new_zeros(frequencies - self.mmax, self.nlat, columns))
        spectrum = torch.view_as_complex(torch.cat(orders).view(frequencies, self.nlat, batch, channels, 2))
        # the inverse FFT copies its input anyway: handed the permuted view, it does the permutation in that copy
        grid = torch.fft.irfft(spectrum.permute(2, 3, 1, 0), n=self.nlon, dim=-1, norm="forward")
        return grid.contiguous()
