"""The nightly forecast job: one command, safe to run twice and safe to kill.

For the newest initial time of the store that holds every channel, it writes into
``OUTPUT/<cycle>/`` the deterministic forecast, the ensemble, their spectra, and
then scores every earlier cycle whose forecast has become verifiable, and finally
a ``manifest.json`` with the SHA-256 of each product. Every file is written under
a temporary name and renamed on success; the manifest comes last, so a cycle with
a manifest is complete. A run that finds the manifest (and its files intact) does
nothing and says so; a killed run is finished by the next. A lock file keeps two
runs off the same cycle (:class:`~emulator.lock.LockedError`, exit code 3).

    emulator nightly --config configs/nightly.yaml --output nightly
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from emulator import __version__
from emulator.checkpoint import file_hash
from emulator.config import Config
from emulator.data.source import ZarrSource
from emulator.ensemble import run_ensemble
from emulator.errors import EmulatorError
from emulator.evaluation import evaluate_forecast
from emulator.files import atomic_path
from emulator.forecast import RolloutOptions, run_forecast
from emulator.lock import directory_lock
from emulator.world.store import write_world_store

LOG = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def newest_complete_time(source: ZarrSource) -> pd.Timestamp:
    """The newest time at which every channel is present and finite."""
    for index in range(len(source) - 1, -1, -1):
        if np.isfinite(source.read([index])).all():
            return source.times[index]
        LOG.warning("%s: %s lacks some channel values; trying the time before", source.store, source.times[index])
    raise EmulatorError(f"{source.store}: no time has all channels")


def product_hash(path: Path) -> str:
    """SHA-256 of a file, or of a Zarr store's files (relative names and contents, in name order)."""
    if path.is_file():
        return file_hash(path)
    digest = hashlib.sha256()
    for member in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{member.relative_to(path)}:{file_hash(member)}".encode())
    return digest.hexdigest()


def manifest_is_complete(directory: Path) -> bool:
    """A manifest exists and every product it names has the recorded checksum."""
    path = directory / MANIFEST
    if not path.is_file():
        return False
    products = json.loads(path.read_text())["products"]
    return all(
        (directory / name).exists() and product_hash(directory / name) == digest for name, digest in products.items()
    )


def _write_manifest(directory: Path, cycle: pd.Timestamp, config_path: str) -> Path:
    found = sorted([*directory.glob("*.nc"), *directory.glob("*.zarr")])
    products = {p.name: product_hash(p) for p in found}
    manifest = {
        "cycle": cycle.isoformat(),
        "config": config_path,
        "software": f"emulator {__version__}",
        "products": products,
    }
    with atomic_path(directory / MANIFEST) as temporary:
        temporary.write_text(json.dumps(manifest, indent=2))
    return directory / MANIFEST


def score_verifiable_cycles(output: Path, store: str) -> list[Path]:
    """Score each earlier cycle whose forecast now has truth in the store and no scores yet."""
    written = []
    for forecast in sorted(output.glob("*/forecast_*.nc")):
        scores = forecast.with_name(forecast.name.replace("forecast_", "scores_"))
        if scores.exists():
            continue
        try:
            result = evaluate_forecast(forecast, store)
        except EmulatorError as error:
            LOG.info("%s: not verifiable yet (%s)", forecast.parent.name, error)
            continue
        with atomic_path(scores) as temporary:
            result.to_netcdf(temporary)
        LOG.info("scored %s against %d lead times", forecast.parent.name, result.sizes["lead_time"])
        written.append(scores)
    return written


def run_nightly(config: Config, config_path: str, output: Path, device: str = "auto") -> Path | None:
    """Run (or finish) the newest cycle; return its manifest, or None when it was already complete."""
    store = Path(config.data.store)
    if not store.exists() and config.world is not None:
        LOG.info("%s missing: simulating the built-in world", store)
        write_world_store(config.world, store)
    cycle = newest_complete_time(ZarrSource(config.data.store, config.data.prognostic))
    stamp = cycle.strftime("%Y%m%dT%H%M")
    directory = output / stamp
    if manifest_is_complete(directory):
        LOG.info("cycle %s is complete in %s: nothing to do", cycle, directory)
        return None
    options = RolloutOptions(init_time=cycle.isoformat(), output_dir=str(directory), device=device)
    with directory_lock(directory):
        if not (directory / f"spectra_{stamp}.nc").exists():
            run_forecast(config, options)
        if not (directory / f"ensemble_spectra_{stamp}.nc").exists():
            run_ensemble(config, options=options)
        score_verifiable_cycles(output, config.data.store)
        manifest = _write_manifest(directory, cycle, config_path)
    LOG.info("cycle %s complete: %s", cycle, manifest)
    return manifest
