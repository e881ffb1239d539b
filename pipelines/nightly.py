"""The nightly forecast job: one command, safe to run twice and safe to kill.

For the newest initial time of the store that holds every channel, it writes into
``OUTPUT/<cycle>/`` the deterministic forecast, the ensemble, their spectra, and
then scores every earlier cycle whose forecast has become verifiable, and finally
a ``manifest.json`` with the SHA-256 of each product. Every file is written under
a temporary name and renamed on success; the manifest comes last, so a cycle with
a manifest is complete. A run that finds the manifest (and its files intact) does
nothing and says so; a killed run is finished by the next. A lock file keeps two
runs off the same cycle.

    python -m pipelines.nightly --config configs/nightly.yaml --output nightly
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from emulator import __version__
from emulator.checkpoint import file_hash
from emulator.config import Config, load_config
from emulator.data.source import ZarrSource
from emulator.ensemble import run_ensemble
from emulator.errors import EmulatorError
from emulator.evaluation import evaluate_forecast
from emulator.files import atomic_path
from emulator.forecast import RolloutOptions, run_forecast
from emulator.world.store import write_world_store

LOG = logging.getLogger("nightly")
MANIFEST = "manifest.json"
EXIT_OK, EXIT_ERROR, EXIT_LOCKED = 0, 1, 3


def newest_complete_time(source: ZarrSource) -> pd.Timestamp:
    """The newest time at which every channel is present and finite."""
    for index in range(len(source) - 1, -1, -1):
        if np.isfinite(source.read([index])).all():
            return source.times[index]
        LOG.warning("%s: %s lacks some channel values; trying the time before", source.store, source.times[index])
    raise EmulatorError(f"{source.store}: no time has all channels")


@contextlib.contextmanager
def cycle_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock file for one cycle; a lock left by a dead process is taken over."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / ".lock"
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            holder = int(lock.read_text() or 0)
            if _alive(holder):
                raise LockedError(f"{directory}: another run (pid {holder}) is working on this cycle") from None
            LOG.warning("%s: removing the stale lock of pid %d", directory, holder)
            lock.unlink(missing_ok=True)
    else:
        raise LockedError(f"{directory}: could not take the lock")
    try:
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        yield
    finally:
        lock.unlink(missing_ok=True)


class LockedError(EmulatorError):
    """Another live run holds the cycle."""


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def manifest_is_complete(directory: Path) -> bool:
    """A manifest exists and every product it names has the recorded checksum."""
    path = directory / MANIFEST
    if not path.is_file():
        return False
    products = json.loads(path.read_text())["products"]
    return all(
        (directory / name).is_file() and file_hash(directory / name) == digest for name, digest in products.items()
    )


def _write_manifest(directory: Path, cycle: pd.Timestamp, config_path: str) -> Path:
    products = {p.name: file_hash(p) for p in sorted(directory.glob("*.nc"))}
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


def run_nightly(config: Config, config_path: str, output: Path, device: str = "auto") -> int:
    """Run (or finish) the newest cycle; return the process exit code."""
    store = Path(config.data.store)
    if not store.exists() and config.world is not None:
        LOG.info("%s missing: simulating the built-in world", store)
        write_world_store(config.world, store)
    cycle = newest_complete_time(ZarrSource(config.data.store, config.data.prognostic))
    directory = output / cycle.strftime("%Y%m%dT%H%M")
    if manifest_is_complete(directory):
        LOG.info("cycle %s is complete in %s: nothing to do", cycle, directory)
        return EXIT_OK
    with cycle_lock(directory):
        stamp = cycle.strftime("%Y%m%dT%H%M")
        if not (directory / f"spectra_{stamp}.nc").exists():
            run_forecast(config, RolloutOptions(init_time=cycle.isoformat(), output_dir=str(directory), device=device))
        if not (directory / f"ensemble_spectra_{stamp}.nc").exists():
            run_ensemble(
                config, options=RolloutOptions(init_time=cycle.isoformat(), output_dir=str(directory), device=device)
            )
        score_verifiable_cycles(output, config.data.store)
        manifest = _write_manifest(directory, cycle, config_path)
    LOG.info("cycle %s complete: %s", cycle, manifest)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.nightly", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/nightly.yaml", help="YAML config (default: configs/nightly.yaml)")
    parser.add_argument("--output", default="nightly", help="directory of cycles (default: nightly)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_nightly(load_config(args.config, args.set), args.config, Path(args.output), args.device)
    except LockedError as error:
        print(f"nightly: {error}", file=sys.stderr)
        return EXIT_LOCKED
    except EmulatorError as error:
        print(f"nightly: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
