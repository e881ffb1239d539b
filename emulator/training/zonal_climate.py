"""The zonal-mean part of the climate loss: where the chains' jets are and how much they vary.

Band power does not see a jet in the wrong place, nor a zonal-mean flow that varies too
little from day to day (the annular variability that much of the built-in world's
power at degrees 1-3 is), nor a mean meridional circulation a non-divergent world
cannot have. The target file's ``zonal_mean (..., channel, latitude)`` (``emulator
world-climate``) gives, per channel and latitude, the climate's mean ``T`` and
variance ``D^2`` over its days and years. The chains' states give the mean ``m`` of their
zonal mean's departure from ``T`` and its variance ``v`` about the running mean ``m_r``
of ``m``, all in the normalized units the model is trained in; with the running mean
``v_r`` of ``v`` the term is the area-weighted mean of ``m_r * m + (v_r - D^2) * v``,
whose gradient is that of ``(m^2 + (v - D^2)^2) / 2`` with the running estimates in
place of the noisy ones. The variance is about ``m_r``: about the few states' own mean
it would be short by a share of ``1 / chains`` at least, and about ``T`` it would
reward moving the mean away while the variance is short.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.training.climate_target import target_variable


def read_zonal_target(path: str, channels: list[str], grid: Grid, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(channel, lat)`` mean and standard deviation of the target file's daily zonal means, physical units.

    Errors name the file and the config ``key`` that gave it.
    """
    zonal = target_variable(path, "zonal_mean", key)
    missing = next((name for name in channels if name not in list(zonal["channel"].values)), None)
    if missing is not None:
        raise EmulatorError(f"{key}: {path}: zonal_mean has no channel {missing!r}")
    latitudes = zonal["latitude"].values
    if latitudes.shape != (grid.nlat,) or not np.allclose(latitudes, grid.latitudes, atol=1e-3):
        raise EmulatorError(f"{key}: {path}: zonal_mean's latitudes are not the model grid's ({grid.nlat}, N to S)")
    daily = zonal.sel(channel=channels).transpose(..., "channel", "latitude")
    samples = [dim for dim in daily.dims if dim not in ("channel", "latitude")]
    moments = [daily.mean(samples), daily.std(samples)]
    mean, std = (torch.from_numpy(moment.values).double() for moment in moments)
    return mean, std


class ZonalMoments(nn.Module):
    """Normalized states -> ``(2, channel, lat)``: the mean of their zonal mean's departure from the target's and
    its variance about a given centre; see the module docstring."""

    def __init__(self, target: str, key: str, normalizer: Normalizer, grid: Grid) -> None:
        super().__init__()
        mean, std = read_zonal_target(target, list(normalizer.channels), grid, key)
        channel_mean, channel_std = (torch.from_numpy(getattr(normalizer, name))[:, None] for name in ("mean", "std"))
        weights = torch.from_numpy(grid.area_weights)
        self.weights: torch.Tensor
        self.target: torch.Tensor
        self.target_variance: torch.Tensor
        self.register_buffer("weights", (weights / weights.sum()).float(), persistent=False)
        self.register_buffer("target", ((mean - channel_mean) / channel_std).float(), persistent=False)
        self.register_buffer("target_variance", (std / channel_std).square().float(), persistent=False)
        self.channel_std: torch.Tensor
        self.register_buffer("channel_std", channel_std[:, 0].float(), persistent=False)

    def forward(self, states: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        return self.moments(states.float().mean(dim=-1), centre)

    def moments(self, zonal: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
        """``(sample, channel, lat)`` normalized zonal means -> ``(2, channel, lat)``: the mean departure from the
        target's mean, and the variance about ``centre`` (a departure; ``None``: about the samples' own mean)."""
        departure = zonal - self.target
        offset = departure.mean(dim=0)
        centre = offset.detach() if centre is None else centre
        return torch.stack([offset, (departure - centre).square().mean(dim=0)])

    def summary(self, moments: torch.Tensor) -> torch.Tensor:
        """``(2, channel)``: the area-weighted rms offset (physical units) and the rms spread over the target's."""
        offset, variance = moments[0], moments[1]
        rms_offset = (offset.square() * self.weights).sum(dim=-1).sqrt() * self.channel_std
        spread = ((variance * self.weights).sum(dim=-1) / (self.target_variance * self.weights).sum(dim=-1)).sqrt()
        return torch.stack([rms_offset, spread])

    def term(self, current: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
        """The area-weighted mean, over channels and latitudes, of ``push * current``."""
        push = running - torch.stack([torch.zeros_like(self.target_variance), self.target_variance])
        return (push * current * self.weights).sum(dim=-1).mean()
