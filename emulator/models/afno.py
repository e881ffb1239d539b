"""Adaptive Fourier Neural Operator, as in FourCastNet (Pathak et al., 2022; Guibas et al., 2021).

``x (batch, in_channels, lat, lon) -> y (batch, out_channels, lat, lon)``, normalized.
The grid is cut into ``patch x patch`` tokens (latitude padded at the south to a
whole number of patches). Each block mixes tokens globally in Fourier space::

    X = FFT2(tokens)                                    # over the patch grid
    X' = softshrink(W2 . GELU(W1 . X + b1) + b2, lam)   # block-diagonal complex MLP per mode
    tokens <- tokens + IFFT2(X')                        # modes beyond the kept fraction are zero
    tokens <- tokens + MLP(LayerNorm(tokens))

The complex weights act on ``num_blocks`` channel blocks independently
(block-diagonal), and soft-thresholding sparsifies the modes.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from emulator.grid import Grid
from emulator.models.samples import sample_by_sample_on_cpu
from emulator.schema import Strict


class AFNOConfig(Strict):
    name: Literal["afno"] = "afno"
    patch_size: int = Field(4, gt=0)
    embed_dim: int = Field(64, gt=0)
    num_layers: int = Field(4, gt=0)
    num_blocks: int = Field(8, gt=0)
    mlp_ratio: float = Field(2.0, gt=0)
    sparsity_threshold: float = Field(0.01, ge=0)
    hard_thresholding_fraction: float = Field(1.0, gt=0, le=1)

    def build(self, in_channels: int, out_channels: int, grid: Grid) -> AFNO:
        if self.embed_dim % self.num_blocks:
            raise ValueError(f"afno: embed_dim {self.embed_dim} is not a multiple of num_blocks {self.num_blocks}")
        return AFNO(self, in_channels, out_channels, grid)


class FourierTokenMixer(nn.Module):
    """The AFNO filter: block-diagonal complex MLP on the 2-D Fourier modes of the token grid."""

    def __init__(self, width: int, config: AFNOConfig) -> None:
        super().__init__()
        self.blocks, self.block_size = config.num_blocks, width // config.num_blocks
        self.threshold, self.keep = config.sparsity_threshold, config.hard_thresholding_fraction
        scale = 0.02
        shape = (2, self.blocks, self.block_size, self.block_size)
        self.w1 = nn.Parameter(scale * torch.randn(shape))
        self.b1 = nn.Parameter(scale * torch.randn(2, self.blocks, self.block_size))
        self.w2 = nn.Parameter(scale * torch.randn(shape))
        self.b2 = nn.Parameter(scale * torch.randn(2, self.blocks, self.block_size))

    def _complex_linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        w = torch.complex(weight[0], weight[1])
        return torch.einsum("...bi,bio->...bo", x, w) + torch.complex(bias[0], bias[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is ``(batch, h, w, channels)`` real; returns the same shape."""
        batch, h, w, channels = x.shape
        dtype = x.dtype
        modes = torch.fft.rfft2(x.float(), dim=(1, 2), norm="ortho")
        modes = modes.reshape(batch, h, w // 2 + 1, self.blocks, self.block_size)
        kept_h = max(1, math.ceil(h / 2 * self.keep))
        kept_w = max(1, math.ceil((w // 2 + 1) * self.keep))
        rows = torch.cat([torch.arange(kept_h), torch.arange(h - kept_h + 1, h)]).unique().to(x.device)
        selected = modes[:, rows, :kept_w]
        hidden = self._complex_linear(selected, self.w1, self.b1)
        hidden = torch.complex(F.gelu(hidden.real), F.gelu(hidden.imag))
        out = self._complex_linear(hidden, self.w2, self.b2)
        out = torch.complex(F.softshrink(out.real, self.threshold), F.softshrink(out.imag, self.threshold))
        filtered = torch.zeros_like(modes)
        filtered[:, rows, :kept_w] = out
        filtered = filtered.reshape(batch, h, w // 2 + 1, channels)
        return torch.fft.irfft2(filtered, s=(h, w), dim=(1, 2), norm="ortho").to(dtype)


class AFNOBlock(nn.Module):
    def __init__(self, width: int, config: AFNOConfig) -> None:
        super().__init__()
        hidden = int(width * config.mlp_ratio)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.mixer = FourierTokenMixer(width, config)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AFNO(nn.Module):
    """Patch embedding, ``num_layers`` AFNO blocks, linear head back to the grid."""

    def __init__(self, config: AFNOConfig, in_channels: int, out_channels: int, grid: Grid) -> None:
        super().__init__()
        self.config, self.grid, self.out_channels = config, grid, out_channels
        p = config.patch_size
        if grid.nlon % p:
            raise ValueError(f"afno: nlon {grid.nlon} is not a multiple of patch_size {p}")
        self.pad_lat = (-grid.nlat) % p
        self.tokens = ((grid.nlat + self.pad_lat) // p, grid.nlon // p)
        self.embed = nn.Conv2d(in_channels, config.embed_dim, kernel_size=p, stride=p)
        self.position = nn.Parameter(0.02 * torch.randn(1, *self.tokens, config.embed_dim))
        self.blocks = nn.ModuleList(AFNOBlock(config.embed_dim, config) for _ in range(config.num_layers))
        self.head = nn.Linear(config.embed_dim, out_channels * p * p)

    @sample_by_sample_on_cpu
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.grid.shape:
            raise ValueError(f"AFNO built for grid {self.grid.shape}, got input of shape {tuple(x.shape)}")
        p, (h, w) = self.config.patch_size, self.tokens
        x = F.pad(x, (0, 0, 0, self.pad_lat))
        tokens = self.embed(x).permute(0, 2, 3, 1) + self.position
        for block in self.blocks:
            tokens = block(tokens)
        patches = self.head(tokens).reshape(x.shape[0], h, w, self.out_channels, p, p)
        y = patches.permute(0, 3, 1, 4, 2, 5).reshape(x.shape[0], self.out_channels, h * p, w * p)
        return y[..., : self.grid.nlat, :]
