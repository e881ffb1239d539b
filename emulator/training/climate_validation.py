"""Climate validation: keep the checkpoint whose own free-running climate is nearest a target's.

A model's climate is very sensitive to its weights: the raw weights at the end of a run
and their EMA differ by 0.07 % (relative L2) and the power of the meridional wind at
degrees 2-3 of their free runs by a factor of 2.7 (session 19). Which snapshot of a run
is kept matters as much as how it was trained, and the validation loss of short windows
does not see it. As in ACE's inline inference, the run is checked on what it is for:
every ``every`` optimizer steps and at the end of every stage, ``chains`` states of the
training period run freely with the weights that are saved (the EMA's when there is
one) through the free runs' stepper (``train.free_run_stepper``, else the training
stepper), its controls and stochastic forcing (the same draws
at every check, so snapshots are compared on the same noise): ``spinup_steps`` steps,
then ``steps`` more whose mean band power (:class:`~emulator.training.climate.BandPowerRatio`)
is compared with the target's. The error is the largest ``|ratio - 1|`` of any band, the
scorecard's ``spectrum_error``; the checkpoint kept is the one with the smallest. Eight
chains of 100 days give a checkpoint's band ratios as the one-year, four-member
benchmark does, to a correlation of 0.97-1.0 of their logarithms (7 checkpoints, session 19).
Every check's band ratios go to ``<checkpoint>.climate.csv`` (:class:`ClimateLog`), so that
a run shows which bands each snapshot gets right, not only its worst; when the target has
``zonal_mean`` (:mod:`emulator.training.zonal_climate`), so do each channel's zonal-mean
offset (area-weighted rms, physical units) and spread (rms, over the target's), which
the error does not include.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import xarray as xr
from pydantic import Field

from emulator.data.normalizer import Normalizer
from emulator.grid import Grid
from emulator.perturbations import seeded_generator
from emulator.schema import Strict
from emulator.training.climate import BandPowerRatio, free_run
from emulator.training.zonal_climate import ZonalMoments

if TYPE_CHECKING:
    from emulator.stepper import Stepper

VALIDATION_STREAM = 4  # last entropy word of a validation chain's stochastic-forcing generator


class ClimateValidationConfig(Strict):
    target: str = Field(description="NetCDF file with band_power (..., quantity, band), e.g. from world-climate")
    every: int = Field(40, gt=0, description="optimizer steps between checks; also at the end of every stage")
    chains: int = Field(8, gt=0, description="free-running states, spread over the training period")
    spinup_steps: int = Field(160, ge=0, description="steps before the band power is averaged")
    steps: int = Field(400, gt=0, description="steps whose band power is averaged")
    seed: int = 0


@dataclass(frozen=True)
class ClimateScore:
    """A check's largest band error, where it is, every band's ratio ``(quantity, band)`` and, with a zonal
    target, the zonal means' ``(2, channel)`` offset and spread (:meth:`ZonalMoments.summary`)."""

    error: float
    worst: str
    ratio: torch.Tensor
    zonal: torch.Tensor | None = None


class ClimateValidation:
    """Free runs of a stepper from fixed states, scored against a target climate."""

    def __init__(
        self,
        config: ClimateValidationConfig,
        stepper: Stepper,
        normalizer: Normalizer,
        grid: Grid,
        states: torch.Tensor,
    ) -> None:
        """``stepper`` runs ``states`` (normalized by ``normalizer``) on ``grid``."""
        self.config, self.stepper, self.states = config, stepper, states
        key = "train.climate_validation.target"
        self.ratio_of = BandPowerRatio(config.target, key, normalizer, grid).to(states.device)
        self.zonal_moments: ZonalMoments | None = None
        with xr.open_dataset(config.target) as target:
            if "zonal_mean" in target:
                self.zonal_moments = ZonalMoments(config.target, key, normalizer, grid).to(states.device)
        self.channels = list(normalizer.channels)

    @property
    def columns(self) -> list[str]:
        """Each band ratio's ``"quantity band"`` (:attr:`ClimateScore.ratio` flattened), then each zonal figure's."""
        labels = self.ratio_of.band_power
        bands = [f"{quantity} {band}" for quantity in labels.quantities for band in labels.labels]
        if self.zonal_moments is None:
            return bands
        zonal = [f"zonal {figure} {channel}" for figure in ("offset", "spread") for channel in self.channels]
        return bands + zonal

    @torch.no_grad()
    def __call__(self) -> ClimateScore:
        config = self.config
        generators = [seeded_generator((config.seed, chain, VALIDATION_STREAM)) for chain in range(len(self.states))]
        total = torch.zeros_like(self.ratio_of.target)
        zonal_means = []
        runs = free_run(self.stepper, self.states, config.spinup_steps + config.steps, None, generators)
        for step, (state, _) in enumerate(runs):
            if step >= config.spinup_steps:
                total += self.ratio_of(state)
                zonal_means.append(state.float().mean(dim=-1))
        ratio = total.cpu() / config.steps
        error = (ratio - 1).abs().nan_to_num(math.inf, math.inf)
        zonal = None
        if self.zonal_moments is not None:
            zonal = self.zonal_moments.summary(self.zonal_moments.moments(torch.cat(zonal_means))).cpu()
        return ClimateScore(float(error.max()), self.columns[int(error.argmax())], ratio, zonal)


class ClimateLog:
    """``<checkpoint>.climate.csv``: each check's step, largest error, band ratios and zonal figures; cut back on
    resume."""

    def __init__(self, path: Path, columns: list[str], resumed_step: int) -> None:
        """A new file, keeping the checks up to ``resumed_step`` of an earlier one (0: none)."""
        rows: list[list[str]] = []
        if resumed_step and path.is_file():
            with path.open(newline="") as handle:
                rows = [row for row in list(csv.reader(handle))[1:] if int(row[0]) <= resumed_step]
        self.file = path.open("w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerows([["step", "climate_error", *columns], *rows])
        self.file.flush()

    def write(self, step: int, score: ClimateScore) -> None:
        zonal = [] if score.zonal is None else score.zonal.flatten().tolist()
        self.writer.writerow([step, score.error, *score.ratio.flatten().tolist(), *zonal])
        self.file.flush()

    def close(self) -> None:
        self.file.close()
