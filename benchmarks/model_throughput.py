"""Our SFNO against torch-harmonics' example SFNO: inference and training step, FLOP rate.

Both networks get the same grid, width, depth and truncation (scale factor 1,
equiangular internal grid). Figures: ``speedup_inference`` and
``speedup_training`` (reference time over ours), and ``flop_fraction`` (our fp32
FLOP/s over a large fp32 matmul's, FLOPs counted by ``torch.utils.flop_counter``),
each with the ``precision`` in its config: fp32, and bf16 autocast on CUDA (on a
CPU only in quick mode, which keeps that path tested). On CUDA the full mode also
times our SFNO at 1 degree with about 400M parameters: ``seconds_per_inference``
and ``seconds_per_training_step``, per precision.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torch_harmonics.examples.models.sfno import SphericalFourierNeuralOperator

from benchmarks.timing import emit, interleaved_medians, note
from emulator.grid import Grid
from emulator.models.registry import parameter_count
from emulator.models.sfno import SFNO, SFNOConfig

BENCH = "model_throughput"
FULL = [
    {"nlat": 32, "nlon": 64, "channels": 3, "embed_dim": 64, "layers": 4},
    {"nlat": 121, "nlon": 240, "channels": 20, "embed_dim": 128, "layers": 8},
    {"nlat": 181, "nlon": 360, "channels": 20, "embed_dim": 128, "layers": 8},
]
QUICK = [{"nlat": 32, "nlon": 64, "channels": 3, "embed_dim": 32, "layers": 2}]
LARGE = {"nlat": 181, "nlon": 360, "channels": 73, "embed_dim": 512, "layers": 8}  # 1 degree, ~390M parameters
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


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


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision in ``dtype``; ``None``: fp32 throughout."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def training_step(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    model.zero_grad(set_to_none=True)
    with autocast(x.device, dtype):
        loss = model(x).float().square().mean()
    loss.backward()


def inference(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    with torch.no_grad(), autocast(x.device, dtype):
        model(x)


def time_calls(
    models: dict[str, nn.Module], x: torch.Tensor, dtype: torch.dtype | None, repeats: int
) -> dict[str, dict[str, float]]:
    """Median seconds of an inference and of a training step of each model, interleaved."""
    return {
        "inference": interleaved_medians(
            {name: partial(inference, model, x, dtype) for name, model in models.items()}, repeats, x.device
        ),
        "training": interleaved_medians(
            {name: partial(training_step, model, x, dtype) for name, model in models.items()}, repeats, x.device
        ),
    }


def emit_seconds(
    times: dict[str, dict[str, float]], name: str, config: dict[str, object], device: torch.device
) -> None:
    """``seconds_per_inference`` and ``seconds_per_training_step`` of one timed model."""
    emit(BENCH, "seconds_per_inference", times["inference"][name], config, device)
    emit(BENCH, "seconds_per_training_step", times["training"][name], config, device)


def compare(case: dict[str, int], device: torch.device, repeats: int, peak: float, precision: str) -> None:
    """Emit the figures of one configuration at one precision."""
    torch.manual_seed(0)
    ours, reference = build_pair(case, device)
    x = torch.randn(1, case["channels"], case["nlat"], case["nlon"], device=device)
    dtype = PRECISIONS[precision]
    config = case | {"precision": precision}
    models = {"ours": ours, "reference": reference}
    if dtype is not None:
        try:
            inference(reference, x, dtype)
        except RuntimeError as error:  # torch-harmonics 0.9.3's SHT builds complex numbers from bf16 halves
            note(f"{case} {precision}: the reference does not run ({error}); ours timed alone")
            del models["reference"]
    times = time_calls(models, x, dtype, repeats)
    note(
        f"{case} {precision}: "
        + "; ".join(
            f"{call} " + ", ".join(f"{name} {seconds * 1e3:.1f} ms" for name, seconds in medians.items())
            for call, medians in times.items()
        )
    )
    if "reference" in models:
        for call, medians in times.items():
            emit(BENCH, f"speedup_{call}", medians["reference"] / medians["ours"], config, device)
    else:
        emit_seconds(times, "ours", config, device)
    if dtype is None:
        emit(BENCH, "flop_fraction", forward_flops(ours, x) / times["inference"]["ours"] / peak, config, device)


def time_large(device: torch.device, repeats: int, precision: str) -> None:
    """Seconds per inference and per training step of our SFNO at 1 degree, about 400M parameters."""
    torch.manual_seed(0)
    config = SFNOConfig(embed_dim=LARGE["embed_dim"], num_layers=LARGE["layers"])
    model = SFNO(config, LARGE["channels"], LARGE["channels"], Grid(LARGE["nlat"], LARGE["nlon"])).to(device)
    x = torch.randn(1, LARGE["channels"], LARGE["nlat"], LARGE["nlon"], device=device)
    times = time_calls({"ours": model}, x, PRECISIONS[precision], repeats)
    emit_seconds(times, "ours", LARGE | {"precision": precision, "parameters": parameter_count(model)}, device)


def run(quick: bool, device: torch.device) -> None:
    peak = matmul_flop_rate(device)
    note(f"fp32 matmul: {peak / 1e9:.1f} GFLOP/s")
    precisions = list(PRECISIONS) if device.type == "cuda" or quick else ["fp32"]
    for case in QUICK if quick else FULL:
        for precision in precisions:
            compare(case, device, repeats=3 if quick else 7, peak=peak, precision=precision)
    if device.type == "cuda" and not quick:
        for precision in precisions:
            time_large(device, repeats=5, precision=precision)
