"""Spherical Fourier Neural Operator (Bonev et al., 2023) on torch-harmonics transforms.

``x (batch, in_channels, lat, lon) -> y (batch, out_channels, lat, lon)``, both
normalized. Each block mixes globally on the sphere and pointwise in channels::

    h = ISHT(W_l . SHT(x)) + A x        # spectral convolution, weights per degree l;
                                         # the inner skip A x is optional
    y = x + MLP(norm(h))                 # pointwise MLP, residual path

The transforms are torch-harmonics' quadrature and Legendre matrices applied by
:class:`~emulator.models.legendre.TriangularSHT`, which skips the zero triangle
``m > l`` that the dense ``RealSHT`` multiplies.

The spectral weights are complex matrices per total wavenumber ``l`` ("linear"
weights, a Driscoll-Healy convolution), shared across orders ``m``, so a block is
equivariant to rotations about the polar axis and the same weights apply on any
grid whose transform resolves the truncation. The position embedding is a learned
series in ``cos(k colatitude)``, so it too is defined on any grid.
"""

from __future__ import annotations

import math
from typing import Literal, cast

import torch
from pydantic import Field
from torch import nn

from emulator.grid import Grid
from emulator.models.legendre import TriangularSHT
from emulator.models.samples import sample_by_sample_on_cpu
from emulator.schema import Strict


class SFNOConfig(Strict):
    name: Literal["sfno"] = "sfno"
    embed_dim: int = Field(64, gt=0)
    num_layers: int = Field(4, gt=0)
    mlp_ratio: float = Field(2.0, gt=0)
    truncation: int | None = Field(
        None, gt=0, description="degrees kept (non-inclusive, at most nlat); None: the grid's alias-free limit"
    )
    normalization: Literal["none", "instance"] = "none"
    latitude_modes: int = Field(8, ge=0, description="cos(k colatitude) terms of the position embedding")
    inner_skip: bool = Field(True, description="a 1x1 channel mixing added to each spectral convolution")
    hidden_encoder: bool = Field(
        True, description="a hidden GELU layer (embed_dim x mlp_ratio) in the encoder and decoder; off: one 1x1 each"
    )

    def build(self, in_channels: int, out_channels: int, grid: Grid) -> SFNO:
        return SFNO(self, in_channels, out_channels, grid)


def pointwise(in_channels: int, out_channels: int, gain: float = 1.0, bias: bool = True) -> nn.Conv2d:
    """A channel mixing at every grid point (1x1 convolution), variance ``gain / in_channels``."""
    layer = nn.Conv2d(in_channels, out_channels, 1, bias=bias)
    nn.init.normal_(layer.weight, std=math.sqrt(gain / in_channels))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ChannelMLP(nn.Sequential):
    """``in -> hidden -> GELU -> out`` at every grid point: two 1x1 convolutions.

    On a CPU without autograd each sample runs as matrix products over chunks of
    ``chunk_points`` grid points, so that the hidden features are never allocated
    whole: there a fresh 30 MB tensor costs as much as the products that fill it
    (page faults). A sample's chunks do not depend on the batch, so neither do its
    bits. Measured in ``benchmarks/RESULTS.md``: that forward pass beats the
    convolutions' on the benchmark grids, while their backward is faster for training.
    """

    chunk_points = 2048

    def __init__(self, in_channels: int, hidden: int, out_channels: int, out_gain: float = 1.0) -> None:
        super().__init__(pointwise(in_channels, hidden, gain=2.0), nn.GELU(), pointwise(hidden, out_channels, out_gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        expand, activation, contract = self
        into_hidden, hidden_bias = cast(torch.Tensor, expand.weight).flatten(1).T, cast(torch.Tensor, expand.bias)
        out_of_hidden, out_bias = cast(torch.Tensor, contract.weight).flatten(1), cast(torch.Tensor, contract.bias)

        def layers(points: torch.Tensor) -> torch.Tensor:  # (in, points) -> (out, points)
            hidden = activation(torch.addmm(hidden_bias, points.T, into_hidden))  # (points, hidden)
            return torch.addmm(out_bias[:, None], out_of_hidden, hidden.T)

        samples = [
            torch.cat([layers(points) for points in sample.split(self.chunk_points, dim=1)], dim=1)
            for sample in x.flatten(2)
        ]
        out = samples[0][None] if len(samples) == 1 else torch.stack(samples)  # one sample: no copy
        return out.view(len(x), -1, *x.shape[2:])


def channel_mlp(in_channels: int, hidden: int, out_channels: int, hidden_layer: bool) -> nn.Module:
    """``in -> hidden -> GELU -> out`` at every grid point, or one layer ``in -> out``."""
    if not hidden_layer:
        return pointwise(in_channels, out_channels)
    return ChannelMLP(in_channels, hidden, out_channels)


class SpectralConvolution(nn.Module):
    """``ISHT(W_l . SHT(x))`` with a complex ``(in, out)`` matrix per degree ``l``.

    The mixing runs over blocks of degrees, each taking only the orders ``m <= l``
    its degrees have, as one complex batched matrix product per block.
    """

    def __init__(self, transform: TriangularSHT, channels: int) -> None:
        super().__init__()
        self.transform = transform
        scale = math.sqrt(1.0 / channels)
        self.weight = nn.Parameter(scale * torch.randn(transform.lmax, channels, channels, 2))  # (l, in, out, re/im)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transforms and the complex contraction run in fp32, also under autocast."""
        dtype = x.dtype
        with torch.autocast(device_type=x.device.type, enabled=False):
            coefficients = self.transform.analysis(x.float())
            return self.transform.synthesis(self.mix(coefficients)).to(dtype)

    def mix(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Packed ``(rows, batch, in)`` -> packed ``(rows, batch, out)``: a ``bmm`` per degree block."""
        batch = coefficients.shape[1]
        weights = torch.view_as_complex(self.weight).split(self.transform.degree_sizes)
        blocks = coefficients.split(self.transform.packed_sizes)
        products = [
            torch.bmm(rows.view(len(weight), block.orders * batch, -1), weight).view(block.rows, batch, -1)
            for block, rows, weight in zip(self.transform.degree_blocks, blocks, weights, strict=True)
        ]
        return torch.cat(products)


class SFNOBlock(nn.Module):
    def __init__(self, transform: TriangularSHT, config: SFNOConfig) -> None:
        super().__init__()
        width, hidden = config.embed_dim, int(config.embed_dim * config.mlp_ratio)
        self.spectral = SpectralConvolution(transform, width)
        self.skip = pointwise(width, width, bias=False) if config.inner_skip else None
        self.norm = nn.InstanceNorm2d(width, affine=True) if config.normalization == "instance" else nn.Identity()
        self.mlp = ChannelMLP(width, hidden, width, out_gain=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.spectral(x)
        if self.skip is not None:
            h = h + self.skip(x)
        return x + self.mlp(self.norm(h))


class SFNO(nn.Module):
    """Encoder, ``num_layers`` spherical blocks, decoder; see the module docstring."""

    def __init__(self, config: SFNOConfig, in_channels: int, out_channels: int, grid: Grid) -> None:
        super().__init__()
        self.config, self.grid = config, grid
        lmax = min(config.truncation or grid.max_degree, grid.nlat)
        mmax = min(lmax, grid.nlon // 2 + 1)
        # measured on two CPU cores: two blocks at lmax 32 (2-3 % faster than one or three),
        # four from lmax 121 on (fewer skip too few zeros, more cost more calls than they save)
        blocks = min(4, -(-lmax // 16))
        transform = TriangularSHT(
            grid.nlat, grid.nlon, lmax=lmax, mmax=mmax, grid=grid.kind, order_blocks=blocks, degree_blocks=blocks
        )
        width, hidden = config.embed_dim, int(config.embed_dim * config.mlp_ratio)
        self.encoder = channel_mlp(in_channels, hidden, width, config.hidden_encoder)
        colatitude = torch.deg2rad(90.0 - torch.as_tensor(grid.latitudes, dtype=torch.float32))
        modes = torch.arange(config.latitude_modes, dtype=torch.float32)
        self.latitude_basis: torch.Tensor
        self.register_buffer("latitude_basis", torch.cos(modes[:, None] * colatitude[None]), persistent=False)
        self.latitude_embedding = nn.Parameter(torch.zeros(width, config.latitude_modes))
        self.blocks = nn.ModuleList(SFNOBlock(transform, config) for _ in range(config.num_layers))
        self.decoder = channel_mlp(width, hidden, out_channels, config.hidden_encoder)

    @sample_by_sample_on_cpu
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.grid.shape:
            raise ValueError(f"SFNO built for grid {self.grid.shape}, got input of shape {tuple(x.shape)}")
        h = self.encoder(x) + (self.latitude_embedding @ self.latitude_basis)[None, :, :, None]
        for block in self.blocks:
            h = block(h)
        return self.decoder(h)
