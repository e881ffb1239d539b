"""Models by short name: adding one is one file and one entry in ``ModelConfig``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from torch import nn

from emulator.grid import Grid
from emulator.models.afno import AFNOConfig
from emulator.models.sfno import SFNOConfig

ModelConfig = Annotated[SFNOConfig | AFNOConfig, Field(discriminator="name")]


def build_model(config: SFNOConfig | AFNOConfig, in_channels: int, out_channels: int, grid: Grid) -> nn.Module:
    """The network named by ``config.name``, for ``grid``, in and out channel counts."""
    return config.build(in_channels, out_channels, grid)


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
