"""Gaussian random field perturbations: unit variance, length scale, reproducible members."""

import pytest
import torch

from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.perturbations import GaussianRandomField, RandomFieldConfig, RandomFieldPerturbation, seeded_generator
from emulator.spectra import PowerSpectrum

GRID = Grid(48, 96, "legendre-gauss")


def test_fields_have_unit_variance_and_no_mean() -> None:
    fields = GaussianRandomField(GRID, length_scale_km=1000.0, smoothness=2.0).sample(
        400, torch.Generator().manual_seed(0)
    )
    weights = torch.as_tensor(GRID.area_weights, dtype=torch.float32)[:, None]
    variance = float((fields.square() * weights).mean())
    assert variance == pytest.approx(1.0, rel=0.08)
    assert abs(float((fields * weights).mean(dim=(1, 2)).mean())) < 0.02


def test_shorter_length_scale_puts_power_at_higher_degrees() -> None:
    power = PowerSpectrum(GRID)
    generator = torch.Generator().manual_seed(1)

    def centroid(length_km: float) -> float:
        spectrum = power(GaussianRandomField(GRID, length_km, 2.0).sample(64, generator)).mean(dim=0)
        degree = torch.arange(len(spectrum), dtype=spectrum.dtype)
        return float((degree * spectrum).sum() / spectrum.sum())

    assert centroid(300.0) > 1.5 * centroid(2000.0)


def test_draws_are_reproducible_from_their_seed_and_scaled_per_channel() -> None:
    config = RandomFieldConfig(amplitude={"a": 0.5}, default_amplitude=0.1, seed=7)
    perturbation = RandomFieldPerturbation(config, ["a", "b"], GRID)
    first, again = perturbation.draw(seeded_generator([7, 3])), perturbation.draw(seeded_generator([7, 3]))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, perturbation.draw(seeded_generator([7, 4])))
    ratio = float(first[0].std() / first[1].std())
    assert ratio == pytest.approx(5.0, rel=0.5), "amplitude per channel"
    with pytest.raises(EmulatorError, match="unknown channels"):
        RandomFieldPerturbation(RandomFieldConfig(amplitude={"zz": 1.0}), ["a"], GRID)
