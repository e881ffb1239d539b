"""Interleaved timing: A B A B ..., median of repeats, in one process."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    runs: dict[str, Callable[[], object]], repeats: int, device: torch.device, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function, the calls interleaved round by round."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def emit(bench: str, figure: str, value: float, config: dict[str, object], device: torch.device) -> None:
    """One machine-readable figure on stdout."""
    record = {
        "bench": bench,
        "figure": figure,
        "value": round(float(value), 4),
        "config": config,
        "device": device.type,
    }
    print(json.dumps(record), flush=True)


def note(message: str) -> None:
    """Something for people, on stderr."""
    print(message, file=sys.stderr, flush=True)
