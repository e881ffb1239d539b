"""Deterministic forecast: checkpoint + store + initial time -> forecast and spectra NetCDF."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from emulator import __version__
from emulator.checkpoint import Checkpoint, file_hash, load_checkpoint
from emulator.config import Config
from emulator.data.source import ZarrSource
from emulator.data.statistics import time_step
from emulator.device import choose_device
from emulator.errors import EmulatorError
from emulator.io.forecast_writer import ForecastWriter
from emulator.io.netcdf import atomic_netcdf
from emulator.io.spectra_writer import write_spectra
from emulator.stepper import DivergenceError, Stepper

LOG = logging.getLogger(__name__)


def check_fits(checkpoint: Checkpoint, config: Config, source: ZarrSource, path: str) -> None:
    """Refuse a checkpoint whose channels differ from the config's or whose grid differs from the store's."""
    for kind, expected in (("prognostic", config.data.prognostic), ("forcing", config.data.forcing)):
        trained = getattr(checkpoint, kind)
        if trained != expected:
            raise EmulatorError(f"{path}: checkpoint {kind} channels {trained} differ from the config's {expected}")
    if checkpoint.grid != source.grid:
        raise EmulatorError(
            f"{path}: checkpoint grid {checkpoint.grid.nlat}x{checkpoint.grid.nlon} {checkpoint.grid.kind} "
            f"differs from store {source.store} grid {source.grid.nlat}x{source.grid.nlon} {source.grid.kind}"
        )


def resolve_init_time(source: ZarrSource, init_time: str) -> pd.Timestamp:
    """``latest`` is the store's newest time; anything else must be a time in the store."""
    return source.times[-1] if init_time == "latest" else source.times[source.time_index(init_time)]


def _forcings(
    source: ZarrSource | None, checkpoint: Checkpoint, start: int, steps: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """The normalized forcing at the start of each step (an empty channel axis without forcings)."""
    grid = checkpoint.grid
    if source is None:
        for _ in range(steps):
            yield torch.zeros(1, 0, *grid.shape, device=device)
        return
    normalizer = checkpoint.normalizer.subset(checkpoint.forcing)
    for step in range(steps):
        if start + step >= len(source):
            raise EmulatorError(f"{source.store}: forcings end at {source.times[-1]}, before lead step {step + 1}")
        yield normalizer.normalize(torch.from_numpy(source.read([start + step]))).to(device)


def run_forecast(
    config: Config,
    checkpoint: str | None = None,
    init_time: str | None = None,
    lead_steps: int | None = None,
    output_dir: str | None = None,
    device: str = "auto",
) -> dict[str, Path]:
    """Roll the checkpoint out and write ``forecast_<init>.nc`` and ``spectra_<init>.nc``."""
    settings = config.forecast
    checkpoint_path = checkpoint or settings.checkpoint
    loaded = load_checkpoint(checkpoint_path)
    source = ZarrSource(config.data.store, config.data.prognostic)
    check_fits(loaded, config, source, checkpoint_path)
    forcing_source = ZarrSource(config.data.store, loaded.forcing) if loaded.forcing else None
    init = resolve_init_time(source, init_time or settings.init_time)
    start = source.time_index(init)
    steps = lead_steps or settings.lead_steps
    interval = time_step(source.times)
    target = choose_device(device)

    prognostic = loaded.normalizer.subset(loaded.prognostic)
    stepper = Stepper(loaded.model, prognostic, loaded.config.stepper).to(target).eval()
    initial = prognostic.normalize(torch.from_numpy(source.read([start]))).to(target)
    out_dir = Path(output_dir or settings.output_dir)
    stamp = init.strftime("%Y%m%dT%H%M")
    forecast_path = out_dir / f"forecast_{stamp}.nc"
    attrs = {
        "title": f"emulator forecast from {init.isoformat()}",
        "source": f"emulator {__version__}",
        "checkpoint": Path(checkpoint_path).name,
        "checkpoint_sha256": file_hash(checkpoint_path),
        "checkpoint_step": str(loaded.step),
        "data_store": config.data.store,
        "config": json.dumps(loaded.config.model_dump(mode="json")),
        **stepper.controls(),
    }
    LOG.info("forecast from %s, %d steps of %s", init, steps, interval)
    with atomic_netcdf(forecast_path) as dataset:
        writer = ForecastWriter(dataset, loaded.prognostic, source.attrs, loaded.grid, init, 1, attrs)
        rollout = stepper.rollout(initial, _forcings(forcing_source, loaded, start, steps, target))
        try:
            for lead, state in enumerate(tqdm(rollout, total=steps, desc="forecast", unit="step")):
                writer.write(
                    lead, (lead + 1) * interval / pd.Timedelta(hours=1), prognostic.denormalize(state).cpu().numpy()
                )
        except DivergenceError as error:
            dataset.setncattr("rollout_status", str(error))
            raise EmulatorError(f"{error}; steps before it are in {forecast_path}.partial") from None
        dataset.setncattr("rollout_status", f"complete: {steps} steps")
    spectra_path = write_spectra(forecast_path, out_dir / f"spectra_{stamp}.nc")
    return {"forecast": forecast_path, "spectra": spectra_path}
