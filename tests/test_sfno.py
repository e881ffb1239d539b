"""SFNO: shapes on odd grids, polar-axis equivariance, gradients, determinism."""

import pytest
import torch

from emulator.grid import Grid
from emulator.models.registry import build_model, parameter_count
from emulator.models.sfno import ChannelMLP, SFNOConfig
from tests.model_checks import (
    assert_each_sample_alone_in_eval_on_a_cpu,
    assert_gradients_reach_every_parameter,
    assert_same_seed_same_output,
)

CONFIG = SFNOConfig(embed_dim=8, num_layers=2, latitude_modes=4)


@pytest.mark.parametrize(
    ("nlat", "nlon", "kind"),
    [
        (33, 64, "equiangular"),
        (21, 40, "equiangular"),
        (24, 48, "legendre-gauss"),
        (121, 240, "equiangular"),
        (181, 360, "equiangular"),
    ],
)
def test_shapes_and_dtype(nlat: int, nlon: int, kind: str) -> None:
    model = build_model(CONFIG, 4, 3, Grid(nlat, nlon, kind))
    out = model(torch.randn(2, 4, nlat, nlon))
    assert out.shape == (2, 3, nlat, nlon) and out.dtype == torch.float32


def test_rotation_about_the_polar_axis_commutes_with_the_model() -> None:
    torch.manual_seed(0)
    model = build_model(CONFIG, 3, 3, Grid(32, 64))
    x = torch.randn(1, 3, 32, 64)
    shift = 5
    rotated_then_model = model(torch.roll(x, shift, dims=-1))
    model_then_rotated = torch.roll(model(x), shift, dims=-1)
    torch.testing.assert_close(rotated_then_model, model_then_rotated, rtol=1e-4, atol=1e-4)


def test_gradients_reach_every_parameter() -> None:
    model = build_model(CONFIG, 3, 3, Grid(16, 32))
    with torch.no_grad():
        model.latitude_embedding.normal_()
    assert_gradients_reach_every_parameter(model, torch.randn(2, 3, 16, 32))


def test_same_seed_same_model_and_output() -> None:
    assert_same_seed_same_output(lambda: build_model(CONFIG, 3, 3, Grid(16, 32)), torch.randn(1, 3, 16, 32), seed=7)
    assert parameter_count(build_model(CONFIG, 3, 3, Grid(16, 32))) > 0


def test_wrong_grid_input_is_refused() -> None:
    model = build_model(CONFIG, 3, 3, Grid(16, 32))
    with pytest.raises(ValueError, match=r"built for grid \(16, 32\)"):
        model(torch.randn(1, 3, 18, 32))


def test_runs_under_bf16_autocast_close_to_fp32() -> None:
    torch.manual_seed(1)
    model = build_model(CONFIG, 3, 3, Grid(32, 64))
    x = torch.randn(2, 3, 32, 64)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(x)
    assert torch.isfinite(mixed).all()
    assert float((mixed.float() - reference).norm() / reference.norm()) < 0.05


@pytest.mark.parametrize(
    ("batch", "chunk_points"), [(1, ChannelMLP.chunk_points), (3, ChannelMLP.chunk_points), (2, 6)]
)
def test_inference_path_equals_the_convolutions(batch: int, chunk_points: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without autograd the MLPs run as matrix products in chunks of points; the same function."""
    monkeypatch.setattr(ChannelMLP, "chunk_points", chunk_points)  # 6: 140 chunks a sample
    torch.manual_seed(2)
    model = build_model(CONFIG, 4, 3, Grid(21, 40))
    x = torch.randn(batch, 4, 21, 40)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):  # zero at initialization
                parameter.normal_()
        fast = model(x)
    torch.testing.assert_close(fast, model(x).detach(), rtol=1e-5, atol=1e-5)


def test_a_batch_in_eval_on_a_cpu_is_each_sample_alone_bitwise() -> None:
    torch.manual_seed(0)
    assert_each_sample_alone_in_eval_on_a_cpu(build_model(CONFIG, 3, 3, Grid(16, 32)), torch.randn(5, 3, 16, 32))
