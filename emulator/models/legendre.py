"""Real spherical harmonic transforms that skip the zeros a dense Legendre transform multiplies.

The quadrature-weighted associated Legendre matrices are torch-harmonics'
(``RealSHT.weights`` and ``InverseRealSHT.pct``); only their application differs:

* parity: on a grid symmetric about the equator ``P_l^m(-mu) = (-1)^(l+m) P_l^m(mu)``,
  so a sum over all latitudes is a sum over one hemisphere of the symmetric part
  (``l + m`` even) or the antisymmetric part (``l + m`` odd) of the field: half the work;
* triangle: ``P_l^m = 0`` for ``l < m``, so orders are taken in blocks, each of which
  skips the degrees below its first order.

Coefficients are complex and degree-major, ``(lmax, mmax, batch, channels)``: the
layout in which a per-degree channel mixing is one batched matrix product.
Entries with ``m > l`` are zero, and synthesis relies on it.
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
    """Orders ``start <= m < stop`` and the degrees ``l = m + parity + 2k`` they need."""

    start: int
    stop: int
    parity: int
    lmax: int

    @property
    def depth(self) -> int:
        """Degrees per order, enough for the block's first (largest) column."""
        return max(0, (self.lmax - self.start - self.parity + 1) // 2)

    def degrees(self) -> np.ndarray:
        """``(orders, depth)`` degrees; ``lmax`` or more marks padding."""
        orders = np.arange(self.start, self.stop)[:, None]
        return orders + self.parity + 2 * np.arange(self.depth)[None, :]


def block_edges(size: int, count: int) -> list[int]:
    """Edges of ``count`` near-equal blocks of ``range(size)`` (fewer when ``size`` is smaller)."""
    return sorted({int(edge) for edge in np.linspace(0, size, min(count, size) + 1).round()})


def order_blocks(lmax: int, mmax: int, count: int) -> list[OrderBlock]:
    """``count`` blocks of orders (fewer when ``mmax`` is smaller) for parity 0, then for parity 1."""
    edges = block_edges(mmax, count)
    blocks = [OrderBlock(int(start), int(stop), parity, lmax) for parity in (0, 1) for start, stop in pairwise(edges)]
    return [block for block in blocks if block.depth > 0]


class FoldedSHT(nn.Module):
    """``analysis``: grid -> degree-major coefficients; ``synthesis``: the inverse.

    Equal to torch-harmonics' ``RealSHT``/``InverseRealSHT`` with the same
    arguments to float rounding (tested), on any grid symmetric about the equator.
    """

    def __init__(self, nlat: int, nlon: int, lmax: int, mmax: int, grid: str, blocks: int = 4) -> None:
        super().__init__()
        dense = RealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid)
        lmax, mmax = dense.lmax, dense.mmax  # as torch-harmonics clamps them
        if mmax > lmax:
            raise ValueError(f"mmax {mmax} above lmax {lmax}")
        self.nlat, self.nlon, self.lmax, self.mmax = nlat, nlon, lmax, mmax
        self.hemisphere = (nlat + 1) // 2  # rows from the north pole to the equator
        analysis = dense.weights.double()[..., : self.hemisphere].clone()  # (m, l, lat)
        if nlat % 2:
            analysis[..., -1] *= 0.5  # the equator row is its own mirror image, counted twice
        synthesis = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid=grid).pct.double()  # (m, lat, l)
        synthesis = synthesis[:, : self.hemisphere, :]
        self.blocks = order_blocks(lmax, mmax, blocks)
        # synthesis gathers padding from the row (l=0, m=mmax-1), zero as m > l; with one order there is none
        gathers: list[np.ndarray] = []
        positions, offset = np.full((lmax, mmax), -1), 0
        for block in self.blocks:
            degrees = block.degrees()
            valid = degrees < lmax
            orders = np.broadcast_to(np.arange(block.start, block.stop)[:, None], degrees.shape)
            clipped = torch.as_tensor(np.where(valid, degrees, 0))
            mask = torch.as_tensor(valid, dtype=torch.float64)
            rows = torch.arange(block.start, block.stop)[:, None]
            forward = analysis[rows, clipped] * mask[..., None]  # (orders, depth, hemisphere)
            inverse = synthesis[rows, :, clipped].transpose(1, 2) * mask[:, None, :]  # (orders, hemisphere, depth)
            self.register_buffer(f"forward_{len(gathers)}", forward.float(), persistent=False)
            self.register_buffer(f"inverse_{len(gathers)}", inverse.float(), persistent=False)
            gathers.append(np.where(valid, degrees * mmax + orders, mmax - 1).ravel())
            positions[degrees[valid], orders[valid]] = offset + np.flatnonzero(valid.ravel())
            offset += valid.size
        self.synthesis_rows: torch.Tensor
        self.analysis_rows: torch.Tensor
        self.mirror: torch.Tensor
        self.register_buffer("synthesis_rows", torch.as_tensor(np.concatenate(gathers)), persistent=False)
        analysis_rows = np.where(positions < 0, offset, positions).ravel()  # offset: a zero row appended
        self.register_buffer("analysis_rows", torch.as_tensor(analysis_rows), persistent=False)
        self.register_buffer("mirror", torch.arange(nlat - 1, nlat - 1 - self.hemisphere, -1), persistent=False)
        self.order_splits = tuple(self._order_splits(parity) for parity in (0, 1))
        self.index_in_parity = [sum(o.parity == b.parity for o in self.blocks[:i]) for i, b in enumerate(self.blocks)]

    def _order_splits(self, parity: int) -> list[int]:
        """Sizes that split the ``mmax`` orders into the blocks of ``parity`` and the orders after them."""
        sizes = [block.stop - block.start for block in self.blocks if block.parity == parity]
        return [*sizes, self.mmax - sum(sizes)] if sum(sizes) < self.mmax else sizes

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, nlat, nlon)`` real -> ``(lmax, mmax, batch, channels)`` complex."""
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
            torch.bmm(weights, parts[block.parity][index]).view(-1, columns)
            for block, weights, index in zip(self.blocks, self._weights("forward"), self.index_in_parity, strict=True)
        ]
        rows = torch.cat([*products, x.new_zeros(1, columns)]).index_select(0, self.analysis_rows)
        return torch.view_as_complex(rows.view(self.lmax, self.mmax, batch, channels, 2))

    def synthesis(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``(lmax, mmax, batch, channels)`` complex, zero where ``m > l`` -> ``(batch, channels, nlat, nlon)``."""
        batch, channels = coefficients.shape[-2:]
        columns = 2 * batch * channels
        rows = torch.view_as_real(coefficients).reshape(-1, columns)
        gathered = rows.index_select(0, self.synthesis_rows)
        values = gathered.split([(block.stop - block.start) * block.depth for block in self.blocks])
        parts: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for block, weights, value in zip(self.blocks, self._weights("inverse"), values, strict=True):
            parts[block.parity].append(torch.bmm(weights, value.view(block.stop - block.start, block.depth, -1)))
        even, odd = (self._all_orders(part, gathered) for part in parts)
        north, south = even + odd, (even - odd)[:, : self.nlat - self.hemisphere].flip(1)
        field = torch.cat([north, south], dim=1).view(self.mmax, self.nlat, batch, channels, 2)
        spectrum = torch.view_as_complex(field).permute(2, 3, 1, 0).contiguous()
        return torch.fft.irfft(spectrum, n=self.nlon, dim=-1, norm="forward")

    def _weights(self, kind: str) -> list[torch.Tensor]:
        return [getattr(self, f"{kind}_{index}") for index in range(len(self.blocks))]

    def _all_orders(self, part: list[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        """The blocks of one parity as ``(mmax, hemisphere, columns)``; the last orders may have none of it."""
        covered = sum(len(product) for product in part)
        missing = rows.new_zeros(self.mmax - covered, self.hemisphere, rows.shape[-1])
        return torch.cat([*part, missing]) if covered < self.mmax else torch.cat(part)
