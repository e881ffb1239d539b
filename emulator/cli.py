"""The ``emulator`` command: one subcommand per job, one clear line on error."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from emulator import __version__
from emulator.config import Config, load_config
from emulator.errors import EmulatorError
from emulator.files import atomic_path
from emulator.forecast import RolloutOptions

LOG = logging.getLogger("emulator")


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.set)


def _synth(args: argparse.Namespace) -> None:
    from emulator.world.store import write_world_store

    config = _config(args)
    if config.world is None:
        raise EmulatorError(f"{args.config}: world: section missing (synth needs it)")
    path = write_world_store(config.world, args.output or config.data.store, overwrite=args.overwrite)
    print(f"store: {path}")


def _world_climate(args: argparse.Namespace) -> None:
    from emulator.training.online import world_grid
    from emulator.world.climate import write_world_climate

    config = _config(args)
    if config.world is None:
        raise EmulatorError(f"{args.config}: world: section missing (world-climate needs it)")
    grid, channels = world_grid(config.world), config.data.prognostic
    path = write_world_climate(config.world, grid, channels, args.years, args.seed_base, args.output, args.days)
    print(f"climate: {path}")


def _beside_store(store: str, suffix: str) -> str:
    """``<store><suffix>`` beside a local store; in the working directory for a URL."""
    stem = store.rstrip("/")
    return f"{stem.rsplit('/', 1)[-1] if '://' in stem else stem}{suffix}"


def _ingest(args: argparse.Namespace) -> None:
    from emulator.data.source import ZarrSource
    from emulator.data.statistics import compute_climatology, compute_statistics, find_gaps, time_step

    config = _config(args)
    data = config.data
    source = ZarrSource(data.store, data.prognostic + data.forcing, data.regrid)
    grid = source.grid
    print(
        f"store: {data.store}: {len(source)} times every {time_step(source.times)}, model grid {grid.nlat}x{grid.nlon} "
        f"{grid.kind}{' (regridded)' if data.regrid else ''}, {len(source.channels)} channels"
    )
    for before, after in find_gaps(source.times):
        print(f"gap: {before} -> {after} (windows across it are skipped)")
    indices = source.period_indices(data.train_period)
    statistics_path = args.output or _beside_store(data.store, ".stats.nc")
    climatology_path = args.climatology or _beside_store(data.store, ".climatology.nc")
    compute_statistics(source, indices, args.scheduler, show_progress=True).save(statistics_path)
    with atomic_path(climatology_path) as temporary:
        compute_climatology(source, indices, args.scheduler, show_progress=True).to_netcdf(temporary)
    print(f"statistics: {statistics_path}")
    print(f"climatology: {climatology_path}")


def _evaluate(args: argparse.Namespace) -> None:
    from emulator.evaluation import evaluate_forecast

    scores = evaluate_forecast(args.forecast, args.store, climatology=args.climatology)
    with atomic_path(args.output) as temporary:
        scores.to_netcdf(temporary)
    print(f"scores: {args.output}")


def _train(args: argparse.Namespace) -> None:
    from emulator.training.train import train

    config = _config(args)
    path = train(config, device=args.device, resume=args.resume)
    print(f"checkpoint: {path}")


def _calibrate(args: argparse.Namespace) -> None:
    from emulator.training.calibration import calibrate

    path = calibrate(_config(args), args.checkpoint, args.output, args.windows, device=args.device)
    print(f"checkpoint: {path}")


def _rollout_options(args: argparse.Namespace) -> RolloutOptions:
    return RolloutOptions(args.checkpoint, args.init_time, args.lead, args.output, args.device, args.climate)


def _print_products(products: dict[str, Path]) -> None:
    for name, path in products.items():
        print(f"{name}: {path}")


def _forecast(args: argparse.Namespace) -> None:
    from emulator.forecast import run_forecast

    _print_products(run_forecast(_config(args), _rollout_options(args)))


def _ensemble(args: argparse.Namespace) -> None:
    from emulator.ensemble import reproduce_members, run_ensemble

    config, options = _config(args), _rollout_options(args)
    if args.reproduce:
        path = reproduce_members(config, Path(args.reproduce), args.member_ids, options)
        print(f"members: {path}")
        return
    _print_products(run_ensemble(config, args.members, options))


def _nightly(args: argparse.Namespace) -> None:
    from emulator.nightly import run_nightly

    manifest = run_nightly(_config(args), args.config, Path(args.output), args.device)
    print(f"manifest: {manifest}" if manifest else "nothing to do: the newest cycle is complete")


def _spectra(args: argparse.Namespace) -> None:
    from emulator.io.spectra_writer import write_spectra

    print(f"spectra: {write_spectra(args.forecast, args.output)}")


def _plot(args: argparse.Namespace) -> None:
    from emulator.plotting import plot_products

    for path in plot_products(
        args.forecast, args.spectra, args.output, channel=args.channel, lead_index=args.lead_index
    ):
        print(f"plot: {path}")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config file (see configs/)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. train.learning_rate=1e-4 (repeatable)",
    )


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run (auto: cuda if available)"
    )


def _add_rollout_options(parser: argparse.ArgumentParser) -> None:
    _add_config(parser)
    _add_device(parser)
    parser.add_argument("--checkpoint", help="checkpoint file (default: forecast.checkpoint)")
    parser.add_argument(
        "--init-time", help="initial time in the store, ISO 8601, or 'latest' (default: forecast.init_time)"
    )
    parser.add_argument(
        "--lead", help="lead: a number of steps or a duration such as 10d or 36h (default: forecast.lead_steps)"
    )
    parser.add_argument("--output", help="output directory (default: forecast.output_dir)")
    parser.add_argument(
        "--climate",
        action="store_true",
        help="a free-running climate run: add the stochastic forcing of climate rollouts (climate.stochastic_forcing, "
        "else the checkpoint's); without it the rollout is a deterministic forecast",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emulator", description="Autoregressive weather and climate emulator on the sphere."
    )
    parser.add_argument("--version", action="version", version=f"emulator {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], None], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    sub = command(
        "synth", _synth, "Simulate the built-in shallow-water world and write it as a reanalysis-layout Zarr store."
    )
    _add_config(sub)
    sub.add_argument("--output", help="store path (default: data.store of the config)")
    sub.add_argument("--overwrite", action="store_true", help="replace an existing store")

    sub = command(
        "world-climate",
        _world_climate,
        "Simulate independent years of the built-in world and write their daily band power (NetCDF), "
        "the target of a climate loss (train.climate).",
    )
    _add_config(sub)
    sub.add_argument("--years", type=int, default=16, help="independent years, simulated together (default: 16)")
    sub.add_argument("--seed-base", type=int, default=1000, help="the members' seeds start here (default: 1000)")
    sub.add_argument("--days", type=int, default=365, help="daily samples of each year (default: 365)")
    sub.add_argument("--output", required=True, help="NetCDF file to write")

    sub = command(
        "ingest", _ingest, "Validate a store against a data config and compute normalization statistics with dask."
    )
    _add_config(sub)
    sub.add_argument("--output", help="statistics file (NetCDF; default: beside the store)")
    sub.add_argument("--climatology", help="time-mean climatology file for ACC (NetCDF; default: beside the store)")
    sub.add_argument("--scheduler", help="address of a dask.distributed scheduler (default: local threads)")

    sub = command("train", _train, "Train a model on the config's store; writes a self-contained checkpoint.")
    _add_config(sub)
    _add_device(sub)
    sub.add_argument(
        "--resume", action="store_true", help="continue a stopped run from the state saved beside its checkpoint"
    )

    sub = command(
        "calibrate",
        _calibrate,
        "Measure a checkpoint's one-step residual statistics on the config's training period, for its "
        "stochastic forcing (stepper.stochastic_forcing); stores them in the checkpoint.",
    )
    _add_config(sub)
    _add_device(sub)
    sub.add_argument("--checkpoint", required=True, help="checkpoint to calibrate")
    sub.add_argument("--output", help="checkpoint file to write (default: the checkpoint, replaced atomically)")
    sub.add_argument("--windows", type=int, default=400, help="two-step windows to measure (default: 400)")

    sub = command(
        "forecast",
        _forecast,
        "Roll a checkpoint out from an initial time of the store; writes forecast and spectra NetCDF.",
    )
    _add_rollout_options(sub)

    sub = command(
        "ensemble",
        _ensemble,
        "Roll out an ensemble (random-field or bred-vector initial perturbations, model noise, several "
        "checkpoints, lagged starts); writes the ensemble (NetCDF or Zarr) and its spectra, every member's recipe "
        "recorded. Under torchrun the members are spread over the ranks.",
    )
    _add_rollout_options(sub)
    sub.add_argument("--members", type=int, help="number of members, the control included (default: ensemble.members)")
    sub.add_argument("--reproduce", metavar="ENSEMBLE", help="re-run members of this ensemble output from its recipes")
    sub.add_argument(
        "--member-ids", type=int, nargs="+", default=[0], help="with --reproduce: which members (default: 0)"
    )

    sub = command(
        "nightly",
        _nightly,
        "The nightly job: newest complete initial time, forecast, ensemble, spectra, scores, manifest "
        "(idempotent, safe to kill, locked; exit 3 when another run holds the cycle).",
    )
    _add_config(sub)
    _add_device(sub)
    sub.add_argument("--output", default="nightly", help="directory of cycles (default: nightly)")

    sub = command("spectra", _spectra, "Compute power spectra per spherical-harmonic degree of a forecast NetCDF file.")
    sub.add_argument("forecast", help="forecast NetCDF file")
    sub.add_argument("--output", required=True, help="spectra NetCDF file to write")

    sub = command(
        "evaluate", _evaluate, "Score a forecast NetCDF against the truth in a store (area-weighted RMSE, persistence)."
    )
    sub.add_argument("forecast", help="forecast NetCDF file")
    sub.add_argument("--store", required=True, help="truth Zarr store")
    sub.add_argument(
        "--climatology", help="climatology NetCDF from 'emulator ingest', for the anomaly correlation (ACC)"
    )
    sub.add_argument("--output", required=True, help="scores NetCDF file to write")

    sub = command("plot", _plot, "Draw a map (cartopy) and an energy spectrum (log-log) as PNG.")
    sub.add_argument("forecast", help="forecast NetCDF file")
    sub.add_argument("--spectra", help="spectra NetCDF file (default: no spectrum plot)")
    sub.add_argument("--output", required=True, help="directory for the PNG files")
    sub.add_argument("--channel", help="channel to map (default: the first)")
    sub.add_argument("--lead-index", type=int, default=-1, help="lead step to map (default: the last)")
    return parser


def _one_line(error: EmulatorError) -> str:
    """The error's message; raised in a DataLoader worker, the original one, not torch's traceback around it."""
    lines = str(error).strip().splitlines()
    if len(lines) > 1 and lines[0].startswith("Caught "):
        return lines[-1].split(": ", 1)[-1]
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args.run(args)
    except EmulatorError as error:
        print(f"emulator {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"emulator {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
