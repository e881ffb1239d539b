"""The stepper: everything around the network that makes one step, and the rollout.

The network maps normalized ``[state, forcing]`` to a normalized output. The
stepper turns that into the next normalized state (as a tendency when
``residual`` is on), adds the stochastic forcing of :mod:`emulator.stochastic`
when configured, applies the stability controls (spectral filter, relaxation to
linear balance, divergent-wind damping, rotational drag, divergent partners,
physical clamp, conservation fixers, the tilt's model, each when configured) and
guards the rollout: at the first non-finite value, a value beyond
``max_abs_normalized`` or an area-mean square (energy) beyond
``max_mean_square_normalized``, it stops with an error naming the step and the
channel.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from emulator.angular_momentum import EquatorialAngularMomentumFixer
from emulator.balance import BalanceRelaxation
from emulator.config import StepperConfig
from emulator.data.normalizer import Normalizer
from emulator.divergent_partners import DivergentPartners
from emulator.divergent_wind import DivergentWindDamping
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.models.samples import sample_by_sample_on_cpu
from emulator.perturbations import seeded_generator
from emulator.quadrature import AreaMean
from emulator.rotational_drag import RotationalDrag
from emulator.stability import ConservationFixer, PhysicalClamp, SpectralFilter
from emulator.stochastic import ResidualStatistics, StochasticForcing

FORCING_STREAM = 2  # last entropy word of a member's stochastic-forcing generator
TILT_STREAM = 6  # last entropy word of a member's tilt-innovation generator


class DivergenceError(EmulatorError):
    """A rollout produced a non-finite or exploding value."""

    def __init__(self, step: int, channel: str, reason: str) -> None:
        super().__init__(f"rollout diverged at step {step}: channel {channel!r} {reason}")
        self.step, self.channel = step, channel


class Stepper(nn.Module):
    """``step(state, forcing) -> next state``, all normalized ``(batch, channel, lat, lon)``."""

    def __init__(
        self,
        model: nn.Module,
        normalizer: Normalizer,
        config: StepperConfig,
        grid: Grid,
        residual_statistics: ResidualStatistics | None = None,
    ) -> None:
        super().__init__()
        self.model, self.config = model, config
        self.channels = list(normalizer.channels)
        scale = torch.as_tensor(normalizer.residual_scale(), dtype=torch.float32)
        self.residual_scale: torch.Tensor
        self.register_buffer("residual_scale", scale[:, None, None], persistent=False)
        self.spectral_filter = SpectralFilter(config.spectral_filter, grid) if config.spectral_filter else None
        self.balance = BalanceRelaxation(config.balance, normalizer, grid) if config.balance else None
        self.divergent_wind = (
            DivergentWindDamping(config.divergent_wind, normalizer, grid) if config.divergent_wind else None
        )
        self.rotational_drag = (
            RotationalDrag(config.rotational_drag, normalizer, grid) if config.rotational_drag else None
        )
        self.divergent_partners = (
            DivergentPartners(config.divergent_partners, normalizer, grid) if config.divergent_partners else None
        )
        self.clamp = PhysicalClamp(config.clamp, normalizer) if config.clamp else None
        self.fixer = ConservationFixer(config.conserve, self.channels, grid) if config.conserve else None
        tilt = config.equatorial_angular_momentum
        self.angular_momentum = (
            EquatorialAngularMomentumFixer(normalizer, grid, None if tilt is True else tilt) if tilt else None
        )
        self.area_mean = AreaMean(grid)
        self.stochastic_forcing = None
        if config.stochastic_forcing is not None:
            if residual_statistics is None:
                raise EmulatorError(
                    "stepper.stochastic_forcing needs the checkpoint's residual statistics: run emulator calibrate"
                )
            std = torch.as_tensor(normalizer.std)
            self.stochastic_forcing = StochasticForcing(
                config.stochastic_forcing, residual_statistics, self.channels, std, grid
            )

    def step(
        self,
        state: torch.Tensor,
        forcing: torch.Tensor,
        noise: torch.Tensor | None = None,
        tilt_innovation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One step, plus ``noise`` (the stochastic forcing) before the controls when given, and the tilt model's
        ``tilt_innovation`` (:meth:`tilt_innovations`) when given.

        A forcing with batch size one applies to every member of the batch.
        """
        forcing = forcing.expand(state.shape[0], -1, -1, -1)
        output = self.model(torch.cat([state, forcing], dim=1))
        following = state + self.residual_scale * output if self.config.residual else output
        if noise is not None:
            following = following + noise.to(following.dtype)
        return self.controlled(following, state, tilt_innovation)

    @sample_by_sample_on_cpu
    def controlled(
        self, following: torch.Tensor, state: torch.Tensor, tilt_innovation: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``following``, the step's state after ``state``, through the stability controls."""
        if self.spectral_filter is not None:
            following = self.spectral_filter(following)
        if self.balance is not None:
            following = self.balance(following)
        if self.divergent_wind is not None:
            following = self.divergent_wind(following)
        if self.rotational_drag is not None:
            following = self.rotational_drag(following)
        if self.divergent_partners is not None:
            following = self.divergent_partners(following)
        if self.clamp is not None:
            following = self.clamp(following)
        if self.fixer is not None:
            following = self.fixer(following, state)
        if self.angular_momentum is not None:
            following = self.angular_momentum(following, state, tilt_innovation)
        return following

    def member_keys(self, members: Sequence[int]) -> list[tuple[int, ...]]:
        """The entropy of each member's stochastic-forcing generator: ``(seed, member, FORCING_STREAM)``."""
        seed = self.config.stochastic_forcing.seed if self.config.stochastic_forcing is not None else 0
        return [(seed, member, FORCING_STREAM) for member in members]

    def forcing_noise(self, keys: Sequence[tuple[int, ...]]) -> Iterator[torch.Tensor | None]:
        """The stochastic forcing of each step of a rollout, one member per generator entropy; ``None``s when off."""
        if self.stochastic_forcing is None:
            return itertools.repeat(None)
        return self.stochastic_forcing.draws([seeded_generator(key) for key in keys])

    def tilt_innovations(self, keys: Sequence[tuple[int, ...]]) -> Iterator[torch.Tensor | None]:
        """The tilt model's innovation of each step of a rollout, one member per :meth:`member_keys` entropy (on
        a stream of its own); ``None``s when it has none."""
        generators = [seeded_generator((*key[:-1], TILT_STREAM)) for key in keys]
        return (self.tilt_innovation(generators) for _ in itertools.count())

    def tilt_innovation(self, generators: Sequence[torch.Generator]) -> torch.Tensor | None:
        """One step's tilt-model innovation ``(member, level)``, one member per generator; ``None`` without one."""
        return None if self.angular_momentum is None else self.angular_momentum.innovations(generators)

    def controls(self) -> dict[str, str]:
        """The step's settings and stability controls, for output attributes."""
        return {
            f"stepper_{key}": value if isinstance(value, str) else json.dumps(value)
            for key, value in self.config.model_dump(mode="json").items()
        }

    def check(self, state: torch.Tensor, step: int) -> None:
        """Raise :class:`DivergenceError` if ``state`` is non-finite, too large or too energetic."""
        finite = torch.isfinite(state).flatten(2).all(dim=2).all(dim=0)
        if not bool(finite.all()):
            raise DivergenceError(step, self.channels[int((~finite).nonzero()[0])], "is not finite")
        largest = state.abs().flatten(2).amax(dim=2).amax(dim=0)
        if bool((largest > self.config.max_abs_normalized).any()):
            channel = int(largest.argmax())
            raise DivergenceError(
                step, self.channels[channel], f"reached {float(largest[channel]):.3g} standard deviations"
            )
        energy = self.area_mean(state.float().square()).flatten(1).amax(dim=0)
        if bool((energy > self.config.max_mean_square_normalized).any()):
            channel = int(energy.argmax())
            raise DivergenceError(
                step, self.channels[channel], f"energy blew up: area-mean square {float(energy[channel]):.3g}"
            )

    @torch.no_grad()
    def rollout(
        self,
        initial: torch.Tensor,
        forcings: Iterable[torch.Tensor],
        members: Sequence[int] | None = None,
        perturb: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the state after each step; ``forcings`` gives the forcing at each step's start.

        ``members`` (default ``0, 1, ...``) seed each member's stochastic forcing; ``perturb``
        (model noise) is applied to each step's state before it is checked and fed back.
        """
        keys = self.member_keys(range(len(initial)) if members is None else members)
        # endless: the forcings end the rollout
        noises = zip(self.forcing_noise(keys), self.tilt_innovations(keys), strict=False)
        state = initial
        for step, (forcing, (noise, tilt)) in enumerate(zip(forcings, noises, strict=False), start=1):
            state = self.step(state, forcing, noise, tilt)
            if perturb is not None:
                state = perturb(state)
            if self.config.divergence_guard:
                self.check(state, step)
            yield state
