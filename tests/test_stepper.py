"""The stepper around a stand-in network: residual arithmetic, stability controls, the divergence guard."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn
from torch_harmonics import InverseRealSHT, RealSHT

from emulator.checkpoint import load_checkpoint
from emulator.cli import main
from emulator.config import StepperConfig, load_config
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.io.forecast_reader import open_forecast
from emulator.quadrature import AreaMean
from emulator.stability import Bounds, SpectralFilterConfig
from emulator.stepper import DivergenceError, Stepper

NORMALIZER = Normalizer(("a", "b"), np.zeros(2), np.array([2.0, 4.0]), np.array([1.0, 1.0]))
GRID = Grid(4, 8)


class Constant(nn.Module):
    """Returns ``value`` everywhere for the first ``channels`` channels of the input."""

    def __init__(self, value: float, channels: int = 2) -> None:
        super().__init__()
        self.value, self.channels = value, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, : self.channels], self.value)


def test_residual_step_adds_tendency_in_normalized_units() -> None:
    stepper = Stepper(Constant(1.0), NORMALIZER, StepperConfig(residual=True), GRID)
    state = torch.zeros(1, 2, 4, 8)
    out = stepper.step(state, torch.zeros(1, 0, 4, 8))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.5, 0.25]))  # tendency_std / std


def test_direct_step_returns_network_output() -> None:
    stepper = Stepper(Constant(3.0), NORMALIZER, StepperConfig(residual=False), GRID)
    out = stepper.step(torch.zeros(1, 2, 4, 8), torch.zeros(1, 0, 4, 8))
    assert torch.all(out == 3.0)


def test_rollout_yields_one_state_per_forcing() -> None:
    stepper = Stepper(Constant(0.0), NORMALIZER, StepperConfig(), GRID)
    states = list(stepper.rollout(torch.ones(1, 2, 4, 8), (torch.zeros(1, 0, 4, 8) for _ in range(5))))
    assert len(states) == 5 and all(torch.equal(s, torch.ones(1, 2, 4, 8)) for s in states)


def test_guard_names_step_and_channel_of_nonfinite_value() -> None:
    class NanInB(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros_like(x[:, :2])
            out[:, 1, 2, 3] = float("nan")
            return out

    stepper = Stepper(NanInB(), NORMALIZER, StepperConfig(), GRID)
    with pytest.raises(DivergenceError, match=r"step 1: channel 'b' is not finite"):
        list(stepper.rollout(torch.zeros(1, 2, 4, 8), [torch.zeros(1, 0, 4, 8)]))


def test_guard_stops_a_blow_up_at_the_step_it_happens() -> None:
    stepper = Stepper(
        Constant(10.0), NORMALIZER, StepperConfig(max_abs_normalized=12.0, max_mean_square_normalized=1e6), GRID
    )
    forcings = [torch.zeros(1, 0, 4, 8)] * 10
    with pytest.raises(DivergenceError) as caught:
        list(stepper.rollout(torch.zeros(1, 2, 4, 8), forcings))
    assert caught.value.step == 3 and caught.value.channel == "a"  # 5 per step in channel a


def test_controls_are_reported() -> None:
    config = StepperConfig(conserve=["a"], spectral_filter=SpectralFilterConfig(strength=0.5))
    controls = Stepper(Constant(0.0), NORMALIZER, config, GRID).controls()
    assert controls["stepper_residual"] == "true" and controls["stepper_conserve"] == '["a"]'
    assert controls["stepper_spectral_filter"] == '{"strength": 0.5, "order": 8}'


class Field(nn.Module):
    """Returns a fixed field (batch one) whatever the input."""

    def __init__(self, field: torch.Tensor) -> None:
        super().__init__()
        self.field = field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.field.expand(x.shape[0], -1, -1, -1)


def test_spectral_filter_damps_each_degree_by_its_factor() -> None:
    grid = Grid(32, 64, "legendre-gauss")
    sht = RealSHT(32, 64, lmax=32, mmax=32, grid="legendre-gauss")
    isht = InverseRealSHT(32, 64, lmax=32, mmax=32, grid="legendre-gauss")
    coefficients = torch.zeros(1, 2, 32, 32, dtype=torch.complex64)
    coefficients[0, :, 0, 0], coefficients[0, :, 5, 2], coefficients[0, :, 31, 3] = 3.0, 1.0, 1.0
    field = isht(coefficients)
    config = StepperConfig(residual=False, spectral_filter=SpectralFilterConfig(strength=0.5, order=4))
    filtered = sht(Stepper(Field(field), NORMALIZER, config, grid).step(field, torch.zeros(1, 0, 32, 64)))
    ratio = (filtered / coefficients)[0, 0]
    torch.testing.assert_close(ratio[0, 0].real, torch.tensor(1.0))
    torch.testing.assert_close(ratio[5, 2].real, torch.tensor(np.exp(-0.5 * (5 / 31) ** 4), dtype=torch.float32))
    torch.testing.assert_close(ratio[31, 3].real, torch.tensor(np.exp(-0.5), dtype=torch.float32))


def test_clamp_holds_physical_bounds() -> None:
    # channel a: mean 0, std 2; bounds -1..1 in physical units are -0.5..0.5 normalized
    config = StepperConfig(residual=False, clamp={"a": Bounds(min=-1.0, max=1.0)})
    field = torch.linspace(-3, 3, 4 * 8).reshape(1, 1, 4, 8).repeat(1, 2, 1, 1)
    out = Stepper(Field(field), NORMALIZER, config, GRID).step(torch.zeros(1, 2, 4, 8), torch.zeros(1, 0, 4, 8))
    assert out[:, 0].min() == -0.5 and out[:, 0].max() == 0.5
    assert torch.equal(out[:, 1], field[:, 1])  # unbounded channel untouched


def test_conservation_fixer_holds_the_global_mean_of_its_channel() -> None:
    grid = Grid(16, 32)
    tendency = torch.rand(1, 2, 16, 32, generator=torch.Generator().manual_seed(0))
    stepper = Stepper(Field(tendency), NORMALIZER, StepperConfig(conserve=["b"], divergence_guard=False), grid)
    initial = torch.randn(1, 2, 16, 32, generator=torch.Generator().manual_seed(1))
    states = list(stepper.rollout(initial, [torch.zeros(1, 0, 16, 32)] * 20))
    area_mean = AreaMean(grid)
    torch.testing.assert_close(area_mean(states[-1][:, 1]), area_mean(initial[:, 1]))
    assert float(area_mean(states[-1][:, 0]) - area_mean(initial[:, 0])) > 1.0  # channel a drifts freely


def test_conserving_an_unknown_channel_is_refused() -> None:
    with pytest.raises(EmulatorError, match=r"stepper.conserve: channel 'c' is not prognostic"):
        Stepper(Constant(0.0), NORMALIZER, StepperConfig(conserve=["c"]), GRID)


def test_guard_stops_an_energy_blow_up() -> None:
    # a uniform 3-sigma field grows by 0.5 a step: energy 16 > 15 at step 2, no value above 50
    config = StepperConfig(max_mean_square_normalized=15.0)
    stepper = Stepper(Constant(1.0), NORMALIZER, config, GRID)
    with pytest.raises(DivergenceError, match=r"step 2: channel 'a' energy blew up: area-mean square 16"):
        list(stepper.rollout(torch.full((1, 2, 4, 8), 3.0), [torch.zeros(1, 0, 4, 8)] * 5))


def test_the_guard_only_reads_the_states_of_a_default_climate_run() -> None:
    """With the guard off, a rollout of the default model, every control and the climate forcing on, is the
    same bits: so a run the guard never stopped is also the run without it."""
    config = load_config("configs/world.yaml")
    loaded = load_checkpoint(config.forecast.checkpoint)
    normalizer = loaded.normalizer.subset(loaded.prognostic)
    controls = config.climate_stepper(loaded.config).model_copy(update={"residual": loaded.config.stepper.residual})
    shape = (1, len(loaded.prognostic), loaded.grid.nlat, loaded.grid.nlon)
    initial = 0.5 * torch.randn(shape, generator=torch.Generator().manual_seed(0))
    forcings = [torch.zeros(1, 0, loaded.grid.nlat, loaded.grid.nlon)] * 6
    rollouts = []
    for guard in (True, False):
        guarded = controls.model_copy(update={"divergence_guard": guard})
        stepper = Stepper(loaded.model, normalizer, guarded, loaded.grid, loaded.residual_statistics).eval()
        rollouts.append(torch.stack(list(stepper.rollout(initial, forcings))))
    assert controls.divergence_guard and controls.stochastic_forcing is not None
    assert torch.equal(*rollouts) and not torch.equal(rollouts[0][-1], initial)


def test_forecast_applies_the_run_configs_controls_to_a_model_trained_without(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    config, _ = trained  # trained with no control but the guard
    out = tmp_path / "controlled"
    controls = ["--set", "stepper.conserve=[geopotential@250]", "--set", "stepper.spectral_filter={strength: 0.5}"]
    assert main(["forecast", "--config", str(config), "--output", str(out), "--device", "cpu", *controls]) == 0
    with open_forecast(next(out.glob("forecast_*.nc"))) as forecast:
        assert forecast.attrs["stepper_conserve"] == '["geopotential@250"]'
        assert json.loads(forecast.attrs["stepper_spectral_filter"]) == {"strength": 0.5, "order": 8}
        weights = xr.DataArray(Grid(32, 64).area_weights, dims="latitude")
        means = forecast.geopotential.isel(member=0, init_time=0).weighted(weights).mean(("latitude", "longitude"))
        source = ZarrSource(str(load_config(config).data.store), ["geopotential@250"])
        initial = source.read([source.time_index(forecast.init_time.values[0])])[0, 0]
    truth_mean = float((initial * Grid(32, 64).area_weights[:, None]).mean())
    np.testing.assert_allclose(means.values, truth_mean, rtol=1e-5)
