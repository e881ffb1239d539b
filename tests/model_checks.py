"""Checks every registered model must pass, shared by the per-model test files."""

from collections.abc import Callable

import torch
from torch import nn


def assert_gradients_reach_every_parameter(model: nn.Module, x: torch.Tensor) -> None:
    model(x).square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def assert_same_seed_same_output(build: Callable[[], nn.Module], x: torch.Tensor, seed: int) -> None:
    outputs = []
    for _ in range(2):
        torch.manual_seed(seed)
        outputs.append(build()(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def assert_each_sample_alone_in_eval_on_a_cpu(model: nn.Module, x: torch.Tensor) -> None:
    """A member's bits must not depend on its batch (ensembles re-run members alone)."""
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), torch.cat([model(sample) for sample in x.split(1)]), rtol=0, atol=0)
