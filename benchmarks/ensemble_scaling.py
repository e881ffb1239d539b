"""Cost of an ensemble rollout with members batched, against a single member.

Figures ``cost_ratio_8`` and ``cost_ratio_64``: wall time of a rollout of N members
in one batch over the time of one member, the committed built-in-world model,
interleaved and median of repeats. Perfect batching would give 1; no batching N.

``cost_ratio_64_at_peak`` is the floor set by arithmetic: 64 members' FLOPs (counted
by ``torch.utils.flop_counter``) at the machine's fp32 matmul rate, over the time of
one member. A batch cannot cost less than this unless the model needs fewer FLOPs.
"""

from __future__ import annotations

import torch

from benchmarks.model_throughput import forward_flops, matmul_flop_rate
from benchmarks.timing import emit, interleaved_medians, note
from benchmarks.world_model import initial_states, no_forcing, world_stepper

BENCH = "ensemble_scaling"


def run(quick: bool, device: torch.device) -> None:
    checkpoint, stepper = world_stepper(device)
    steps, repeats = (2, 2) if quick else (8, 5)
    forcings = no_forcing(checkpoint, steps, device)
    sizes = (1, 8, 64)
    states = {n: initial_states(checkpoint, n, device) for n in sizes}

    def rollout(members: int) -> None:
        for _ in stepper.rollout(states[members], forcings):
            pass

    times = interleaved_medians({str(n): (lambda n=n: rollout(n)) for n in sizes}, repeats, device)
    config = {"grid": list(checkpoint.grid.shape), "steps": steps, "model": checkpoint.config.model.name}
    for n in sizes[1:]:
        note(f"{n} members: {times[str(n)]:.3f} s, one member {times['1']:.3f} s")
        emit(BENCH, f"cost_ratio_{n}", times[str(n)] / times["1"], config, device)
    flops = steps * forward_flops(stepper.model, torch.cat([states[1], forcings[0]], dim=1))
    peak = matmul_flop_rate(device)
    note(
        f"{flops / steps / 1e9:.3f} GFLOP per member-step; one member at {flops / times['1'] / 1e9:.1f} GFLOP/s, "
        f"64 at {64 * flops / times['64'] / 1e9:.1f}; fp32 matmul {peak / 1e9:.1f} GFLOP/s"
    )
    emit(BENCH, "cost_ratio_64_at_peak", 64 * flops / peak / times["1"], config, device)
