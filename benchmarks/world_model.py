"""Stage 9 (the default's network, its base weights) as a deterministic stepper; a random normalized state."""

from __future__ import annotations

from pathlib import Path

import torch

from emulator.checkpoint import Checkpoint, load_checkpoint
from emulator.stepper import Stepper

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "world_sfno.ckpt"


def world_stepper(device: torch.device) -> tuple[Checkpoint, Stepper]:
    checkpoint = load_checkpoint(CHECKPOINT)
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    controls = checkpoint.config.stepper.model_copy(update={"stochastic_forcing": None})
    return checkpoint, Stepper(checkpoint.model, normalizer, controls, checkpoint.grid).to(device).eval()


def initial_states(checkpoint: Checkpoint, members: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    shape = (members, len(checkpoint.prognostic), *checkpoint.grid.shape)
    return torch.randn(shape, generator=generator).to(device)


def no_forcing(checkpoint: Checkpoint, steps: int, device: torch.device) -> list[torch.Tensor]:
    return [torch.zeros(1, 0, *checkpoint.grid.shape, device=device)] * steps
