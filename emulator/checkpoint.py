"""Self-contained checkpoints: one safetensors file, weights plus JSON metadata.

The metadata holds the resolved config, the normalizer, the channel lists, the
grid, the training step and the software version, so a checkpoint needs nothing
else to forecast. A calibrated checkpoint also holds the residual statistics of
its stochastic forcing (tensors named ``residual_statistics.*``). Loading never
unpickles: safetensors stores raw tensors and strings only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from emulator import __version__
from emulator.config import Config, config_from_dict
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.files import atomic_path
from emulator.grid import Grid
from emulator.models.registry import build_model
from emulator.stochastic import TENSOR_PREFIX, ResidualStatistics
from emulator.tensorfile import read_tensor_file

FORMAT = "emulator-checkpoint-2"  # 2: spectral weights (degree, in, out, re/im)


@dataclass
class Checkpoint:
    config: Config
    normalizer: Normalizer
    prognostic: list[str]
    forcing: list[str]
    grid: Grid
    model: nn.Module
    step: int
    version: str = __version__
    residual_statistics: ResidualStatistics | None = None

    def save(self, path: str | Path) -> Path:
        """Write atomically: a temporary file renamed on success."""
        metadata = {
            "format": FORMAT,
            "config": self.config.model_dump_json(),
            "normalizer": self.normalizer.to_json(),
            "prognostic": json.dumps(self.prognostic),
            "forcing": json.dumps(self.forcing),
            "grid": json.dumps(self.grid.to_dict()),
            "step": str(self.step),
            "version": self.version,
        }
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.model.state_dict().items()}
        if self.residual_statistics is not None:
            metadata["residual_statistics"] = self.residual_statistics.metadata()
            tensors.update(self.residual_statistics.tensors())
        with atomic_path(path) as temporary:
            save_file(tensors, str(temporary), metadata=metadata)
        return Path(path)


def build_for(config: Config, prognostic: list[str], forcing: list[str], grid: Grid) -> nn.Module:
    """The network of ``config.model`` for these channels and grid."""
    return build_model(config.model, len(prognostic) + len(forcing), len(prognostic), grid)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint and rebuild its model; refuse weights that do not fit it."""
    path = Path(path)
    metadata, tensors = read_tensor_file(path, FORMAT, "checkpoint")
    statistics = {name: tensors.pop(name) for name in list(tensors) if name.startswith(TENSOR_PREFIX)}
    residual_statistics = (
        ResidualStatistics.from_saved(metadata["residual_statistics"], statistics)
        if "residual_statistics" in metadata
        else None
    )
    config = config_from_dict(json.loads(metadata["config"]), f"{path} (embedded config)")
    normalizer = Normalizer.from_json(metadata["normalizer"])
    prognostic, forcing = json.loads(metadata["prognostic"]), json.loads(metadata["forcing"])
    grid = Grid(**json.loads(metadata["grid"]))
    model = build_for(config, prognostic, forcing, grid)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [name for name in expected if name in tensors and tensors[name].shape != expected[name].shape]
    if missing or unexpected or mismatched:
        detail = "; ".join(
            f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
            if names
        )
        raise EmulatorError(f"{path}: weights do not fit the {config.model.name} architecture ({detail})")
    model.load_state_dict(tensors)
    step, version = int(metadata["step"]), metadata["version"]
    return Checkpoint(config, normalizer, prognostic, forcing, grid, model, step, version, residual_statistics)


def check_fits(checkpoint: Checkpoint, config: Config, grid: Grid, data_name: str, path: str) -> None:
    """Refuse a checkpoint whose channels differ from the config's or whose grid differs from the data's."""
    for kind, expected in (("prognostic", config.data.prognostic), ("forcing", config.data.forcing)):
        trained = getattr(checkpoint, kind)
        if trained != expected:
            raise EmulatorError(f"{path}: checkpoint {kind} channels {trained} differ from the config's {expected}")
    if checkpoint.grid != grid:
        raise EmulatorError(
            f"{path}: checkpoint grid {checkpoint.grid.nlat}x{checkpoint.grid.nlon} {checkpoint.grid.kind} "
            f"differs from {data_name} grid {grid.nlat}x{grid.nlon} {grid.kind}"
        )


def model_on_grid(checkpoint: Checkpoint, grid: Grid) -> nn.Module:
    """The checkpoint's network rebuilt for another grid, with the same weights.

    SFNO's spectral weights are per degree and its position embedding a series in
    colatitude, so a model trained on one grid runs on any grid that resolves its
    truncation; architectures with grid-shaped weights (AFNO) are refused.
    """
    model = build_for(checkpoint.config, checkpoint.prognostic, checkpoint.forcing, grid)
    weights = checkpoint.model.state_dict()
    mismatched = [name for name, tensor in model.state_dict().items() if tensor.shape != weights[name].shape]
    if mismatched:
        raise EmulatorError(
            f"{checkpoint.config.model.name} weights depend on the grid ({', '.join(mismatched[:3])}): "
            f"cannot run on {grid.nlat}x{grid.nlon} {grid.kind}"
        )
    model.load_state_dict(weights)
    return model


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file, for provenance."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
