"""AFNO (FourCastNet): shapes on odd grids, gradients, determinism, config errors."""

import pytest
import torch

from emulator.config import config_from_dict
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.models.afno import AFNOConfig
from emulator.models.registry import build_model
from tests.model_checks import (
    assert_each_sample_alone_in_eval_on_a_cpu,
    assert_gradients_reach_every_parameter,
    assert_same_seed_same_output,
)

CONFIG = AFNOConfig(embed_dim=16, num_blocks=4, num_layers=2, hard_thresholding_fraction=0.5)


@pytest.mark.parametrize(("nlat", "nlon"), [(32, 64), (33, 64), (121, 240), (181, 360)])
def test_shapes_on_grids_not_divisible_by_the_patch(nlat: int, nlon: int) -> None:
    model = build_model(CONFIG, 5, 3, Grid(nlat, nlon))
    assert model(torch.randn(2, 5, nlat, nlon)).shape == (2, 3, nlat, nlon)


def test_gradients_reach_every_parameter() -> None:
    assert_gradients_reach_every_parameter(build_model(CONFIG, 3, 3, Grid(32, 64)), torch.randn(2, 3, 32, 64))


def test_same_seed_same_output() -> None:
    assert_same_seed_same_output(lambda: build_model(CONFIG, 3, 3, Grid(32, 64)), torch.randn(1, 3, 32, 64), seed=3)


def test_afno_is_chosen_by_name_in_config() -> None:
    tree = {"data": {"store": "x", "prognostic": ["a"]}, "model": {"name": "afno", "patch_size": 8}}
    assert config_from_dict(tree, "t").model.patch_size == 8
    tree["model"]["num_heads"] = 3
    with pytest.raises(EmulatorError, match=r"model\.afno\.num_heads: unknown key"):
        config_from_dict(tree, "t")


def test_a_batch_in_eval_on_a_cpu_is_each_sample_alone_bitwise() -> None:
    torch.manual_seed(0)
    assert_each_sample_alone_in_eval_on_a_cpu(build_model(CONFIG, 3, 3, Grid(32, 64)), torch.randn(5, 3, 32, 64))
