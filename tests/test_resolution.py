"""SFNO trained on one grid runs, with sensible output, on a finer one."""

import numpy as np
import pytest
import torch
from torch_harmonics import InverseRealSHT

from emulator.checkpoint import Checkpoint, build_for, model_on_grid
from emulator.config import config_from_dict
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.spectra import PowerSpectrum

COARSE, FINE = Grid(24, 48, "legendre-gauss"), Grid(48, 96, "legendre-gauss")
BAND = 8  # degrees of the random input fields, resolved on both grids


def random_fields(coefficients: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The same band-limited continuous fields, sampled on ``grid``."""
    return InverseRealSHT(grid.nlat, grid.nlon, lmax=BAND, mmax=BAND, grid=grid.kind)(coefficients).float()


def heat_kernel(field: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The target operator: diffusion, ``c_lm -> exp(-l(l+1)/20) c_lm``."""
    from torch_harmonics import RealSHT

    sht = RealSHT(grid.nlat, grid.nlon, lmax=BAND, mmax=BAND, grid=grid.kind)
    isht = InverseRealSHT(grid.nlat, grid.nlon, lmax=BAND, mmax=BAND, grid=grid.kind)
    degree = torch.arange(BAND, dtype=torch.float32)[:, None]
    return isht(sht(field) * torch.exp(-degree * (degree + 1) / 20.0))


def relative_error(model: torch.nn.Module, coefficients: torch.Tensor, grid: Grid) -> float:
    x = random_fields(coefficients, grid)
    with torch.no_grad():
        return float((model(x) - heat_kernel(x, grid)).norm() / heat_kernel(x, grid).norm())


def test_model_trained_coarse_runs_on_a_finer_grid() -> None:
    torch.manual_seed(0)
    tree = {
        "data": {"store": "x", "prognostic": ["f"]},
        "model": {"name": "sfno", "embed_dim": 16, "num_layers": 2, "truncation": 12},
    }
    config = config_from_dict(tree, "test")
    model = build_for(config, ["f"], [], COARSE)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(250):
        coefficients = torch.randn(16, 1, BAND, BAND, dtype=torch.complex64).tril()
        x = random_fields(coefficients, COARSE)
        loss = (model(x) - heat_kernel(x, COARSE)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    normalizer = Normalizer(("f",), np.zeros(1), np.ones(1), np.ones(1))
    fine_model = model_on_grid(Checkpoint(config, normalizer, ["f"], [], COARSE, model, 300), FINE)
    held_out = torch.randn(32, 1, BAND, BAND, dtype=torch.complex64, generator=torch.Generator().manual_seed(9)).tril()
    coarse_error = relative_error(model, held_out, COARSE)
    fine_error = relative_error(fine_model, held_out, FINE)
    assert coarse_error < 0.2, "the operator was learnt"
    assert fine_error < 1.5 * coarse_error + 0.02, (coarse_error, fine_error)
    # no spurious small scales appear on the finer grid
    power = PowerSpectrum(FINE)(fine_model(random_fields(held_out, FINE)).detach()).mean(dim=(0, 1))
    assert float(power[2 * BAND :].sum() / power.sum()) < 0.02


def test_afno_refuses_another_grid() -> None:
    tree = {"data": {"store": "x", "prognostic": ["f"]}, "model": {"name": "afno", "embed_dim": 8, "num_blocks": 2}}
    config = config_from_dict(tree, "test")
    model = build_for(config, ["f"], [], Grid(32, 64))
    normalizer = Normalizer(("f",), np.zeros(1), np.ones(1), np.ones(1))
    with pytest.raises(EmulatorError, match="afno weights depend on the grid"):
        model_on_grid(Checkpoint(config, normalizer, ["f"], [], Grid(32, 64), model, 0), Grid(64, 128))
