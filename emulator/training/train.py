"""The training loop: statistics, windows, multi-step loss, AdamW with a cosine schedule.

Each optimisation step rolls the stepper ``rollout_steps`` times from the first
state of a window and averages the area-weighted MSE against the following
states. Validation runs after every epoch; the checkpoint kept is the one with
the lowest validation loss (the last one when no validation period is set).
Metrics go to ``<checkpoint>.metrics.csv``, readable without this code.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from emulator.checkpoint import Checkpoint, build_for, check_fits, load_checkpoint
from emulator.config import Config
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_statistics
from emulator.data.windows import EpochSampler, WindowDataset, window_starts
from emulator.device import choose_device
from emulator.errors import EmulatorError
from emulator.models.registry import parameter_count
from emulator.stepper import Stepper
from emulator.training.loss import AreaWeightedMSE

LOG = logging.getLogger(__name__)
WARMUP_FRACTION = 0.05


def _loader(
    config: Config, normalizer: Normalizer, source: ZarrSource, period: tuple[str, str] | None, shuffle: bool
) -> DataLoader:
    steps = config.train.rollout_steps
    starts = window_starts(source, source.period_indices(period), steps)
    if len(starts) == 0:
        raise EmulatorError(f"{config.data.store}: no {steps}-step window fits in period {period}")
    data = config.data
    dataset = WindowDataset(data.store, data.prognostic, data.forcing, normalizer, starts, steps, data.regrid)
    workers = config.train.num_workers
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        sampler=EpochSampler(len(dataset), shuffle, config.train.seed),
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(config.train.seed),
    )


def rollout_loss(stepper: Stepper, loss: AreaWeightedMSE, state: torch.Tensor, forcing: torch.Tensor) -> torch.Tensor:
    """Mean loss over a multi-step rollout of ``state[:, 0]`` against ``state[:, 1:]``."""
    prediction, total = state[:, 0], state.new_zeros(())
    steps = state.shape[1] - 1
    for i in range(steps):
        prediction = stepper.step(prediction, forcing[:, i])
        total = total + loss(prediction, state[:, i + 1])
    return total / steps


def _learning_rate(step: int, total: int, peak: float) -> float:
    warmup = max(1, int(WARMUP_FRACTION * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@torch.no_grad()
def _validate(stepper: Stepper, loss: AreaWeightedMSE, loader: DataLoader, device: torch.device) -> float:
    stepper.eval()
    total, count = 0.0, 0
    for state, forcing in loader:
        total += float(rollout_loss(stepper, loss, state.to(device), forcing.to(device))) * len(state)
        count += len(state)
    stepper.train()
    return total / count


def _initial_checkpoint(config: Config, source: ZarrSource) -> Checkpoint:
    """The checkpoint to fine-tune, checked against this run's model, channels and grid."""
    path = str(config.train.init_checkpoint)
    initial = load_checkpoint(path)
    if initial.config.model != config.model:
        raise EmulatorError(f"{path}: model {initial.config.model} differs from the config's {config.model}")
    check_fits(initial, config, source, path)
    LOG.info("fine-tuning from %s (step %d)", path, initial.step)
    return initial


def train(config: Config, device: str = "auto") -> Path:
    """Train ``config.model`` on ``config.data``; return the checkpoint path."""
    torch.manual_seed(config.train.seed)
    target = choose_device(device)
    data = config.data
    source = ZarrSource(data.store, data.prognostic + data.forcing, data.regrid)
    initial = _initial_checkpoint(config, source) if config.train.init_checkpoint else None
    if initial is not None:
        normalizer = initial.normalizer
    else:
        LOG.info("computing normalization statistics over %s", data.train_period or "the whole store")
        normalizer = compute_statistics(source, source.period_indices(data.train_period))
    train_loader = _loader(config, normalizer, source, data.train_period, shuffle=True)
    validation_loader = (
        _loader(config, normalizer, source, data.validation_period, shuffle=False) if data.validation_period else None
    )

    model = build_for(config, data.prognostic, data.forcing, source.grid)
    if initial is not None:
        model.load_state_dict(initial.model.state_dict())
    model = model.to(target)
    LOG.info("%s with %d parameters", config.model.name, parameter_count(model))
    stepper = Stepper(model, normalizer.subset(data.prognostic), config.stepper).to(target)
    loss = AreaWeightedMSE(source.grid).to(target)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.train.learning_rate, weight_decay=config.train.weight_decay
    )
    total_steps = config.train.max_steps or config.train.epochs * len(train_loader)
    checkpoint = Checkpoint(config, normalizer, data.prognostic, data.forcing, source.grid, model, step=0)
    path = Path(config.train.checkpoint)
    metrics_path = path.with_suffix(".metrics.csv")
    path.parent.mkdir(parents=True, exist_ok=True)

    best, step = math.inf, 0
    with (
        open(metrics_path, "w", newline="") as log_file,
        tqdm(total=total_steps, desc="train", unit="step") as progress,
    ):
        log = csv.writer(log_file)
        log.writerow(["step", "epoch", "learning_rate", "train_loss", "validation_loss"])
        for epoch in range(config.train.epochs):
            for state, forcing in train_loader:
                learning_rate = _learning_rate(step, total_steps, config.train.learning_rate)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate
                value = rollout_loss(stepper, loss, state.to(target), forcing.to(target))
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                step += 1
                progress.update()
                loss_value = value.item()
                progress.set_postfix(loss=f"{loss_value:.4f}", epoch=epoch)
                if step % config.train.log_every == 0:
                    log.writerow([step, epoch, learning_rate, loss_value, ""])
                if step >= total_steps:
                    break
            if validation_loader is not None:
                validation = _validate(stepper, loss, validation_loader, target)
                log.writerow([step, epoch, learning_rate, "", validation])
                LOG.info("epoch %d: validation loss %.5f", epoch, validation)
                if validation < best:
                    best, checkpoint.step = validation, step
                    checkpoint.save(path)
            log_file.flush()
            if step >= total_steps:
                break
    if validation_loader is None:
        checkpoint.step = step
        checkpoint.save(path)
    return path
