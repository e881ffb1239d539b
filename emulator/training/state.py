"""The resumable state of a training run: one safetensors file, nothing unpickled.

Tensors: the model's weights (``model.*``), the EMA's (``ema.*``), the
optimizer's per-parameter state (``optimizer.<index>.<name>``) and those of other
parts of the run that carry state (``climate.*``: the climate loss's chains). Metadata (JSON):
where the run is (:class:`Progress`), the optimizer's parameter groups, the
normalizer and the config that made the run, so that ``--resume`` refuses a
state written under another config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from emulator.config import Config
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.files import atomic_path
from emulator.tensorfile import read_tensor_file

FORMAT = "emulator-training-state-3"  # 2: spectral weights (degree, in, out, re/im); 3: forcing in coefficients


@dataclass
class Progress:
    """Where a run is: optimizer steps done, and the position in the curriculum."""

    step: int = 0
    stage: int = 0
    epoch: int = 0
    batch: int = 0
    best_validation: float = float("inf")
    best_climate: float = float("inf")
    metrics_rows: int = 0


def state_path(checkpoint: str | Path) -> Path:
    """The resumable state that goes with a checkpoint path."""
    return Path(checkpoint).with_suffix(".state.safetensors")


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    state = optimizer.state_dict()
    tensors = {
        f"optimizer.{index}.{name}": value.detach().cpu().contiguous()
        for index, entries in state["state"].items()
        for name, value in entries.items()
    }
    return tensors, json.dumps(state["param_groups"])


def save_state(
    path: Path,
    config: Config,
    normalizer: Normalizer,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    progress: Progress,
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the state atomically (a temporary file renamed on success); ``extra``: more named tensors."""
    tensors = {name: value.detach().cpu().contiguous() for name, value in (extra or {}).items()}
    tensors |= {f"model.{name}": value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    if ema is not None:
        tensors |= {f"ema.{name}": value.detach().cpu().contiguous() for name, value in ema.state_dict().items()}
    optimizer_tensors, groups = _optimizer_tensors(optimizer)
    metadata = {
        "format": FORMAT,
        "config": config.model_dump_json(),
        "normalizer": normalizer.to_json(),
        "progress": json.dumps(asdict(progress)),
        "param_groups": groups,
    }
    with atomic_path(path) as temporary:
        save_file(tensors | optimizer_tensors, str(temporary), metadata=metadata)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {name.removeprefix(prefix): value for name, value in tensors.items() if name.startswith(prefix)}


def _differing_section(saved: dict, current: dict) -> str | None:
    return next((key for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)), None)


def load_normalizer(path: Path) -> Normalizer:
    """The normalization statistics of the run that wrote the state."""
    return Normalizer.from_json(read_tensor_file(path, FORMAT, "training state")[0]["normalizer"])


def load_state(
    path: Path, config: Config, model: nn.Module, ema: nn.Module | None, optimizer: torch.optim.Optimizer
) -> tuple[Progress, dict[str, torch.Tensor]]:
    """Restore weights, EMA and optimizer in place; return where the run was and the state's other tensors."""
    metadata, tensors = read_tensor_file(path, FORMAT, "training state")
    saved, current = json.loads(metadata["config"]), json.loads(config.model_dump_json())
    section = _differing_section(saved, current)
    if section is not None:
        raise EmulatorError(f"{path}: written by a run whose config differs in section {section!r}; cannot resume")
    model.load_state_dict(_prefixed(tensors, "model."))
    if ema is not None:
        ema.load_state_dict(_prefixed(tensors, "ema."))
    entries: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in _prefixed(tensors, "optimizer.").items():
        index, key = name.split(".", 1)
        entries.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": entries, "param_groups": json.loads(metadata["param_groups"])})
    known = ("model.", "ema.", "optimizer.")
    extra = {name: value for name, value in tensors.items() if not name.startswith(known)}
    return Progress(**json.loads(metadata["progress"])), extra
