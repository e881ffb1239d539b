"""The training loop: a curriculum of multi-step stages, AdamW, EMA, exact resume.

Each optimisation step rolls the stepper ``rollout_steps`` times from the first
state of a window (plus ``input_noise``, and the stochastic forcing after every
step when ``stepper.stochastic_forcing`` is set) and averages the configured loss
against the following states. With ``ensemble_members`` > 1 each window is rolled
out by that many members, each with its own draw of the stochastic forcing, and
validated the same way (with fixed draws), so that an ensemble loss (CRPS) sees
them. Each stage of the curriculum has its own rollout length and a learning
rate that warms up then decays on a cosine. Validation runs after every epoch,
on the EMA weights when ``ema_decay`` is set, with the longest rollout of the
curriculum; the checkpoint kept is the one with the lowest validation loss (the
last one when no validation period is set). With ``train.climate`` the climate
loss of :mod:`emulator.training.climate` is added to every step's loss (not to
validation); its chains start from states of the training period. With
``train.climate_validation`` the checkpoint kept is instead the one whose free runs'
climate is nearest a target's (:mod:`emulator.training.climate_validation`), checked
every ``every`` steps and at the end of every stage; the validation loss is still logged.
Both free runs go through ``train.free_run_stepper`` when it is set (the controls
forecasts will use), while the windows go through ``stepper`` (trained without a
control, the network cannot lean on it: session 20's model trained without the mass
fixer stopped losing mass).

Every ``checkpoint_every`` steps and at the end of every epoch the whole state
(weights, EMA, optimizer, position) is saved beside the checkpoint; ``resume``
continues from it and, on a CPU, gives the loss curve of an uninterrupted run.
Metrics go to ``<checkpoint>.metrics.csv`` (and each climate check's band ratios to
``<checkpoint>.climate.csv``), readable without this code.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from emulator.checkpoint import Checkpoint, build_for, check_fits, load_checkpoint
from emulator.config import Config, Stage
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_statistics
from emulator.device import choose_device
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.models.registry import parameter_count
from emulator.perturbations import GaussianRandomField, seeded_generator
from emulator.stepper import FORCING_STREAM, Stepper
from emulator.stochastic import ResidualStatistics
from emulator.training.batches import Batch, StoreBatches, epoch_key
from emulator.training.climate import ClimateConstraint
from emulator.training.climate_validation import ClimateLog, ClimateValidation
from emulator.training.loss import TrainingLoss
from emulator.training.mirror import Mirror
from emulator.training.online import OnlineBatches, estimate_statistics, world_grid
from emulator.training.state import Progress, load_normalizer, load_state, save_state, state_path

LOG = logging.getLogger(__name__)
METRICS_HEADER = [
    "step", "stage", "epoch", "learning_rate", "train_loss", "gradient_norm", "validation_loss", "climate_error"
]  # fmt: skip


class Batches(Protocol):
    def __len__(self) -> int: ...

    def epoch(self, key: int, skip: int = 0) -> Iterator[Batch]: ...


def rollout_loss(
    stepper: Stepper,
    loss: nn.Module,
    state: torch.Tensor,
    forcing: torch.Tensor,
    keys: Sequence[tuple[int, ...]] = (),
    members: int = 1,
) -> torch.Tensor:
    """Mean loss over a multi-step rollout of ``state[:, 0]`` against ``state[:, 1:]``.

    Each window is rolled out by ``members`` members, consecutive in the batch; ``keys``
    (one per member) seed the generators of the stepper's stochastic forcing and tilt innovations, when it has
    them.
    """
    prediction, total = state[:, 0].repeat_interleave(members, dim=0), state.new_zeros(())
    forcing = forcing.repeat_interleave(members, dim=0)
    steps = state.shape[1] - 1
    noises = zip(stepper.forcing_noise(keys), stepper.tilt_innovations(keys), strict=False)
    for i, (noise, tilt) in enumerate(islice(noises, steps)):
        prediction = stepper.step(prediction, forcing[:, i], noise, tilt)
        total = total + loss(prediction, state[:, i + 1])
    return total / steps


def learning_rate(step: int, total: int, peak: float, warmup_fraction: float) -> float:
    """Linear warm-up over ``warmup_fraction`` of the stage, then cosine decay to zero."""
    warmup = max(1, int(warmup_fraction * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def stage_steps(stage: Stage, batches_per_epoch: int) -> int:
    """Optimizer steps in a stage."""
    return min(stage.max_steps or math.inf, stage.epochs * batches_per_epoch)  # type: ignore[return-value]


class Trainer:
    """The model, its EMA, stepper, loss and optimizer, and one optimisation step."""

    def __init__(
        self,
        config: Config,
        normalizer: Normalizer,
        grid: Grid,
        device: torch.device,
        residual_statistics: ResidualStatistics | None = None,
    ) -> None:
        data, settings = config.data, config.train
        self.config, self.normalizer, self.grid, self.device = config, normalizer, grid, device
        self.residual_statistics = residual_statistics
        if config.stepper.stochastic_forcing is not None and residual_statistics is None:
            raise EmulatorError(
                "stepper.stochastic_forcing: train.init_checkpoint must be a checkpoint with residual statistics "
                f"(run emulator calibrate on it); it is {settings.init_checkpoint}"
            )
        self.members = settings.ensemble_members
        if self.members > 1 and config.stepper.stochastic_forcing is None:
            raise EmulatorError(
                f"train.ensemble_members is {self.members}: members differ only by stepper.stochastic_forcing, "
                "which is not set"
            )
        torch.manual_seed(settings.seed)
        self.model = build_for(config, data.prognostic, data.forcing, grid).to(device)
        # Parameters only: the models' buffers are constants (transform matrices, index
        # tables), and averaging an integer index table would truncate it into garbage.
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay), use_buffers=False)
            if settings.ema_decay
            else None
        )
        prognostic = normalizer.subset(data.prognostic)
        self.stepper = Stepper(self.model, prognostic, config.stepper, grid, residual_statistics).to(device)
        self.free_run_stepper = (
            self.stepper
            if settings.free_run_stepper is None
            else Stepper(self.model, prognostic, settings.free_run_stepper, grid, residual_statistics).to(device)
        )
        evaluated = self.model if self.ema is None else self.ema.module
        validated = config.stepper
        if self.members == 1:
            validated = config.stepper.model_copy(update={"stochastic_forcing": None})
        self.evaluation_stepper = Stepper(evaluated, prognostic, validated, grid, residual_statistics).to(device)
        std = prognostic.std.tolist()
        self.loss = TrainingLoss(settings.loss, data.prognostic, grid, std, self.members).to(device)
        self.climate = None
        if settings.climate is not None:
            self.climate = ClimateConstraint(settings.climate, prognostic, grid).to(device)
        length = settings.input_noise_length_scale_km
        self.noise_field = None if length is None else GaussianRandomField(grid, length, smoothness=2.0)
        channels = normalizer.subset(data.prognostic + data.forcing)
        self.mirror = None if settings.mirror is None else Mirror(settings.mirror, channels, settings.seed)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )

    @property
    def evaluated_model(self) -> nn.Module:
        """The weights that are validated and saved: the EMA's when there is one."""
        return self.model if self.ema is None else self.ema.module

    def free_running_stepper(self) -> Stepper:
        """The saved weights through the free runs' stepper, its controls and stochastic forcing."""
        prognostic = self.normalizer.subset(self.config.data.prognostic)
        controls = self.free_run_stepper.config
        return Stepper(self.evaluated_model, prognostic, controls, self.grid, self.residual_statistics).to(self.device)

    def noisy_inputs(self, state: torch.Tensor, step: int) -> torch.Tensor:
        """``state`` with noise of std ``input_noise`` on its first time, white or a random field."""
        amplitude = self.config.train.input_noise
        if amplitude == 0:
            return state
        generator = seeded_generator((self.config.train.seed, step))
        shape = state[:, 0].shape
        if self.noise_field is None:
            unit = torch.randn(shape, generator=generator)
        else:
            unit = self.noise_field.sample(shape[0] * shape[1], generator).reshape(shape)
        noise = amplitude * unit.to(state.device)
        return torch.cat([(state[:, 0] + noise)[:, None], state[:, 1:]], dim=1)

    def optimize(self, batch: Batch, rate: float, step: int) -> tuple[float, float]:
        """One optimizer step at learning rate ``rate``; return the loss and the gradient norm."""
        state, forcing = (tensor.to(self.device) for tensor in batch)
        if self.mirror is not None:
            state, forcing = self.mirror((state, forcing), step)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        bf16 = self.config.train.precision == "bf16"
        keys = [(self.config.train.seed, step, k, FORCING_STREAM) for k in range(len(state) * self.members)]
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=bf16):
            noisy = self.noisy_inputs(state, step)
            value = rollout_loss(self.stepper, self.loss, noisy, forcing, keys, self.members)
            if self.climate is not None:
                value = value + self.climate(self.free_run_stepper, step)
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        clip = self.config.train.gradient_clip or math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return value.item(), float(norm)

    @torch.no_grad()
    def validate(self, batches: Batches) -> float:
        self.evaluated_model.eval()
        total, count = 0.0, 0
        for state, forcing in batches.epoch(0):
            members = range(count * self.members, (count + len(state)) * self.members)
            keys = self.evaluation_stepper.member_keys(members)
            state, forcing = state.to(self.device), forcing.to(self.device)
            loss = rollout_loss(self.evaluation_stepper, self.loss, state, forcing, keys, self.members)
            total, count = total + float(loss) * len(state), count + len(state)
        self.evaluated_model.train()
        return total / count


def _initial_checkpoint(config: Config, grid: Grid, data_name: str) -> Checkpoint:
    """The checkpoint to fine-tune, checked against this run's model, channels and grid."""
    path = str(config.train.init_checkpoint)
    initial = load_checkpoint(path)
    if initial.config.model != config.model:
        raise EmulatorError(f"{path}: model {initial.config.model} differs from the config's {config.model}")
    check_fits(initial, config, grid, data_name, path)
    LOG.info("fine-tuning from %s (step %d)", path, initial.step)
    return initial


class MetricsLog:
    """``<checkpoint>.metrics.csv``: one row per logged step and per validation; cut back on resume."""

    def __init__(self, path: Path, keep_rows: int) -> None:
        rows = []
        if keep_rows and path.is_file():
            rows = list(csv.reader(path.open(newline="")))[1 : keep_rows + 1]
        self.file = path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerows([METRICS_HEADER, *rows])
        self.rows = len(rows)

    def write(
        self,
        progress: Progress,
        rate: float | str,
        train: float | str,
        norm: float | str,
        valid: float | str,
        climate: float | str = "",
    ) -> None:
        self.writer.writerow([progress.step, progress.stage, progress.epoch, rate, train, norm, valid, climate])
        self.file.flush()
        self.rows += 1

    def close(self) -> None:
        self.file.close()


def _run_stages(
    trainer: Trainer,
    stages: Sequence[Batches],
    validation: Batches | None,
    climate_validation: ClimateValidation | None,
    progress: Progress,
    path: Path,
) -> Path:
    """Run (or finish) every stage from ``progress``; return the checkpoint path."""
    config, settings = trainer.config, trainer.config.train
    data = config.data
    totals = [stage_steps(stage, len(batches)) for stage, batches in zip(settings.stages(), stages, strict=True)]
    checkpoint = Checkpoint(
        config,
        trainer.normalizer,
        data.prognostic,
        data.forcing,
        trainer.grid,
        trainer.evaluated_model,
        step=0,
        residual_statistics=trainer.residual_statistics,
    )
    metrics = MetricsLog(path.with_suffix(".metrics.csv"), progress.metrics_rows)
    climate_log = None
    if climate_validation is not None:
        climate_log = ClimateLog(path.with_suffix(".climate.csv"), climate_validation.columns, progress.step)

    def save_progress() -> None:
        progress.metrics_rows = metrics.rows
        extra = trainer.climate.state_tensors() if trainer.climate is not None else None
        save_state(
            state_path(path), config, trainer.normalizer, trainer.model, trainer.ema, trainer.optimizer, progress, extra
        )

    def keep_if_best_climate() -> None:
        assert climate_validation is not None and climate_log is not None
        trainer.evaluated_model.eval()
        score = climate_validation()
        trainer.evaluated_model.train()
        metrics.write(progress, "", "", "", "", score.error)
        climate_log.write(progress.step, score)
        LOG.info("step %d: climate error %.3f (largest: %s)", progress.step, score.error, score.worst)
        if score.error < progress.best_climate or math.isinf(progress.best_climate):  # until one is finite, the latest
            progress.best_climate, checkpoint.step = score.error, progress.step
            checkpoint.save(path)

    done_before = sum(totals[: progress.stage])
    with tqdm(total=sum(totals), initial=progress.step, desc="train", unit="step") as bar:
        for index in range(progress.stage, len(stages)):
            stage, batches, total = settings.stages()[index], stages[index], totals[index]
            for epoch in range(progress.epoch, stage.epochs):
                if progress.step - done_before >= total:
                    break
                for batch in batches.epoch(epoch_key(settings.seed, index, epoch), skip=progress.batch):
                    step_in_stage = progress.step - done_before
                    if step_in_stage >= total:
                        break
                    rate = learning_rate(step_in_stage, total, stage.learning_rate, settings.warmup_fraction)
                    loss, norm = trainer.optimize(batch, rate, progress.step)
                    progress.step, progress.batch = progress.step + 1, progress.batch + 1
                    bar.update()
                    bar.set_postfix(loss=f"{loss:.4f}", stage=index, epoch=epoch)
                    if progress.step % settings.log_every == 0:
                        metrics.write(progress, rate, loss, norm, "")
                    stage_done = progress.step - done_before == total
                    if climate_validation is not None and (
                        progress.step % climate_validation.config.every == 0 or stage_done
                    ):
                        keep_if_best_climate()
                    if settings.checkpoint_every and progress.step % settings.checkpoint_every == 0:
                        save_progress()
                if validation is not None:
                    value = trainer.validate(validation)
                    metrics.write(progress, "", "", "", value)
                    LOG.info("stage %d epoch %d: validation loss %.5f", index, epoch, value)
                    if value < progress.best_validation:
                        progress.best_validation = value
                        if climate_validation is None:
                            checkpoint.step = progress.step
                            checkpoint.save(path)
                progress.epoch, progress.batch = epoch + 1, 0
                save_progress()
            done_before += total
            progress.stage, progress.epoch, progress.batch = index + 1, 0, 0
        save_progress()
    metrics.close()
    if climate_log is not None:
        climate_log.close()
    if validation is None and climate_validation is None:
        checkpoint.step = progress.step
        checkpoint.save(path)
    return path


class TrainingData:
    """Where windows come from: a store, or the world's solver (online); and the run's statistics."""

    def __init__(self, config: Config, resume_from: Path | None) -> None:
        self.config = config
        data, online = config.data, config.train.online
        self.source = ZarrSource(data.store, data.prognostic + data.forcing, data.regrid) if online is None else None
        if online is None:
            assert self.source is not None
            self.grid, self.name = self.source.grid, f"store {data.store}"
        else:
            assert config.world is not None
            self.grid, self.name = world_grid(config.world), "the built-in world"
        self.initial = _initial_checkpoint(config, self.grid, self.name) if config.train.init_checkpoint else None
        self.normalizer = self._statistics(resume_from)

    def _statistics(self, resume_from: Path | None) -> Normalizer:
        config, online = self.config, self.config.train.online
        if resume_from is not None:
            return load_normalizer(resume_from)
        if self.initial is not None:
            return self.initial.normalizer
        if online is not None:
            assert config.world is not None
            LOG.info("estimating normalization statistics from %d simulated windows", online.statistics_windows)
            return estimate_statistics(config.world, online, config.data.prognostic, self.grid, config.train.seed)
        assert self.source is not None
        LOG.info("computing normalization statistics over %s", config.data.train_period or "the whole store")
        return compute_statistics(self.source, self.source.period_indices(config.data.train_period))

    def training(self, stage: int, steps: int) -> Batches:
        settings, data = self.config.train, self.config.data
        if settings.online is not None:
            assert self.config.world is not None
            world, seed = self.config.world, epoch_key(settings.seed, stage, 0)
            return OnlineBatches(
                world, settings.online, data.prognostic, self.normalizer, steps, settings.batch_size, seed
            )
        return self._store_batches(steps, data.train_period, shuffle=True)

    def validation(self, steps: int) -> Batches | None:
        period = self.config.data.validation_period
        if period is None:
            return None
        if self.source is None:
            data = self.config.data
            self.source = ZarrSource(data.store, data.prognostic + data.forcing, data.regrid)
        return self._store_batches(steps, period, shuffle=False)

    def chain_states(self, count: int, key: str) -> torch.Tensor:
        """``count`` normalized states spread evenly over the training period, where ``key``'s free runs start."""
        data = self.config.data
        if self.source is None:
            raise EmulatorError(f"{key}: its chains start from the store's training period; online has none")
        if data.forcing:
            raise EmulatorError(f"{key}: the chains run without forcings; data.forcing must be empty")
        indices = self.source.period_indices(data.train_period)
        chosen = indices[np.linspace(0, len(indices) - 1, count).round().astype(np.int64)]
        return self.normalizer.subset(data.prognostic).normalize(torch.from_numpy(self.source.read(chosen)))

    def _store_batches(self, steps: int, period: tuple[str, str] | None, shuffle: bool) -> StoreBatches:
        settings, data = self.config.train, self.config.data
        assert self.source is not None
        return StoreBatches(
            self.source, data.prognostic, data.forcing, self.normalizer, period, steps, settings.batch_size,
            settings.num_workers, shuffle, data.regrid,
        )  # fmt: skip


def train(config: Config, device: str = "auto", resume: bool = False) -> Path:
    """Train ``config.model`` on ``config.data`` (or online on the world); return the checkpoint path.

    With ``resume``, continue from the state saved beside the checkpoint.
    """
    settings = config.train
    path = Path(settings.checkpoint)
    saved = state_path(path)
    data = TrainingData(config, saved if resume else None)
    statistics = data.initial.residual_statistics if data.initial is not None else None
    trainer = Trainer(config, data.normalizer, data.grid, choose_device(device), statistics)
    progress = Progress()
    if resume:
        progress, tensors = load_state(saved, config, trainer.model, trainer.ema, trainer.optimizer)
        if trainer.climate is not None:
            trainer.climate.load_state_tensors(tensors)
        LOG.info("resuming %s at step %d (stage %d, epoch %d)", saved, progress.step, progress.stage, progress.epoch)
    elif data.initial is not None:
        trainer.model.load_state_dict(data.initial.model.state_dict())
    LOG.info("%s with %d parameters", config.model.name, parameter_count(trainer.model))
    if trainer.climate is not None and trainer.climate.chains is None:
        LOG.info("spinning up %d climate chains", trainer.climate.config.chains)
        states = data.chain_states(trainer.climate.config.chains, "train.climate")
        trainer.climate.start(trainer.free_run_stepper, states.to(trainer.device))
    stages = settings.stages()
    training = [data.training(index, stage.rollout_steps) for index, stage in enumerate(stages)]
    validation = data.validation(max(stage.rollout_steps for stage in stages))
    climate_validation = None
    if settings.climate_validation is not None:
        chains = data.chain_states(settings.climate_validation.chains, "train.climate_validation")
        prognostic = data.normalizer.subset(config.data.prognostic)
        stepper = trainer.free_running_stepper()
        climate_validation = ClimateValidation(
            settings.climate_validation, stepper, prognostic, data.grid, chains.to(trainer.device)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _run_stages(trainer, training, validation, climate_validation, progress, path)
    finally:
        for batches in training:
            if isinstance(batches, OnlineBatches):
                batches.close()
