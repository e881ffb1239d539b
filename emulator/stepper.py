"""The stepper: everything around the network that makes one step, and the rollout.

The network maps normalized ``[state, forcing]`` to a normalized output. The
stepper turns that into the next normalized state (as a tendency when
``residual`` is on) and guards the rollout: at the first non-finite value, or a
normalized magnitude above ``max_abs_normalized``, it stops with an error naming
the step and the channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from emulator.config import StepperConfig
from emulator.data.normalizer import Normalizer
from emulator.errors import EmulatorError


class DivergenceError(EmulatorError):
    """A rollout produced a non-finite or exploding value."""

    def __init__(self, step: int, channel: str, reason: str) -> None:
        super().__init__(f"rollout diverged at step {step}: channel {channel!r} {reason}")
        self.step, self.channel = step, channel


class Stepper(nn.Module):
    """``step(state, forcing) -> next state``, all normalized ``(batch, channel, lat, lon)``."""

    def __init__(self, model: nn.Module, normalizer: Normalizer, config: StepperConfig) -> None:
        super().__init__()
        self.model, self.config = model, config
        self.channels = list(normalizer.channels)
        scale = torch.as_tensor(normalizer.residual_scale(), dtype=torch.float32)
        self.residual_scale: torch.Tensor
        self.register_buffer("residual_scale", scale[:, None, None], persistent=False)

    def step(self, state: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
        """One step; a forcing with batch size one applies to every member of the batch."""
        forcing = forcing.expand(state.shape[0], -1, -1, -1)
        output = self.model(torch.cat([state, forcing], dim=1))
        return state + self.residual_scale * output if self.config.residual else output

    def controls(self) -> dict[str, str]:
        """The stability controls in force, for output attributes."""
        return {f"stepper_{key}": str(value) for key, value in self.config.model_dump().items()}

    def check(self, state: torch.Tensor, step: int) -> None:
        """Raise :class:`DivergenceError` if ``state`` is non-finite or too large."""
        finite = torch.isfinite(state).flatten(2).all(dim=2).all(dim=0)
        if not bool(finite.all()):
            raise DivergenceError(step, self.channels[int((~finite).nonzero()[0])], "is not finite")
        largest = state.abs().flatten(2).amax(dim=2).amax(dim=0)
        if bool((largest > self.config.max_abs_normalized).any()):
            channel = int(largest.argmax())
            raise DivergenceError(
                step, self.channels[channel], f"reached {float(largest[channel]):.3g} standard deviations"
            )

    @torch.no_grad()
    def rollout(self, initial: torch.Tensor, forcings: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """Yield the state after each step; ``forcings`` gives the forcing at each step's start."""
        state = initial
        for step, forcing in enumerate(forcings, start=1):
            state = self.step(state, forcing)
            if self.config.divergence_guard:
                self.check(state, step)
            yield state
