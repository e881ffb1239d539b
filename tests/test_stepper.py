"""The stepper around a stand-in network: residual arithmetic and the divergence guard."""

import numpy as np
import pytest
import torch
from torch import nn

from emulator.config import StepperConfig
from emulator.data.normalizer import Normalizer
from emulator.stepper import DivergenceError, Stepper

NORMALIZER = Normalizer(("a", "b"), np.zeros(2), np.array([2.0, 4.0]), np.array([1.0, 1.0]))


class Constant(nn.Module):
    """Returns ``value`` everywhere for the first ``channels`` channels of the input."""

    def __init__(self, value: float, channels: int = 2) -> None:
        super().__init__()
        self.value, self.channels = value, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, : self.channels], self.value)


def test_residual_step_adds_tendency_in_normalized_units() -> None:
    stepper = Stepper(Constant(1.0), NORMALIZER, StepperConfig(residual=True))
    state = torch.zeros(1, 2, 4, 8)
    out = stepper.step(state, torch.zeros(1, 0, 4, 8))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.5, 0.25]))  # tendency_std / std


def test_direct_step_returns_network_output() -> None:
    stepper = Stepper(Constant(3.0), NORMALIZER, StepperConfig(residual=False))
    out = stepper.step(torch.zeros(1, 2, 4, 8), torch.zeros(1, 0, 4, 8))
    assert torch.all(out == 3.0)


def test_rollout_yields_one_state_per_forcing() -> None:
    stepper = Stepper(Constant(0.0), NORMALIZER, StepperConfig())
    states = list(stepper.rollout(torch.ones(1, 2, 4, 8), (torch.zeros(1, 0, 4, 8) for _ in range(5))))
    assert len(states) == 5 and all(torch.equal(s, torch.ones(1, 2, 4, 8)) for s in states)


def test_guard_names_step_and_channel_of_nonfinite_value() -> None:
    class NanInB(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros_like(x[:, :2])
            out[:, 1, 2, 3] = float("nan")
            return out

    stepper = Stepper(NanInB(), NORMALIZER, StepperConfig())
    with pytest.raises(DivergenceError, match=r"step 1: channel 'b' is not finite"):
        list(stepper.rollout(torch.zeros(1, 2, 4, 8), [torch.zeros(1, 0, 4, 8)]))


def test_guard_stops_a_blow_up_at_the_step_it_happens() -> None:
    stepper = Stepper(Constant(10.0), NORMALIZER, StepperConfig(max_abs_normalized=12.0))
    forcings = [torch.zeros(1, 0, 4, 8)] * 10
    with pytest.raises(DivergenceError) as caught:
        list(stepper.rollout(torch.zeros(1, 2, 4, 8), forcings))
    assert caught.value.step == 3 and caught.value.channel == "a"  # 5 per step in channel a


def test_controls_are_reported() -> None:
    controls = Stepper(Constant(0.0), NORMALIZER, StepperConfig()).controls()
    assert controls["stepper_residual"] == "True" and "stepper_divergence_guard" in controls
