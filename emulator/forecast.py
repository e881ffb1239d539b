"""Deterministic forecast: checkpoint + store + initial time -> forecast and spectra NetCDF."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from emulator import __version__
from emulator.checkpoint import Checkpoint, check_fits, file_hash, load_checkpoint
from emulator.config import Config
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.data.statistics import time_step
from emulator.device import choose_device
from emulator.errors import EmulatorError
from emulator.io.layout import ForecastLayout
from emulator.io.output import forecast_output
from emulator.io.spectra_writer import write_spectra
from emulator.stepper import DivergenceError, Stepper

LOG = logging.getLogger(__name__)


def resolve_init_time(source: ZarrSource, init_time: str) -> pd.Timestamp:
    """``latest`` is the store's newest time; anything else must be a time in the store."""
    return source.times[-1] if init_time == "latest" else source.times[source.time_index(init_time)]


@dataclass(frozen=True)
class RolloutOptions:
    """Choices that override the config's ``forecast`` section (from the command line)."""

    checkpoint: str | None = None
    init_time: str | None = None
    lead: int | str | None = None
    output_dir: str | None = None
    device: str = "auto"
    climate: bool = False  # a climate run: the stepper plus the climate forcing (Config.climate_stepper)


@dataclass
class ForecastJob:
    """A checkpoint, its store and an initial time, resolved and checked."""

    config: Config
    checkpoint_path: str
    loaded: Checkpoint
    source: ZarrSource
    forcing_source: ZarrSource | None
    init: pd.Timestamp
    start: int
    steps: int
    interval: pd.Timedelta
    device: torch.device
    stepper: Stepper

    @property
    def normalizer(self) -> Normalizer:
        return self.loaded.normalizer.subset(self.loaded.prognostic)

    def state_at(self, index: int) -> torch.Tensor:
        """The normalized state at time ``index`` of the store, ``(1, channel, lat, lon)``."""
        if not 0 <= index < len(self.source):
            raise EmulatorError(f"{self.source.store}: time index {index} is outside the store's {len(self.source)}")
        return self.normalizer.normalize(torch.from_numpy(self.source.read([index]))).to(self.device)

    def written_steps(self) -> range:
        """The steps whose states are written: every ``forecast.output_every``-th, the last included."""
        every = self.config.forecast.output_every
        return range(every, self.steps + 1, every)

    def initial_state(self) -> torch.Tensor:
        """The normalized state at the initial time, ``(1, channel, lat, lon)``."""
        return self.state_at(self.start)

    def forcings(self, start: int, steps: int) -> Iterator[torch.Tensor]:
        """The normalized forcing at the start of each of ``steps`` steps from time index ``start``.

        Computed and static forcings are available at any time; stored ones only within the store.
        """
        if self.forcing_source is None:
            for _ in range(steps):
                yield torch.zeros(1, 0, *self.loaded.grid.shape, device=self.device)
            return
        normalizer = self.loaded.normalizer.subset(self.loaded.forcing)
        first = self.init + (start - self.start) * self.interval
        for step in range(steps):
            fields = self.forcing_source.read_at(pd.DatetimeIndex([first + step * self.interval]))
            yield normalizer.normalize(torch.from_numpy(fields)).to(self.device)

    def attrs(self, title: str) -> dict[str, str]:
        """Provenance for the output file."""
        return {
            "title": f"emulator {title} from {self.init.isoformat()}",
            "source": f"emulator {__version__}",
            "checkpoint": Path(self.checkpoint_path).name,
            "checkpoint_sha256": file_hash(self.checkpoint_path),
            "checkpoint_step": str(self.loaded.step),
            "data_store": self.config.data.store,
            "config": json.dumps(self.loaded.config.model_dump(mode="json")),
            **self.stepper.controls(),
        }


def lead_steps(lead: int | str, interval: pd.Timedelta) -> int:
    """Steps of ``interval`` in ``lead``: a count of steps, or a duration such as ``10d`` or ``36h``."""
    if isinstance(lead, int) or str(lead).isdigit():
        steps = int(lead)
    else:
        try:
            duration = pd.Timedelta(str(lead))
        except ValueError:
            raise EmulatorError(f"lead {lead!r} is neither a number of steps nor a duration like 10d or 36h") from None
        steps = int(duration / interval)
        if duration % interval != pd.Timedelta(0):
            raise EmulatorError(f"lead {lead} is not a whole number of {interval} steps")
    if steps <= 0:
        raise EmulatorError(f"lead {lead!r} must be at least one step")
    return steps


def prepare_forecast(config: Config, options: RolloutOptions) -> ForecastJob:
    """Load and check everything a rollout needs; fail early with a clear message."""
    settings = config.forecast
    checkpoint_path = options.checkpoint or settings.checkpoint
    loaded = load_checkpoint(checkpoint_path)
    data = config.data
    source = ZarrSource(data.store, data.prognostic, data.regrid)
    check_fits(loaded, config, source.grid, f"store {source.store}", checkpoint_path)
    forcing_source = ZarrSource(data.store, loaded.forcing, data.regrid) if loaded.forcing else None
    init = resolve_init_time(source, options.init_time or settings.init_time)
    target = choose_device(options.device)
    prognostic = loaded.normalizer.subset(loaded.prognostic)
    stepper_config = config.climate_stepper(loaded.config) if options.climate else config.stepper
    controls = stepper_config.model_copy(update={"residual": loaded.config.stepper.residual})
    stepper = Stepper(loaded.model, prognostic, controls, loaded.grid, loaded.residual_statistics).to(target).eval()
    interval = time_step(source.times)
    steps = lead_steps(options.lead or settings.lead_steps, interval)
    if steps % settings.output_every:
        every = settings.output_every
        raise EmulatorError(f"lead of {steps} steps is not a whole number of forecast.output_every={every}")
    start = source.time_index(init)
    return ForecastJob(
        config, checkpoint_path, loaded, source, forcing_source, init, start, steps, interval, target, stepper
    )


@dataclass
class MemberBatch:
    """Members rolled out together: same checkpoint, same start.

    ``initial`` ``(member, channel, lat, lon)`` is the normalized state ``lag``
    steps before the forecast's initial time; the first ``lag`` steps are run but
    not written, so every member is written at the same valid times. ``noise``,
    if given, perturbs the state after each step (model noise). Members past
    ``len(rows)`` only pad the batch (:func:`emulator.ensemble.pads_batches`): they
    are run, never yielded.
    """

    job: ForecastJob
    initial: torch.Tensor
    member_ids: list[int]
    rows: np.ndarray
    lag: int = 0
    noise: Callable[[torch.Tensor], torch.Tensor] | None = None

    def states(self) -> Iterator[torch.Tensor]:
        """The normalized state after each step of the forecast's lead times (lag steps skipped)."""
        job, steps = self.job, self.job.steps + self.lag
        forcings = job.forcings(job.start - self.lag, steps)
        states = job.stepper.rollout(self.initial, forcings, self.member_ids, self.noise)
        for step, state in enumerate(states, start=1):
            if step > self.lag:
                yield state[: len(self.rows)]


def forecast_layout(job: ForecastJob, member_ids: list[int], attrs: dict[str, str]) -> ForecastLayout:
    """The output layout of ``job``'s lead times for ``member_ids``."""
    hours = job.interval / pd.Timedelta(hours=1)
    leads = [hours * step for step in job.written_steps()]
    return ForecastLayout(
        job.loaded.prognostic,
        job.source.attrs,
        job.loaded.grid,
        job.init,
        member_ids,
        leads,
        attrs,
        job.config.forecast.naming,
        job.config.forecast.compression,
    )


def write_rollouts(
    path: Path, layout: ForecastLayout, batches: Iterable[MemberBatch], steps: int, device: torch.device
) -> Path:
    """Roll out each batch of members on ``device`` and write it lead step by lead step (in blocks of steps).

    Every ``forecast.output_every``-th step is written (the others are not copied off the device).

    A divergence stops the job, and the steps written before it stay readable in
    the ``.partial`` file. Off the CPU the writing runs in a thread beside the
    rollout; on a CPU, whose cores the rollout keeps busy, that was slower
    (benchmarks/RESULTS.md).
    """
    members = len(layout.coordinates[0].values)
    with forecast_output(path, layout, background=device.type != "cpu") as writer:
        with tqdm(total=members * steps, desc=path.stem, unit="member-step") as progress:
            for batch in batches:
                ids = "members " + ",".join(str(member) for member in batch.member_ids[: len(batch.rows)])
                LOG.info("%s: %d steps (%d lagged)", ids, steps, batch.lag)
                every = batch.job.config.forecast.output_every
                try:
                    for step, state in enumerate(batch.states(), start=1):
                        if step % every == 0:
                            lead = step // every - 1
                            writer.write(lead, batch.job.normalizer.denormalize(state).cpu().numpy(), batch.rows)
                        progress.update(len(batch.rows))
                except DivergenceError as error:
                    writer.set_status(f"{ids}: {error}")
                    raise EmulatorError(f"{error} ({ids}); steps before it are in {path}.partial") from None
        writer.set_status(f"complete: {members} member(s), {steps} steps")
    return path


def output_directory(config: Config, options: RolloutOptions) -> Path:
    return Path(options.output_dir or config.forecast.output_dir)


def run_forecast(config: Config, options: RolloutOptions = RolloutOptions()) -> dict[str, Path]:
    """Roll the checkpoint out and write ``forecast_<init>.nc`` and ``spectra_<init>.nc``."""
    job = prepare_forecast(config, options)
    out_dir = output_directory(config, options)
    stamp = job.init.strftime("%Y%m%dT%H%M")
    batch = MemberBatch(job, job.initial_state(), [0], np.arange(1))
    layout = forecast_layout(job, [0], job.attrs("forecast"))
    forecast_path = write_rollouts(out_dir / f"forecast_{stamp}.nc", layout, [batch], job.steps, job.device)
    spectra_path = write_spectra(forecast_path, out_dir / f"spectra_{stamp}.nc")
    return {"forecast": forecast_path, "spectra": spectra_path}
