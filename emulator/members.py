"""Ensemble members: each one's recipe, and its initial state and model noise made from it.

A recipe holds everything that makes a member what it is: the checkpoint (path
and SHA-256), the lag of its start behind the forecast's initial time (in steps;
it is verified at the same valid times as the others), its initial perturbation
and its model noise, each with the entropy its generator is seeded from. Member 0
is the control: the first checkpoint, no lag, no perturbation, no noise. The
others take the checkpoints round-robin, then the lags round-robin. When the
config's stepper has a stochastic forcing, every member (the control too) runs
with it, drawn from a generator seeded ``(seed, member, 2)``
(:meth:`emulator.stepper.Stepper.member_keys`), so it too is reproduced
from the member's number and the recorded ``stepper_stochastic_forcing``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field, model_validator

from emulator.breeding import bred_vector
from emulator.config import EnsembleConfig
from emulator.errors import EmulatorError
from emulator.forecast import ForecastJob
from emulator.perturbations import (
    InitialPerturbationConfig,
    RandomFieldConfig,
    RandomFieldPerturbation,
    seeded_generator,
)
from emulator.schema import Strict

NOISE_STREAM = 1  # last entropy word of a member's model-noise generator, apart from its initial one


class MemberRecipe(Strict):
    """How to reproduce one member exactly."""

    member: int = Field(ge=0)
    checkpoint: str
    checkpoint_sha256: str
    lag_steps: int = Field(0, ge=0)
    initial: InitialPerturbationConfig | None = None
    initial_generator_seed: list[int] | None = None
    model_noise: RandomFieldConfig | None = None
    noise_generator_seed: list[int] | None = None

    @model_validator(mode="after")
    def _seeded(self) -> MemberRecipe:
        if (self.initial is None) != (self.initial_generator_seed is None):
            raise ValueError("initial and initial_generator_seed come together")
        if (self.model_noise is None) != (self.noise_generator_seed is None):
            raise ValueError("model_noise and noise_generator_seed come together")
        return self


def ensemble_recipes(
    settings: EnsembleConfig, count: int, checkpoints: Sequence[tuple[str, str]]
) -> list[MemberRecipe]:
    """Recipes of ``count`` members over ``checkpoints`` ``(path, sha256)`` and ``settings.lag_steps``."""
    recipes = []
    lags = settings.lag_steps
    for member in range(count):
        path, digest = checkpoints[member % len(checkpoints)]
        lag = lags[(member // len(checkpoints)) % len(lags)]
        control = member == 0
        initial, noise = settings.perturbation, settings.model_noise
        recipes.append(
            MemberRecipe(
                member=member,
                checkpoint=path,
                checkpoint_sha256=digest,
                lag_steps=lag,
                initial=None if control else initial,
                initial_generator_seed=None if control else [initial.seed, member],
                model_noise=None if control or noise is None else noise,
                noise_generator_seed=None if control or noise is None else [noise.seed, member, NOISE_STREAM],
            )
        )
    return recipes


class Perturbations:
    """Random-field perturbations by config, built once per config (each holds an inverse SHT)."""

    def __init__(self, job: ForecastJob) -> None:
        self.job = job
        self._built: dict[str, RandomFieldPerturbation] = {}

    def __call__(self, config: RandomFieldConfig) -> RandomFieldPerturbation:
        key = config.model_dump_json()
        if key not in self._built:
            self._built[key] = RandomFieldPerturbation(config, self.job.loaded.prognostic, self.job.loaded.grid)
        return self._built[key]


def member_start(job: ForecastJob, recipe: MemberRecipe) -> int:
    """The store index a member starts from, checked."""
    start = job.start - recipe.lag_steps
    if start < 0:
        raise EmulatorError(
            f"member {recipe.member}: a lag of {recipe.lag_steps} steps before {job.init} "
            f"is before the first time of {job.source.store}"
        )
    return start


def initial_state(job: ForecastJob, recipe: MemberRecipe, perturbations: Perturbations) -> torch.Tensor:
    """The member's normalized initial state ``(channel, lat, lon)``, ``lag_steps`` before the initial time."""
    start = member_start(job, recipe)
    state = job.state_at(start)[0]
    if recipe.initial is None or recipe.initial_generator_seed is None:
        return state
    perturbation = perturbations(recipe.initial)
    generator = seeded_generator(recipe.initial_generator_seed)
    if recipe.initial.kind == "bred_vector":
        return state + bred_vector(job, recipe.initial, perturbation, start, generator)
    return state + perturbation.draw(generator).to(state)


class ModelNoise:
    """Adds each member's own random field to its state after every step."""

    def __init__(self, recipes: Sequence[MemberRecipe], perturbations: Perturbations) -> None:
        self.sources = [
            (perturbations(r.model_noise), seeded_generator(r.noise_generator_seed))
            if r.model_noise is not None and r.noise_generator_seed is not None
            else None
            for r in recipes
        ]

    @property
    def active(self) -> bool:
        return any(source is not None for source in self.sources)

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        """``state`` ``(member, channel, lat, lon)`` plus one fresh draw per noisy member."""
        draws = [
            torch.zeros(state.shape[1:]) if source is None else source[0].draw(source[1]) for source in self.sources
        ]
        return state + torch.stack(draws).to(state)
