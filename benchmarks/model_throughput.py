"""Our SFNO against torch-harmonics' example SFNO: inference and training step, FLOP rate.

Both networks get the same grid, width, depth and truncation (scale factor 1,
equiangular internal grid). Figures: ``speedup_inference`` and
``speedup_training`` (reference time over ours), and ``flop_fraction`` (our
FLOP/s over a large fp32 matmul's, FLOPs counted by ``torch.utils.flop_counter``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator

from benchmarks.timing import emit, interleaved_medians, note
from emulator.grid import Grid
from emulator.models.sfno import SFNO, SFNOConfig

BENCH = "model_throughput"
FULL = [
    {"nlat": 32, "nlon": 64, "channels": 3, "embed_dim": 64, "layers": 4},
    {"nlat": 121, "nlon": 240, "channels": 20, "embed_dim": 128, "layers": 8},
    {"nlat": 181, "nlon": 360, "channels": 20, "embed_dim": 128, "layers": 8},
]
QUICK = [{"nlat": 32, "nlon": 64, "channels": 3, "embed_dim": 32, "layers": 2}]


def build_pair(case: dict[str, int], device: torch.device) -> tuple[nn.Module, nn.Module]:
    reference = SphericalFourierNeuralOperator(
        img_size=(case["nlat"], case["nlon"]),
        grid="equiangular",
        grid_internal="equiangular",
        scale_factor=1,
        in_chans=case["channels"],
        out_chans=case["channels"],
        embed_dim=case["embed_dim"],
        num_layers=case["layers"],
    )
    truncation = reference.blocks[0].global_conv.modes_lat
    config = SFNOConfig(
        embed_dim=case["embed_dim"],
        num_layers=case["layers"],
        truncation=truncation,
        inner_skip=False,  # the reference's default block and encoder
        hidden_encoder=False,
    )
    ours = SFNO(config, case["channels"], case["channels"], Grid(case["nlat"], case["nlon"]))
    return ours.to(device), reference.to(device)


def matmul_flop_rate(device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    seconds = interleaved_medians({"matmul": lambda: a @ b}, repeats, device)["matmul"]
    return 2.0 * size**3 / seconds


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def training_step(model: nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    model(x).square().mean().backward()


def inference(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model(x)


def compare(case: dict[str, int], device: torch.device, repeats: int, peak: float) -> None:
    """Emit the three figures of one configuration."""
    torch.manual_seed(0)
    ours, reference = build_pair(case, device)
    x = torch.randn(1, case["channels"], case["nlat"], case["nlon"], device=device)
    infer = interleaved_medians(
        {"ours": lambda: inference(ours, x), "reference": lambda: inference(reference, x)}, repeats, device
    )
    train = interleaved_medians(
        {"ours": lambda: training_step(ours, x), "reference": lambda: training_step(reference, x)}, repeats, device
    )
    note(
        f"{case}: inference ours {infer['ours'] * 1e3:.1f} ms, reference {infer['reference'] * 1e3:.1f} ms; "
        f"training ours {train['ours'] * 1e3:.1f} ms, reference {train['reference'] * 1e3:.1f} ms"
    )
    emit(BENCH, "speedup_inference", infer["reference"] / infer["ours"], case, device)
    emit(BENCH, "speedup_training", train["reference"] / train["ours"], case, device)
    emit(BENCH, "flop_fraction", forward_flops(ours, x) / infer["ours"] / peak, case, device)


def run(quick: bool, device: torch.device) -> None:
    peak = matmul_flop_rate(device)
    note(f"fp32 matmul: {peak / 1e9:.1f} GFLOP/s")
    for case in QUICK if quick else FULL:
        compare(case, device, repeats=3 if quick else 7, peak=peak)
