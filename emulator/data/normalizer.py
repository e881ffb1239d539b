"""Per-channel normalization: ``z = (x - mean) / std``, and the tendency scale.

``tendency_std`` is the standard deviation of the one-step change
``x(t + dt) - x(t)``; a residual stepper predicts the tendency in those units,
so that ``z(t + dt) = z(t) + (tendency_std / std) * network_output``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from emulator.errors import EmulatorError
from emulator.files import atomic_path

FIELDS = ("mean", "std", "tendency_std")


@dataclass(frozen=True)
class Normalizer:
    channels: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    tendency_std: np.ndarray

    def __post_init__(self) -> None:
        for name in FIELDS:
            values = getattr(self, name)
            if values.shape != (len(self.channels),):
                raise EmulatorError(f"normalizer: {name} has shape {values.shape}, expected ({len(self.channels)},)")
        for channel, std in zip(self.channels, self.std, strict=True):
            if not np.isfinite(std) or std <= 0:
                raise EmulatorError(
                    f"normalizer: channel {channel!r} has standard deviation {std}: it is constant or invalid"
                )

    def subset(self, channels: list[str]) -> Normalizer:
        """The statistics of ``channels``, in that order."""
        index = [self.channels.index(channel) for channel in channels]
        return Normalizer(tuple(channels), *(getattr(self, name)[index] for name in FIELDS))

    def _broadcast(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(getattr(self, name), dtype=like.dtype, device=like.device)[:, None, None]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., channel, lat, lon)`` physical -> normalized."""
        return (x - self._broadcast("mean", x)) / self._broadcast("std", x)

    def normalize_(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`normalize` in place, for tensors freshly read (no copy)."""
        return x.sub_(self._broadcast("mean", x)).div_(self._broadcast("std", x))

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self._broadcast("std", z) + self._broadcast("mean", z)

    def residual_scale(self) -> np.ndarray:
        """``tendency_std / std`` per channel: the size of one normalized step."""
        return self.tendency_std / self.std

    def to_json(self) -> str:
        return json.dumps({"channels": list(self.channels), **{name: getattr(self, name).tolist() for name in FIELDS}})

    @classmethod
    def from_json(cls, text: str) -> Normalizer:
        stats = json.loads(text)
        return cls(tuple(stats["channels"]), *(np.asarray(stats[name], dtype=np.float64) for name in FIELDS))

    def to_dataset(self) -> xr.Dataset:
        return xr.Dataset(
            {name: ("channel", getattr(self, name)) for name in FIELDS},
            coords={"channel": list(self.channels)},
            attrs={"description": "area-weighted per-channel statistics; tendency is x(t+dt) - x(t)"},
        )

    @classmethod
    def from_dataset(cls, dataset: xr.Dataset) -> Normalizer:
        return cls(
            tuple(str(c) for c in dataset.channel.values),
            *(dataset[name].values.astype(np.float64) for name in FIELDS),
        )

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as temporary:
            self.to_dataset().to_netcdf(temporary)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        try:
            with xr.open_dataset(path) as dataset:
                return cls.from_dataset(dataset.load())
        except (FileNotFoundError, OSError, KeyError) as error:
            raise EmulatorError(f"{path}: cannot read normalization statistics ({error})") from None
