"""Scores against closed-form values."""

import math

import numpy as np
import pytest
import xarray as xr

from emulator.grid import Grid
from emulator.metrics import acc, bias, crps, rmse, spread

GRID = Grid(32, 64)
DIMS = ("latitude", "longitude")


def field(values: np.ndarray) -> xr.DataArray:
    return xr.DataArray(values, dims=(*(["member"] if values.ndim == 3 else []), *DIMS))


def test_rmse_and_bias_of_a_constant_offset() -> None:
    truth = field(np.random.default_rng(0).normal(size=GRID.shape))
    assert float(rmse(truth + 2.5, truth, GRID)) == pytest.approx(2.5)
    assert float(bias(truth - 1.5, truth, GRID)) == pytest.approx(-1.5)


def test_area_weighting_counts_polar_rows_by_their_area() -> None:
    truth = field(np.zeros(GRID.shape))
    error = np.zeros(GRID.shape)
    error[0] = 1.0  # the north pole row
    weight = GRID.area_weights[0] / GRID.area_weights.sum()
    assert float(rmse(field(error), truth, GRID)) ** 2 == pytest.approx(weight)


def test_crps_of_a_standard_normal_ensemble_matches_the_closed_form() -> None:
    members = field(np.random.default_rng(1).normal(size=(40, *GRID.shape)))
    truth = field(np.zeros(GRID.shape))
    expected = 2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi)  # CRPS(N(0, 1), 0)
    assert float(crps(members, truth, GRID)) == pytest.approx(expected, rel=0.03)


def test_a_reliable_ensemble_has_spread_equal_to_skill() -> None:
    rng = np.random.default_rng(2)
    count = 20
    members, truth = field(rng.normal(size=(count, *GRID.shape))), field(rng.normal(size=GRID.shape))
    ratio = float(spread(members, GRID) / rmse(members.mean("member"), truth, GRID))
    assert ratio == pytest.approx(math.sqrt(count / (count + 1)), rel=0.05)


def test_anomaly_correlation_of_perfect_opposite_and_unrelated_forecasts() -> None:
    rng = np.random.default_rng(3)
    climatology = field(rng.normal(size=GRID.shape))
    truth = climatology + field(rng.normal(size=GRID.shape))
    assert float(acc(truth, truth, climatology, GRID)) == pytest.approx(1.0)
    assert float(acc(2 * climatology - truth, truth, climatology, GRID)) == pytest.approx(-1.0)
    unrelated = climatology + field(rng.normal(size=GRID.shape))
    assert abs(float(acc(unrelated, truth, climatology, GRID))) < 0.1
