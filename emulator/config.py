"""Typed, strict configuration: YAML in, validated objects out.

Every section forbids unknown keys; a bad key or value becomes an
:class:`~emulator.errors.EmulatorError` naming the file and the dotted key.
Overrides use one syntax, ``section.key=value`` (the value parsed as YAML). A config
may ``extends: other.yaml`` (a path relative to it): its sections are merged over the
other's, mapping by mapping (anything else, lists included, replaced).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from emulator.angular_momentum import TiltModel
from emulator.balance import BalanceConfig
from emulator.data.forcings import COMPUTED
from emulator.data.regrid import RegridConfig
from emulator.divergent_partners import DivergentPartnersConfig
from emulator.divergent_wind import DivergentWindConfig
from emulator.errors import EmulatorError
from emulator.models.registry import ModelConfig
from emulator.perturbations import InitialPerturbationConfig, RandomFieldConfig
from emulator.rotational_drag import RotationalDragConfig
from emulator.schema import Strict
from emulator.stability import Bounds, SpectralFilterConfig
from emulator.stochastic import StochasticForcingConfig
from emulator.training.climate import ClimateLossConfig
from emulator.training.climate_validation import ClimateValidationConfig
from emulator.training.loss import LossConfig
from emulator.training.mirror import MirrorConfig
from emulator.world.shallow_water import WorldPhysics


class WorldConfig(Strict):
    """How ``emulator synth`` writes the built-in shallow-water world."""

    seed: int = 0
    start: str = "2000-01-01T00:00"
    spinup_days: int = Field(40, ge=0)
    record_days: float = Field(120.0, gt=0)
    output_interval_hours: int = Field(6, gt=0)
    physics: WorldPhysics = WorldPhysics()

    @model_validator(mode="after")
    def _interval_is_whole_steps(self) -> WorldConfig:
        steps = self.output_interval_hours * 3600 / self.physics.dt_seconds
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError("output_interval_hours must be a whole number of physics.dt_seconds")
        return self


Period = tuple[str, str]


class DataConfig(Strict):
    """Which store, which channels, on which grid, and how time is split.

    ``forcing`` may name computed forcings (``cos_zenith``, ``toa_insolation``,
    ``sin_time_of_day``, ...; see :mod:`emulator.data.forcings`) beside stored fields.
    """

    store: str
    prognostic: list[str] = Field(min_length=1)
    forcing: list[str] = Field(default_factory=list)
    regrid: RegridConfig | None = Field(None, description="the model's grid, when it differs from the store's")
    train_period: Period | None = None
    validation_period: Period | None = None
    test_period: Period | None = None

    @field_validator("train_period", "validation_period", "test_period")
    @classmethod
    def _valid_period(cls, period: Period | None) -> Period | None:
        if period is not None and pd.Timestamp(period[0]) > pd.Timestamp(period[1]):
            raise ValueError(f"period starts after it ends: {period}")
        return period

    @model_validator(mode="after")
    def _periods_apart(self) -> DataConfig:
        periods = {
            name: getattr(self, f"{name}_period")
            for name in ("train", "validation", "test")
            if getattr(self, f"{name}_period") is not None
        }
        names = list(periods)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                (a0, a1), (b0, b1) = periods[first], periods[second]
                if pd.Timestamp(a0) <= pd.Timestamp(b1) and pd.Timestamp(b0) <= pd.Timestamp(a1):
                    raise ValueError(f"{first}_period and {second}_period overlap")
        return self

    @field_validator("prognostic")
    @classmethod
    def _not_computed(cls, channels: list[str]) -> list[str]:
        computed = [channel for channel in channels if channel in COMPUTED]
        if computed:
            raise ValueError(f"{computed[0]!r} is a computed forcing; list it under data.forcing")
        return channels


class StepperConfig(Strict):
    """The step around the network and its stability controls; each is recorded in output attributes.

    ``residual`` belongs to the model (a forecast takes it from the checkpoint); the
    controls apply to any model, so a forecast takes them from its own config. The
    stochastic forcing needs the checkpoint's residual statistics (``emulator calibrate``);
    during training it is on in the training rollouts and off in validation.
    """

    residual: bool = True
    spectral_filter: SpectralFilterConfig | None = None
    balance: BalanceConfig | None = Field(
        None, description="relax the geopotential toward linear balance with the wind; None: off"
    )
    divergent_wind: DivergentWindConfig | None = Field(
        None, description="damp the divergent part of the wind at each level; None: off"
    )
    rotational_drag: RotationalDragConfig | None = Field(
        None, description="slow chosen modes of the rotational wind toward rest each step; None: off"
    )
    divergent_partners: DivergentPartnersConfig | None = Field(
        None, description="set chosen divergent coefficients toward their rotational partners each step; None: off"
    )
    clamp: dict[str, Bounds] = Field(default_factory=dict, description="physical bounds per channel, store units")
    conserve: list[str] = Field(default_factory=list, description="channels whose global mean each step keeps")
    equatorial_angular_momentum: bool | TiltModel = Field(
        False,
        description="true: hold each wind level's equatorial rotation (degree 1, order 1) at its value before the "
        "step; a TiltModel: advance it by that linear model",
    )
    stochastic_forcing: StochasticForcingConfig | None = Field(
        None, description="red noise after every step with the residuals' covariance; None: deterministic"
    )
    divergence_guard: bool = True
    max_abs_normalized: float = Field(50.0, gt=0, description="guard: largest value, in standard deviations")
    max_mean_square_normalized: float = Field(
        25.0, gt=0, description="guard: energy blow-up, area-mean square in standard deviations squared"
    )


class Stage(Strict):
    """One stage of training: its epochs, rollout length and peak learning rate (warm-up then cosine)."""

    epochs: int = Field(1, gt=0)
    rollout_steps: int = Field(1, gt=0, description="autoregressive steps per loss")
    learning_rate: float = Field(1e-3, gt=0)
    max_steps: int | None = Field(None, gt=0, description="stop the stage after this many optimizer steps")


class OnlineConfig(Strict):
    """Training on fresh trajectories of the built-in world, simulated while training runs."""

    trajectories: int = Field(4, gt=0, description="independent solver runs feeding the buffer")
    spinup_days: int = Field(20, ge=0)
    buffer_windows: int = Field(256, gt=0, description="windows held; each step draws its batch from them")
    refresh_per_step: int = Field(4, ge=1, description="new windows simulated per optimizer step")
    statistics_windows: int = Field(64, gt=0, description="windows simulated to estimate the normalization")


class TrainConfig(Strict):
    """The optimisation; ``curriculum`` (stages run in order) replaces the single-stage keys when given."""

    seed: int = 0
    batch_size: int = Field(8, gt=0)
    epochs: int = Field(1, gt=0)
    max_steps: int | None = Field(None, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    rollout_steps: int = Field(1, gt=0)
    curriculum: list[Stage] = Field(default_factory=list)
    warmup_fraction: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    gradient_clip: float | None = Field(1.0, gt=0, description="largest gradient norm; None: no clipping")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="EMA of weights, validated and saved; None: off")
    input_noise: float = Field(0.0, ge=0, description="std of Gaussian noise on each window's first state")
    input_noise_length_scale_km: float | None = Field(
        None, gt=0, description="correlation length of the input noise (a Gaussian random field); None: white"
    )
    mirror: MirrorConfig | None = Field(
        None, description="train on the north-south mirror image of some windows (a symmetric world only)"
    )
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast the network")
    ensemble_members: int = Field(
        1, gt=0, description="rollouts of each window, each with its own stochastic forcing (for the CRPS loss)"
    )
    loss: LossConfig = LossConfig()
    climate: ClimateLossConfig | None = Field(
        None, description="a climate loss on free-running chains (emulator.training.climate); None: off"
    )
    climate_validation: ClimateValidationConfig | None = Field(
        None,
        description="keep the checkpoint whose free-running climate is nearest a target's "
        "(emulator.training.climate_validation); None: the best by validation loss",
    )
    free_run_stepper: StepperConfig | None = Field(
        None,
        description="the step and controls of free runs (the climate loss's chains, the climate checks), such "
        "as those forecasts will use, while the window loss sees the model's own errors; None: stepper",
    )
    num_workers: int = Field(0, ge=0)
    checkpoint: str = "checkpoints/model.ckpt"
    checkpoint_every: int | None = Field(None, gt=0, description="also save the resumable state every N steps")
    init_checkpoint: str | None = Field(None, description="fine-tune: start from these weights and statistics")
    log_every: int = Field(20, gt=0)
    online: OnlineConfig | None = Field(None, description="train on the world's solver, no store; needs world:")

    def stages(self) -> list[Stage]:
        """The curriculum, or the single stage the top-level keys describe."""
        return self.curriculum or [
            Stage(
                epochs=self.epochs,
                rollout_steps=self.rollout_steps,
                learning_rate=self.learning_rate,
                max_steps=self.max_steps,
            )
        ]


class ForecastConfig(Strict):
    checkpoint: str = "checkpoints/model.ckpt"
    init_time: str = "latest"
    lead_steps: int = Field(40, gt=0)
    output_dir: str = "outputs"
    naming: Literal["cf", "weatherbench2"] = Field(
        "cf", description="output dimension names: CF (member, init_time, lead_time) or WeatherBench2's"
    )
    compression: Literal["zlib", "zstd", "none"] = Field(
        "zlib",
        description="NetCDF filter at level 1 (zlib after a byte shuffle, deflated by ISA-L): zlib is read "
        "everywhere; zstd's readers need netCDF-C 4.9+ with the filter plugins (the netCDF4 wheels have them)",
    )
    output_every: int = Field(
        1, gt=0, description="write every k-th step of the rollout (1: all); the lead must be a whole number of them"
    )


class EnsembleConfig(Strict):
    """An ensemble: member 0 is the control; the others are perturbed (see :mod:`emulator.members`)."""

    members: int = Field(8, gt=0)
    batch_size: int | None = Field(None, gt=0, description="members rolled out together; None: as many as fit")
    perturbation: InitialPerturbationConfig = InitialPerturbationConfig()
    model_noise: RandomFieldConfig | None = Field(None, description="a random field added after every step")
    checkpoints: list[str] = Field(
        default_factory=list, description="members take these round-robin; empty: forecast.checkpoint"
    )
    lag_steps: list[int] = Field(
        default_factory=lambda: [0], min_length=1, description="starts this many steps early, round-robin"
    )
    climate_forcing: bool = Field(
        False,
        description="every member, the control too, runs with the climate forcing (Config.climate_stepper): "
        "spread from the model's own error",
    )
    output_format: Literal["netcdf", "zarr"] = "netcdf"

    @field_validator("lag_steps")
    @classmethod
    def _lags_valid(cls, lags: list[int]) -> list[int]:
        if any(lag < 0 for lag in lags) or len(set(lags)) != len(lags):
            raise ValueError(f"lags must be distinct and not negative: {lags}")
        return lags


class ClimateConfig(Strict):
    """Long free-running rollouts (a climate): the stepper's controls plus a stochastic forcing.

    Forecasts stay deterministic: the forcing stands in for the unresolved variability a
    climate needs and costs a forecast its skill (``benchmarks/RESULTS.md``, session 41).
    """

    stochastic_forcing: StochasticForcingConfig | None = Field(
        None, description="None: the one the checkpoint was trained through, if any"
    )


class Config(Strict):
    """A whole run: data, model, stepper, training, forecast; ``world`` if synthetic."""

    world: WorldConfig | None = None
    data: DataConfig
    model: ModelConfig
    stepper: StepperConfig = StepperConfig()
    train: TrainConfig = TrainConfig()
    forecast: ForecastConfig = ForecastConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    climate: ClimateConfig = ClimateConfig()

    def climate_stepper(self, trained: Config) -> StepperConfig:
        """``stepper`` with the stochastic forcing of climate rollouts of a model trained with ``trained``.

        The stepper's own if it has one, else ``climate.stochastic_forcing``, else the one the
        model was trained through: that of its free runs (``train.free_run_stepper``: the climate
        loss's chains and climate validation) when they had their own, else its training windows'.
        """
        if self.stepper.stochastic_forcing is not None:
            return self.stepper
        trained_forcing = (trained.train.free_run_stepper or trained.stepper).stochastic_forcing
        forcing = self.climate.stochastic_forcing or trained_forcing
        return self.stepper.model_copy(update={"stochastic_forcing": forcing})

    @model_validator(mode="after")
    def _online_needs_a_world(self) -> Config:
        if self.train.online is not None and self.world is None:
            raise ValueError("train.online simulates the built-in world: the config needs a world: section")
        return self

    @model_validator(mode="after")
    def _free_runs_step_the_same_model(self) -> Config:
        free_run = self.train.free_run_stepper
        if free_run is not None and free_run.residual != self.stepper.residual:
            raise ValueError(
                f"train.free_run_stepper.residual is {free_run.residual} but stepper.residual is "
                f"{self.stepper.residual}: it is the model's, the same in every run of it"
            )
        return self


def _plain(node: Any) -> Any:
    """YAML reads unquoted timestamps as dates; the config keeps every time as an ISO string."""
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    if isinstance(node, datetime.date):
        return node.isoformat()
    return node


def _apply_override(tree: dict[str, Any], override: str, source: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise EmulatorError(f"{source}: override {override!r} is not of the form section.key=value")
    *parents, leaf = key.strip().split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise EmulatorError(f"{source}: override {key!r}: {part!r} is not a section")
        node = child
    node[leaf] = _plain(yaml.safe_load(raw))


def _format_error(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{source}: {where}: {message}"


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys: mappings merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in over.items():
        both_mappings = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_mappings else value
    return merged


def _read_tree(path: Path, extended_by: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config's tree, merged over the tree of the file its ``extends`` key names (relative to it)."""
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise EmulatorError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise EmulatorError(f"{path}: not valid YAML: {error}".splitlines()[0]) from None
    if not isinstance(tree, dict):
        raise EmulatorError(f"{path}: the top level must be a mapping of sections")
    tree = _plain(tree)
    base = tree.pop("extends", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise EmulatorError(f"{path}: extends: must be the path of another config, not {base!r}")
    base_path = path.parent / base
    if base_path.resolve() in (path.resolve(), *extended_by):
        raise EmulatorError(f"{path}: extends: {base_path} extends this file in turn")
    if not base_path.is_file():
        raise EmulatorError(f"{path}: extends: {base_path}: config file not found")
    return _merged(_read_tree(base_path, (*extended_by, path.resolve())), tree)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config safely (over the one it ``extends``), apply ``key=value`` overrides, validate strictly."""
    path = Path(path)
    tree = _read_tree(path)
    for override in overrides:
        _apply_override(tree, override, str(path))
    return config_from_dict(tree, str(path))


def config_from_dict(tree: dict[str, Any], source: str) -> Config:
    """Validate a config tree (as read from YAML or a checkpoint)."""
    try:
        return Config.model_validate(tree)
    except ValidationError as error:
        raise EmulatorError(_format_error(error, source)) from None
