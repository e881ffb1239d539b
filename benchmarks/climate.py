"""The climate of one checkpoint: the ``skill`` benchmark's long rollout alone.

``python -m benchmarks climate [--checkpoint PATH] [--years N]`` rolls a checkpoint
(the committed one by default) out for ``N`` simulated years (default 1) from the
held-out truth's first state, with every stability control of ``configs/world.yaml``,
and prints ``spectrum_error_*``, ``energy_drift``, ``steps_to_nonfinite`` and ``sypd``
as ``skill`` does, noting every band's power over the truth's. A simulated year takes
about a minute on two cores: the loop in which training candidates are compared.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.skill import ROOT, YEARS_QUICK, _describe, _truth_store, controlled_rollout
from benchmarks.timing import note
from emulator.checkpoint import load_checkpoint
from emulator.config import load_config

BENCH = "climate"
YEARS = 1.0


def run(quick: bool, device: torch.device, years: float | None = None, checkpoint: str | None = None) -> None:
    config = load_config(ROOT / "configs" / "world.yaml")
    path = Path(checkpoint) if checkpoint else ROOT / config.forecast.checkpoint
    truth = _truth_store(quick)
    note(f"checkpoint {path}; truth {truth}; controls {_describe(config.stepper)}")
    years = years or (YEARS_QUICK if quick else YEARS)
    controlled_rollout(load_checkpoint(path), config.stepper, truth, years, device, BENCH)
