"""The climate loss and climate validation: band power on the sphere, its target file, free-running chains."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn
from torch_harmonics import InverseRealSHT

from benchmarks.climate_window import saved_bytes
from emulator.checkpoint import load_checkpoint
from emulator.cli import main
from emulator.config import StepperConfig
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.models.registry import build_model
from emulator.models.sfno import SFNOConfig
from emulator.spectra import BandPower, PowerSpectrum
from emulator.stepper import Stepper
from emulator.training.climate import ClimateConstraint, ClimateLossConfig, read_target
from emulator.training.climate_validation import ClimateValidation, ClimateValidationConfig
from emulator.training.zonal_climate import read_zonal_target
from emulator.world.climate import DailyClimate, Diagnostics, climate_dataset
from tests.conftest import CHANNELS
from tests.test_stochastic import stepper_normalizer, stochastic_stepper

GRID = Grid(32, 64, "legendre-gauss")  # resolves degrees 0-31: every octave band
LABELS = ["1-1", "2-3", "4-7", "8-15", "16-31"]
STD = torch.tensor([2.0, 1.0, 1.0])


def random_fields(seed: int, batch: int = 1) -> torch.Tensor:
    """``(batch, 3, 32, 64)`` fields with power at every degree below 32."""
    generator = torch.Generator().manual_seed(seed)
    coefficients = torch.view_as_complex(torch.randn(batch, 3, 32, 32, 2, generator=generator)).tril()
    coefficients[..., 0] = coefficients[..., 0].real.to(coefficients.dtype)
    return InverseRealSHT(32, 64, lmax=32, mmax=32, grid=GRID.kind)(coefficients)


def write_target(
    path: Path, bands: torch.Tensor, quantities: list[str] | None = None, zonal_mean: torch.Tensor | None = None
) -> Path:
    """A target of ``(quantity, band)`` power on every day, and ``(day, channel, lat)`` zonal means (one day of 0)."""
    zonal_mean = torch.zeros(1, 3, GRID.nlat) if zonal_mean is None else zonal_mean
    days = len(zonal_mean)
    daily = DailyClimate(torch.ones(1, days), bands.expand(1, days, -1, -1), zonal_mean[None])
    dataset = climate_dataset(daily, Diagnostics(GRID, CHANNELS))
    (dataset if quantities is None else dataset.assign_coords(quantity=quantities)).to_netcdf(path)
    return path


def test_band_power_is_each_channels_mean_power_per_degree_and_the_kinetic_energy() -> None:
    coefficients = torch.zeros(1, 3, 32, 32, dtype=torch.complex64)
    coefficients[0, 0, 5, 2] = 1.0  # geopotential at degree 5 only: band 4-7
    field = InverseRealSHT(32, 64, lmax=32, mmax=32, grid=GRID.kind)(coefficients)
    band_power = BandPower(GRID, CHANNELS)
    assert band_power.quantities == [*CHANNELS, "kinetic_energy@250"] and band_power.labels == LABELS
    assert BandPower(Grid(32, 64), CHANNELS).labels == LABELS[:4], "degrees 0-15 resolved: four whole bands"
    bands = band_power(field)[0]
    degree_five = PowerSpectrum(GRID)(field[0, 0])[5]
    torch.testing.assert_close(
        bands[0], torch.tensor([0, 0, degree_five / 4, 0, 0], dtype=bands.dtype), atol=1e-9, rtol=1e-5
    )
    assert float(bands[1:].abs().max()) < 1e-12


def test_target_file_is_checked_for_its_quantities_bands_and_power(tmp_path: Path) -> None:
    quantities = BandPower(GRID, CHANNELS).quantities
    bands = torch.rand(4, 5, dtype=torch.float64) + 0.5
    torch.testing.assert_close(read_target(str(write_target(tmp_path / "good.nc", bands)), quantities, LABELS), bands)
    with pytest.raises(EmulatorError, match=r"train.climate.target: .*missing.nc does not exist"):
        read_target(str(tmp_path / "missing.nc"), quantities, LABELS)
    other = write_target(tmp_path / "other.nc", bands, [*CHANNELS[:2], "temperature@850", quantities[3]])
    with pytest.raises(EmulatorError, match=r"other.nc: band_power has no quantity 'v_component_of_wind@250'"):
        read_target(str(other), quantities, LABELS)
    zero = bands.clone()
    zero[3, 4] = 0.0
    with pytest.raises(EmulatorError, match=r"band_power of kinetic_energy@250 in band 16-31 is not positive"):
        read_target(str(write_target(tmp_path / "zero.nc", zero)), quantities, LABELS)
    renamed = xr.open_dataset(tmp_path / "good.nc").rename({"band_power": "power"})
    renamed.to_netcdf(tmp_path / "renamed.nc")
    with pytest.raises(EmulatorError, match=r"renamed.nc has no variable 'band_power'"):
        read_target(str(tmp_path / "renamed.nc"), quantities, LABELS)


class Pattern(nn.Module):
    """Next state ``gain * pattern`` whatever the input: a climate of one free parameter."""

    def __init__(self, pattern: torch.Tensor) -> None:
        super().__init__()
        self.pattern, self.gain = pattern, nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * self.pattern.expand(len(x), -1, -1, -1)


def train_by_climate_loss(model: nn.Module, config: ClimateLossConfig, learning_rate: float) -> ClimateConstraint:
    """150 SGD steps of ``model``'s parameters by the climate loss alone."""
    normalizer = Normalizer(tuple(CHANNELS), np.zeros(3), STD.double().numpy(), np.ones(3))
    stepper = Stepper(model, normalizer, StepperConfig(residual=False), GRID)
    climate = ClimateConstraint(config, normalizer, GRID)
    climate.start(stepper, random_fields(1, batch=config.chains))
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    for step in range(150):
        optimizer.zero_grad()
        climate(stepper, step).backward()
        optimizer.step()
    return climate


def train_gain(target: torch.Tensor, path: Path, **settings: float) -> tuple[Pattern, ClimateConstraint]:
    """:func:`train_by_climate_loss` of :class:`Pattern`'s gain, toward ``target`` band power."""
    config = ClimateLossConfig(target=str(write_target(path, target)), chains=2, spinup_steps=1, memory=0.8, **settings)
    model = Pattern(random_fields(0))
    return model, train_by_climate_loss(model, config, learning_rate=0.5)


def power_of(gain: float) -> torch.Tensor:
    """``(quantity, band)``: the band power of ``gain`` times the pattern, in physical units."""
    return BandPower(GRID, CHANNELS)((gain * random_fields(0) * STD[:, None, None]).double())[0]


def test_chains_trained_by_the_climate_loss_reach_the_target_power(tmp_path: Path) -> None:
    model, climate = train_gain(power_of(2.0), tmp_path / "target.nc")
    assert abs(model.gain.item() - 2.0) < 0.02, "the power of twice the pattern is the target's"
    assert climate.ratio is not None and float((climate.ratio - 1).abs().max()) < 0.05


def test_bands_below_min_degree_are_left_out_and_bands_within_tolerance_are_not_pushed(tmp_path: Path) -> None:
    target = power_of(2.0)
    target[:, 0] = power_of(0.5)[:, 0]  # degree 1 asks for a quarter of the gain
    model, _ = train_gain(target, tmp_path / "all.nc")
    assert model.gain.item() < 1.9, "degree 1 pulls the gain down"
    model, climate = train_gain(target, tmp_path / "above_1.nc", min_degree=2, tolerance=0.05)
    assert abs(model.gain.item() - 2.0) < 0.1, "without degree 1 the other bands reach twice the pattern"
    assert climate.ratio is not None and float((climate.ratio[:, 1:].log().abs()).max()) < math.log(1.06)
    model.gain.grad = None
    normalizer = Normalizer(tuple(CHANNELS), np.zeros(3), STD.double().numpy(), np.ones(3))
    climate(Stepper(model, normalizer, StepperConfig(residual=False), GRID), 150).backward()
    assert model.gain.grad is not None and model.gain.grad.item() == 0.0, "every band within 5 %: no push"
    with pytest.raises(EmulatorError, match=r"train\.climate\.min_degree: 32 leaves no band"):
        train_gain(target, tmp_path / "none.nc", min_degree=32)


class PatternAndSpread(nn.Module):
    """Chain ``i``'s next state ``gain * pattern + spread * offsets[i]``: a zonal climate of two free parameters."""

    def __init__(self, pattern: torch.Tensor, offsets: torch.Tensor) -> None:
        super().__init__()
        self.pattern, self.offsets = pattern, offsets
        self.gain, self.spread = nn.Parameter(torch.ones(())), nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * self.pattern + self.spread * self.offsets[: len(x)]


def test_the_zonal_term_moves_the_chains_zonal_mean_and_its_spread_to_the_targets(tmp_path: Path) -> None:
    truth = PatternAndSpread(random_fields(0), random_fields(2, batch=4))
    truth.gain.data.fill_(2.0)
    truth.spread.data.fill_(3.0)
    with torch.no_grad():  # the target's days: the four chains' states of the truth, in physical units
        zonal_mean = (truth(torch.zeros(4)) * STD[:, None, None]).mean(dim=-1)
    path = write_target(tmp_path / "target.nc", power_of(1.0), zonal_mean=zonal_mean)
    config = ClimateLossConfig(target=str(path), weight=0.0, zonal_weight=1.0, chains=4, spinup_steps=1, memory=0.8)
    # the mean moves with the gain and the spread, the variance with the spread only: each learnt in turn
    for learnt, learning_rate in (("gain", 0.03), ("spread", 1e-3)):
        model = PatternAndSpread(truth.pattern, truth.offsets)
        frozen = model.spread if learnt == "gain" else model.gain
        frozen.requires_grad_(False).fill_(getattr(truth, "spread" if learnt == "gain" else "gain").item())
        climate = train_by_climate_loss(model, config, learning_rate)
        assert abs(getattr(model, learnt).item() - getattr(truth, learnt).item()) < 1e-3, learnt
        assert climate.zonal is not None and climate.zonal_moments is not None
        assert float(climate.zonal[0].abs().max()) < 1e-3, "no offset left"
        torch.testing.assert_close(climate.zonal[1], climate.zonal_moments.target_variance, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="weight and zonal_weight are both 0"):
        ClimateLossConfig(target=str(path), weight=0.0)


def test_zonal_target_is_checked_for_its_variable_channels_and_latitudes(tmp_path: Path) -> None:
    zonal_mean = torch.randn(3, 3, GRID.nlat, dtype=torch.float64)
    path = write_target(tmp_path / "good.nc", power_of(1.0), zonal_mean=zonal_mean)
    mean, std = read_zonal_target(str(path), CHANNELS[::-1], GRID, "key")
    torch.testing.assert_close(mean, zonal_mean.mean(dim=0).flip(0))
    torch.testing.assert_close(std, zonal_mean.std(dim=0, correction=0).flip(0))
    with xr.open_dataset(path) as written:
        dropped, renamed = written.drop_vars("zonal_mean"), written.assign_coords(channel=["a", "b", "c"])
        flipped = written.isel(latitude=slice(None, None, -1))
        for name, dataset in (("dropped", dropped), ("renamed", renamed), ("flipped", flipped)):
            dataset.to_netcdf(tmp_path / f"{name}.nc")
    for name, message in (
        ("dropped", "has no variable 'zonal_mean'"),
        ("renamed", "zonal_mean has no channel 'geopotential@250'"),
        ("flipped", r"zonal_mean's latitudes are not the model grid's \(32, N to S\)"),
    ):
        with pytest.raises(EmulatorError, match=rf"key: .*{name}.nc:? {message}"):
            read_zonal_target(str(tmp_path / f"{name}.nc"), CHANNELS, GRID, "key")


def chain_gradients(target: Path, recompute: bool) -> tuple[int, list[torch.Tensor]]:
    """Bytes the autograd graph keeps in the forward of a six-step window, and the parameters' gradients."""
    torch.manual_seed(0)
    model = build_model(SFNOConfig(embed_dim=8, num_layers=2), 3, 3, GRID)
    normalizer = Normalizer(tuple(CHANNELS), np.zeros(3), STD.double().numpy(), np.ones(3))
    stepper = Stepper(model, normalizer, StepperConfig(spectral_filter={"strength": 0.1, "order": 4}), GRID)
    config = ClimateLossConfig(
        target=str(target), zonal_weight=1.0, chains=2, steps=6, spinup_steps=0, recompute=recompute
    )
    climate = ClimateConstraint(config, normalizer, GRID)
    climate.start(stepper, random_fields(1, batch=2))
    kept, term = saved_bytes(lambda: climate(stepper, 0))
    term.backward()
    return kept, [parameter.grad.clone() for parameter in model.parameters() if parameter.grad is not None]


def test_recomputed_chain_steps_give_the_same_gradient_for_a_fraction_of_the_memory(tmp_path: Path) -> None:
    target = write_target(tmp_path / "target.nc", power_of(1.0))
    kept, gradients = chain_gradients(target, recompute=False)
    kept_recomputing, gradients_recomputing = chain_gradients(target, recompute=True)
    assert len(gradients) == len(list(build_model(SFNOConfig(embed_dim=8, num_layers=2), 3, 3, GRID).parameters()))
    for plain, recomputed in zip(gradients, gradients_recomputing, strict=True):
        torch.testing.assert_close(recomputed, plain)
    assert kept_recomputing < kept / 4, (kept_recomputing, kept)


def world_climate_target(config: Path, path: Path) -> Path:
    """Two two-day years of the tiny world's climate, written by ``emulator world-climate``."""
    assert main(["world-climate", "--config", str(config), "--years", "2", "--days", "2", "--output", str(path)]) == 0
    return path


def test_climate_loss_trains_from_a_world_climate_file_and_resumes_its_chains(
    tiny_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = world_climate_target(tiny_config_file, tmp_path / "climate.nc")
    with xr.open_dataset(target) as written:
        assert written.band_power.dims == ("year", "day", "quantity", "band") and written.band_power.shape[:2] == (2, 2)
        assert written.zonal_mean.dims == ("year", "day", "channel", "latitude")
        assert list(written.channel.values) == CHANNELS and written.latitude.values[0] == 90.0
    settings = f"train.climate={{target: {target}, chains: 2, spinup_steps: 2, weight: 0.5, zonal_weight: 0.5}}"
    arguments = ["train", "--config", str(tiny_config_file), "--device", "cpu", "--set", settings]
    assert main([*arguments, "--set", "train.max_steps=2"]) == 0
    missing = f"train.climate={{target: {tmp_path / 'none.nc'}}}"
    assert main(["train", "--config", str(tiny_config_file), "--device", "cpu", "--set", missing]) == 1
    assert "train.climate.target: " in capsys.readouterr().err
    no_years = ["world-climate", "--config", str(tiny_config_file), "--years", "0", "--output", str(tmp_path / "0.nc")]
    assert main(no_years) == 1 and not (tmp_path / "0.nc").exists()
    assert "world climate: years must be at least 1, got 0" in capsys.readouterr().err


def test_climate_validation_scores_the_largest_band_error_and_names_it(tmp_path: Path) -> None:
    pattern = random_fields(0)
    std = torch.tensor([2.0, 1.0, 1.0])
    target = BandPower(GRID, CHANNELS)((2.0 * pattern * std[:, None, None]).double())[0]
    target[3, 4] *= 0.5  # the target's kinetic energy at degrees 16-31 is half the model's
    offset = torch.tensor([10.0, 1.0, 0.5])  # the target's zonal means, over the model's, on two days of spread 1
    zonal_mean = (
        (2.0 * pattern[0] * std[:, None, None]).mean(dim=-1)
        + offset[:, None]
        + torch.tensor([-1.0, 1.0])[:, None, None]
    )
    path = write_target(tmp_path / "target.nc", target, zonal_mean=zonal_mean)
    config = ClimateValidationConfig(target=str(path), chains=2, spinup_steps=3, steps=4)
    model = Pattern(pattern)
    model.gain.data.fill_(2.0)
    normalizer = Normalizer(tuple(CHANNELS), np.zeros(3), std.double().numpy(), np.ones(3))
    stepper = Stepper(model, normalizer, StepperConfig(residual=False), GRID)
    score = ClimateValidation(config, stepper, normalizer, GRID, random_fields(1, batch=2))()
    expected = torch.ones(4, 5, dtype=torch.float64)
    expected[3, 4] = 2.0
    torch.testing.assert_close(score.ratio, expected)
    assert score.worst == "kinetic_energy@250 16-31" and score.error == pytest.approx(1.0)
    assert score.zonal is not None, "the target has zonal means"
    torch.testing.assert_close(score.zonal, torch.stack([offset, torch.zeros(3)]), rtol=1e-4, atol=1e-3)


def test_climate_validation_keeps_the_checkpoint_whose_free_runs_are_nearest_the_target(
    tiny_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = world_climate_target(tiny_config_file, tmp_path / "climate.nc")
    checkpoint = tmp_path / "run" / "model.ckpt"
    checks = f"train.climate_validation={{target: {target}, every: 1, chains: 2, spinup_steps: 1, steps: 2}}"
    arguments = ["train", "--config", str(tiny_config_file), "--device", "cpu"]
    arguments += ["--set", f"train.checkpoint={checkpoint}"]
    assert main([*arguments, "--set", checks]) == 0
    with checkpoint.with_suffix(".metrics.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["climate_error"]]
    checked = [(int(row["step"]), float(row["climate_error"])) for row in rows]
    steps, errors = zip(*checked, strict=True)
    assert list(steps) == list(range(1, len(steps) + 1)) and len(steps) >= 4, "a check after every step"
    assert len(set(errors)) == len(errors), "every snapshot has its own climate"
    assert load_checkpoint(checkpoint).step == steps[int(np.argmin(errors))]
    with checkpoint.with_suffix(".climate.csv").open(newline="") as handle:
        logged = list(csv.DictReader(handle))
    assert [(int(row["step"]), float(row["climate_error"])) for row in logged] == checked
    bands = [name for name in logged[0] if name not in ("step", "climate_error") and not name.startswith("zonal")]
    assert bands[0] == f"{CHANNELS[0]} 1-1" and len(bands) == 4 * len(LABELS[:4])
    spreads = [float(row[f"zonal spread {channel}"]) for row in logged for channel in CHANNELS]
    assert all(float(row[f"zonal offset {channel}"]) > 0 for row in logged for channel in CHANNELS)
    assert all(0 < spread < math.inf for spread in spreads), "the chains' zonal means vary"
    largest = [max(abs(float(row[band]) - 1) for band in bands) for row in logged]
    np.testing.assert_allclose(largest, errors, rtol=1e-6, err_msg="the error is the worst band's")
    missing = f"train.climate_validation={{target: {tmp_path / 'none.nc'}}}"
    assert main([*arguments, "--set", missing]) == 1
    assert "train.climate_validation.target: " in capsys.readouterr().err


def test_free_runs_go_through_the_free_run_stepper_and_the_windows_do_not(
    tiny_config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = world_climate_target(tiny_config_file, tmp_path / "climate.nc")
    checks = f"train.climate_validation={{target: {target}, every: 1, chains: 2, spinup_steps: 1, steps: 2}}"
    loss = f"train.climate={{target: {target}, chains: 2, spinup_steps: 1, weight: 0.5}}"
    uniform = ", ".join(f"{name}: {{min: 0.0, max: 0.0}}" for name in CHANNELS)  # every state uniform: no band power
    guard = "max_abs_normalized: 1000.0, max_mean_square_normalized: 1.0e6"
    still = f"train.free_run_stepper={{{guard}, clamp: {{{uniform}}}}}"

    def logged(name: str, *settings: str) -> tuple[list[float], list[float]]:
        checkpoint = tmp_path / name / "model.ckpt"
        arguments = ["train", "--config", str(tiny_config_file), "--device", "cpu"]
        assert (
            main([*arguments, "--set", f"train.checkpoint={checkpoint}", "--set", "train.max_steps=3", *settings]) == 0
        )
        with checkpoint.with_suffix(".metrics.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        losses = [float(row["train_loss"]) for row in rows if row["train_loss"]]
        return losses, [float(row["climate_error"]) for row in rows if row["climate_error"]]

    plain_losses, plain_errors = logged("plain", "--set", checks)
    still_losses, still_errors = logged("still", "--set", checks, "--set", still)
    assert still_losses == plain_losses, "the windows go through stepper, not the free runs' stepper"
    assert all(abs(error - 1) < 0.05 for error in still_errors), "the checks ran still: no power in any band"
    assert all(abs(error - 1) > 0.05 for error in plain_errors)
    filtered = f"train.free_run_stepper={{{guard}, spectral_filter: {{strength: 1.0, order: 2}}}}"
    climate_losses = logged("loss", "--set", loss)[0]
    filtered_losses = logged("loss_filtered", "--set", loss, "--set", filtered)[0]
    assert np.isfinite(filtered_losses).all() and filtered_losses != climate_losses, "chains filtered"
    other_model = "train.free_run_stepper={residual: false}"
    assert main(["train", "--config", str(tiny_config_file), "--device", "cpu", "--set", other_model]) == 1
    assert "train.free_run_stepper.residual is False but stepper.residual is True" in capsys.readouterr().err


def test_chains_red_noise_carries_on_across_optimizer_steps_in_every_band(tmp_path: Path) -> None:
    """Drawn afresh at every step, the forcing would lose the memory that makes its effect on the chains."""
    planetary = {"components": ["stream_function@250"], "min_degree": 1, "max_degree": 2, "correlation": 0.9}
    stepper = stochastic_stepper(more_bands=[planetary])  # lag-one correlations 0.6 (degrees 3-10) and 0.9
    grid = Grid(32, 64)
    diagnostics = Diagnostics(grid, CHANNELS)
    target = tmp_path / "target.nc"
    bands = torch.ones(1, 1, 4, len(diagnostics.band_power.labels))
    daily = DailyClimate(torch.ones(1, 1), bands, torch.zeros(1, 1, 3, grid.nlat))
    climate_dataset(daily, diagnostics).to_netcdf(target)
    config = ClimateLossConfig(target=str(target), chains=64, steps=1, spinup_steps=0)
    climate = ClimateConstraint(config, stepper_normalizer(), grid)
    climate.start(stepper, torch.zeros(64, 3, 32, 64))
    forcings = []
    for step in range(2):
        climate(stepper, step)
        assert climate.forcing is not None
        forcings.append(climate.forcing.clone())
    assert forcings[0].shape == (2, 64, 3, grid.max_degree, grid.max_degree, 2)  # band, chain, coefficients
    for band, expected in enumerate((0.6, 0.9)):
        first, second = forcings[0][band], forcings[1][band]
        correlation = float((first * second).sum() / (first.square().sum() * second.square().sum()).sqrt())
        assert abs(correlation - expected) < 0.05
