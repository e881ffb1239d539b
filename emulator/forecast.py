"""Deterministic forecast: checkpoint + store + initial time -> forecast and spectra NetCDF."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
from emulator.io.forecast_writer import ForecastWriter
from emulator.io.netcdf import atomic_netcdf
from emulator.io.spectra_writer import write_spectra
from emulator.stepper import DivergenceError, Stepper

LOG = logging.getLogger(__name__)


def resolve_init_time(source: ZarrSource, init_time: str) -> pd.Timestamp:
    """``latest`` is the store's newest time; anything else must be a time in the store."""
    return source.times[-1] if init_time == "latest" else source.times[source.time_index(init_time)]


def _forcings(
    source: ZarrSource | None,
    checkpoint: Checkpoint,
    init: pd.Timestamp,
    interval: pd.Timedelta,
    steps: int,
    device: torch.device,
) -> Iterator[torch.Tensor]:
    """The normalized forcing at the start of each step (an empty channel axis without forcings).

    Computed and static forcings are available at any lead time; stored ones only within the store.
    """
    grid = checkpoint.grid
    if source is None:
        for _ in range(steps):
            yield torch.zeros(1, 0, *grid.shape, device=device)
        return
    normalizer = checkpoint.normalizer.subset(checkpoint.forcing)
    for step in range(steps):
        fields = source.read_at(pd.DatetimeIndex([init + step * interval]))
        yield normalizer.normalize(torch.from_numpy(fields)).to(device)


@dataclass(frozen=True)
class RolloutOptions:
    """Choices that override the config's ``forecast`` section (from the command line)."""

    checkpoint: str | None = None
    init_time: str | None = None
    lead: int | str | None = None
    output_dir: str | None = None
    device: str = "auto"


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

    def initial_state(self) -> torch.Tensor:
        """The normalized state at the initial time, ``(1, channel, lat, lon)``."""
        return self.normalizer.normalize(torch.from_numpy(self.source.read([self.start]))).to(self.device)

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
    check_fits(loaded, config, source, checkpoint_path)
    forcing_source = ZarrSource(data.store, loaded.forcing, data.regrid) if loaded.forcing else None
    init = resolve_init_time(source, options.init_time or settings.init_time)
    target = choose_device(options.device)
    prognostic = loaded.normalizer.subset(loaded.prognostic)
    stepper = Stepper(loaded.model, prognostic, loaded.config.stepper).to(target).eval()
    interval = time_step(source.times)
    steps = lead_steps(options.lead or settings.lead_steps, interval)
    start = source.time_index(init)
    return ForecastJob(
        config, checkpoint_path, loaded, source, forcing_source, init, start, steps, interval, target, stepper
    )


def roll_out_to_netcdf(
    job: ForecastJob, initial: torch.Tensor, path: Path, attrs: dict[str, str], batch_size: int
) -> Path:
    """Roll out every member of ``initial`` ``(member, channel, lat, lon)``, ``batch_size`` at a time.

    Each batch is written lead step by lead step; a divergence stops the job, and
    the steps written before it stay readable in the ``.partial`` file.
    """
    members = initial.shape[0]
    hours = job.interval / pd.Timedelta(hours=1)
    LOG.info(
        "%d member(s) from %s, %d steps of %s, %d at a time", members, job.init, job.steps, job.interval, batch_size
    )
    with atomic_netcdf(path) as dataset:
        writer = ForecastWriter(
            dataset, job.loaded.prognostic, job.source.attrs, job.loaded.grid, job.init, members, attrs
        )
        with tqdm(total=members * job.steps, desc=path.stem, unit="member-step") as progress:
            for first in range(0, members, batch_size):
                batch = slice(first, min(first + batch_size, members))
                forcings = _forcings(job.forcing_source, job.loaded, job.init, job.interval, job.steps, job.device)
                try:
                    for lead, state in enumerate(job.stepper.rollout(initial[batch], forcings)):
                        writer.write(lead, (lead + 1) * hours, job.normalizer.denormalize(state).cpu().numpy(), batch)
                        progress.update(batch.stop - batch.start)
                except DivergenceError as error:
                    dataset.setncattr("rollout_status", f"members {batch.start}-{batch.stop - 1}: {error}")
                    raise EmulatorError(
                        f"{error} (members {batch.start}-{batch.stop - 1}); steps before it are in {path}.partial"
                    ) from None
        dataset.setncattr("rollout_status", f"complete: {members} member(s), {job.steps} steps")
    return path


def output_directory(config: Config, options: RolloutOptions) -> Path:
    return Path(options.output_dir or config.forecast.output_dir)


def run_forecast(config: Config, options: RolloutOptions = RolloutOptions()) -> dict[str, Path]:
    """Roll the checkpoint out and write ``forecast_<init>.nc`` and ``spectra_<init>.nc``."""
    job = prepare_forecast(config, options)
    out_dir = output_directory(config, options)
    stamp = job.init.strftime("%Y%m%dT%H%M")
    forecast_path = roll_out_to_netcdf(
        job, job.initial_state(), out_dir / f"forecast_{stamp}.nc", job.attrs("forecast"), 1
    )
    spectra_path = write_spectra(forecast_path, out_dir / f"spectra_{stamp}.nc")
    return {"forecast": forecast_path, "spectra": spectra_path}
