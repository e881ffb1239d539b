"""The stability scorecard: skill on a held-out year of the built-in world, and long rollouts.

Truth: ``configs/world_heldout.yaml`` (seed 2, never trained on; written here if
missing). The model and its stability controls are those of ``configs/world.yaml``
(the demo's; ``--set`` overrides them), so the scorecard measures what users run;
the long rollouts add the config's climate forcing (``climate.stochastic_forcing``,
else the one the checkpoint was trained through; see
:meth:`~emulator.config.Config.climate_stepper`); the forecasts scored stay deterministic.

Figures:

* ``rmse_vs_persistence_{1,3,5,10}d``, ``rmse_vs_climatology_{...}d`` (our RMSE over
  theirs) and ``acc_{...}d`` per channel, over initial times every 5 days; the
  climatology is the time mean of the training store (the truth store's in
  ``--quick``);
* ``spread_skill_5d``, ``crps_5d``, ``mean_rmse_5d`` (the ensemble mean's RMSE) and
  ``mean_over_control_5d`` (that over the control's) of an 8-member ensemble: the
  control and seven Gaussian random fields of the default amplitude (0.05 standard
  deviations, 500 km);
* a rollout of ``--years`` (100 by default; a few hundred steps with ``--quick``) with every control on:
  ``steps_to_nonfinite`` (the rollout length if none), ``sypd``, ``energy_drift``
  (mean kinetic energy of the last year over the truth climate's, minus one) and
  ``spectrum_error_{1,10,20,...,100}y`` (largest relative error of band-averaged
  power, octave bands of degree, every channel and the kinetic energy spectrum, the
  year's mean against the truth climate's) and ``bands_within_tolerance_*`` (how many
  of those bands are within 10 %, the issue's target) at year 1 and every tenth year
  reached; from ten years on, ``energy_drift_decade`` and ``spectrum_error_decade_{10,...}y``
  do the same for the last ten years; from two years on, ``energy_drift_median_year``
  and ``energy_drift_worst_year`` are the median and largest absolute drift of the
  annual means (against ``energy_truth_floor``, the truth's own median); at the same
  marks ``unbalanced_geopotential_*`` and ``divergent_kinetic_energy_*``, the largest
  over bands of the slow-manifold shares of :mod:`benchmarks.slow_manifold` (the
  held-out truth's, every fourth day, in the figure's config), and
  ``planetary_mode_factor_*``, the largest factor by which a mode of degree 1-3
  (each order apart, :mod:`benchmarks.planetary_modes`) is off those truth days'
  power, the worst mode in the figure's config, ``divergent_mode_factor_*``, the
  same for the divergent wind's modes, and ``tilt_wave_coherence_*``, how much of the
  tilt moves with the order-1 planetary wave (the truth's in the config);
* at the same marks, the jets: per channel ``zonal_offset_*`` (area-weighted rms offset of the mean
  zonal mean, physical units), ``zonal_spread_*`` (day-to-day spread of the zonal means over the
  truth's) and ``zonal_persistence_{1,5,10}d_*`` (lag autocorrelation of their departures, the
  truth's in the config); and ``zonal_band_gap_*``, the largest gap between the zonally symmetric
  (order 0) part of a band's power and the truth's, as a share of the truth's whole band power
  (the band and both shares in the config, each also split off for the zonal means' day-to-day
  departures, ``variability_share``): a band can pass on a zonal-mean flow the truth lacks, or on
  mean jets too strong for jets too steady;
* the truth climate is 64 independent years of the world (:mod:`benchmarks.world_climate`; where not cached,
  simulated in a thread beside the forecasts and the rollout, whose marks wait for it),
  and ``energy_truth_floor``, ``spectrum_error_truth_floor``,
  ``bands_within_tolerance_truth_floor`` (and their ``_decade`` forms) are the medians
  of the same figures for windows of the truth as long as the rollout's (its members
  times one or ten years) against the other years, with
  ``every_band_within_tolerance_truth_share``, the share of those windows with every
  band within 10 %, and per channel ``zonal_{offset,spread,persistence_*}_truth_floor``
  (how far such a window's jets are from the other years'): the sampling noise below
  which no model can be judged;
* the same rollout with each control off in turn (one year unless ``--off-years`` asks for more):
  ``steps_to_failure_without_<control>`` (the rollout length if it never failed).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from benchmarks.planetary_modes import BALANCED, QUANTITIES, PlanetaryModes, coherence, mode_factor
from benchmarks.scratch import scratch_directory
from benchmarks.slow_manifold import SHARES, SlowManifold
from benchmarks.timing import emit, note
from benchmarks.world_climate import (
    BAND_TOLERANCE,
    BANDS,
    PERSISTENCE_LAGS,
    Climate,
    Diagnostics,
    ZonalPower,
    bands_within,
    spectrum_error,
    world_climate,
    zonal_offset,
    zonal_persistence,
    zonal_spread,
)
from emulator.checkpoint import Checkpoint, load_checkpoint
from emulator.config import Config, StepperConfig, load_config
from emulator.data.source import ZarrSource
from emulator.data.statistics import compute_climatology
from emulator.metrics import acc, crps, rmse, spread
from emulator.perturbations import RandomFieldConfig, RandomFieldPerturbation, seeded_generator
from emulator.spectra import BandPower
from emulator.stepper import DivergenceError, Stepper
from emulator.world.store import write_world_store

BENCH = "skill"
ROOT = Path(__file__).resolve().parent.parent
STEPS_PER_DAY = 4
LEAD_DAYS = (1, 3, 5, 10)
YEAR_DAYS, DECADE_YEARS = 365, 10
TRUTH_YEARS = 64
OFF: dict[str, object] = {
    "spectral_filter": None,
    "balance": None,
    "divergent_wind": None,
    "rotational_drag": None,
    "divergent_partners": None,
    "clamp": {},
    "conserve": [],
    "equatorial_angular_momentum": False,
    "divergence_guard": False,
}
ENSEMBLE_MEMBERS = 8
YEARS, OFF_YEARS = 100.0, 1.0
MARK_YEARS = (1, *range(10, 101, 10))
YEARS_QUICK = 300 / (YEAR_DAYS * STEPS_PER_DAY)
TRUTH_MANIFOLD_EVERY_DAYS = 4
TRUTH_ZONAL_EVERY_DAYS = 4  # the truth climate's days whose zonal-mean band power is measured


@dataclass
class Setting:
    truth: str
    climatology_store: str
    init_every_days: int
    lead_days: tuple[int, ...]
    ensemble_inits: int
    years: float
    off_years: float
    device: torch.device


def world_checkpoint(checkpoint: str | None, overrides: list[str] | None = None) -> tuple[Config, Path, Checkpoint]:
    """``configs/world.yaml`` with ``overrides``, and the checkpoint to score (its own unless given) and its path."""
    config = load_config(ROOT / "configs" / "world.yaml", overrides or ())
    path = Path(checkpoint) if checkpoint else ROOT / config.forecast.checkpoint
    return config, path, load_checkpoint(path)


def truth_store(quick: bool) -> str:
    config = load_config(ROOT / "configs" / "world_heldout.yaml")
    assert config.world is not None
    if quick:
        path = scratch_directory("skill_") / "truth.zarr"
        world = config.world.model_copy(update={"spinup_days": 3, "record_days": 4.0})
        return str(write_world_store(world, path))
    if not Path(config.data.store).exists():
        note(f"writing the held-out truth {config.data.store} (a simulated year, about 10 minutes)")
        write_world_store(config.world, config.data.store)
    return config.data.store


def stepper_for(checkpoint: Checkpoint, controls: StepperConfig, device: torch.device) -> Stepper:
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    config = controls.model_copy(update={"residual": checkpoint.config.stepper.residual})
    stepper = Stepper(checkpoint.model, normalizer, config, checkpoint.grid, checkpoint.residual_statistics)
    return stepper.to(device).eval()


def _forecast(stepper: Stepper, initial: torch.Tensor, steps: int) -> Iterator[torch.Tensor]:
    """Normalized states after each of ``steps`` steps (no forcings), on ``initial``'s device."""
    empty = initial.new_zeros(1, 0, *initial.shape[-2:])
    return stepper.rollout(initial, (empty for _ in range(steps)))


def _fields(values: torch.Tensor | np.ndarray, dims: tuple[str, ...], checkpoint: Checkpoint) -> xr.DataArray:
    coords = {"channel": checkpoint.prognostic, "latitude": checkpoint.grid.latitudes}
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims=(*dims, "channel", "latitude", "longitude"),
                        coords=coords)  # fmt: skip


def scores(checkpoint: Checkpoint, controls: StepperConfig, setting: Setting) -> None:
    """RMSE against persistence and climatology and ACC at the lead days, over initial times."""
    stepper = stepper_for(checkpoint, controls, setting.device)
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    truth = ZarrSource(setting.truth, checkpoint.prognostic)
    climate = ZarrSource(setting.climatology_store, checkpoint.prognostic)
    climatology = compute_climatology(climate, np.arange(len(climate))).drop_vars(["latitude", "longitude"])
    grid = checkpoint.grid
    lead_steps = np.asarray(setting.lead_days) * STEPS_PER_DAY
    inits = np.arange(0, len(truth) - lead_steps[-1], STEPS_PER_DAY * setting.init_every_days)
    squared: dict[str, list[xr.DataArray]] = {"model": [], "persistence": [], "climatology": [], "acc": []}
    for init in inits:
        initial = torch.from_numpy(truth.read([init]))
        states = list(_forecast(stepper, normalizer.normalize(initial).to(setting.device), int(lead_steps[-1])))
        forecast = _fields(torch.cat([normalizer.denormalize(states[step - 1].cpu()) for step in lead_steps]),
                           ("lead",), checkpoint)  # fmt: skip
        target = _fields(truth.read(init + lead_steps), ("lead",), checkpoint)
        persistence = _fields(initial.expand(len(lead_steps), -1, -1, -1), ("lead",), checkpoint)
        squared["model"].append(rmse(forecast, target, grid) ** 2)
        squared["persistence"].append(rmse(persistence, target, grid) ** 2)
        squared["climatology"].append(rmse(climatology, target, grid) ** 2)
        squared["acc"].append(acc(forecast, target, climatology, grid))
    mean = {name: xr.concat(values, "init").mean("init") for name, values in squared.items()}
    for i, day in enumerate(setting.lead_days):
        for channel in checkpoint.prognostic:
            config = {"channel": channel, "initial_times": len(inits), "truth": Path(setting.truth).name}
            at = {name: values.isel(lead=i).sel(channel=channel) for name, values in mean.items()}
            for reference in ("persistence", "climatology"):
                ratio = float(np.sqrt(at["model"] / at[reference]))
                emit(BENCH, f"rmse_vs_{reference}_{day}d", ratio, config, setting.device)
            emit(BENCH, f"acc_{day}d", float(at["acc"]), config, setting.device)
    ensemble_day = setting.lead_days[min(2, len(setting.lead_days) - 1)]
    ensemble_scores(checkpoint, stepper, truth, inits[: setting.ensemble_inits], (ensemble_day,), setting.device)


def ensemble_scores(
    checkpoint: Checkpoint,
    stepper: Stepper,
    truth: ZarrSource,
    inits: np.ndarray,
    days: tuple[int, ...],
    device: torch.device,
    perturbation: RandomFieldConfig | None = None,
    labels: dict[str, object] | None = None,
    bench: str = BENCH,
) -> None:
    """Spread/skill, fair CRPS and the ensemble mean's RMSE (over the control's) of a Gaussian-random-field ensemble.

    ``perturbation``: the initial perturbations (the library default when None); ``labels``: added to each
    figure's config.
    """
    perturbation = perturbation or RandomFieldConfig()
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    fields = RandomFieldPerturbation(perturbation, checkpoint.prognostic, checkpoint.grid)
    leads = [day * STEPS_PER_DAY for day in days]
    squares: dict[str, list[list[xr.DataArray]]] = {name: [[] for _ in days] for name in ("spread", "mean", "control")}
    crps_values: list[list[xr.DataArray]] = [[] for _ in days]
    for init in inits:
        control = normalizer.normalize(torch.from_numpy(truth.read([init])))[0]
        draws = [fields.draw(seeded_generator((init, member))) for member in range(1, ENSEMBLE_MEMBERS)]
        members = torch.stack([control, *(control + draw for draw in draws)])
        states = list(_forecast(stepper, members.to(device), max(leads)))
        for index, lead in enumerate(leads):
            ensemble = _fields(normalizer.denormalize(states[lead - 1].cpu()), ("member",), checkpoint)
            target = _fields(truth.read([init + lead])[0], (), checkpoint)
            squares["spread"][index].append(spread(ensemble, checkpoint.grid) ** 2)
            squares["mean"][index].append(rmse(ensemble.mean("member"), target, checkpoint.grid) ** 2)
            squares["control"][index].append(rmse(ensemble.isel(member=0), target, checkpoint.grid) ** 2)
            crps_values[index].append(crps(ensemble, target, checkpoint.grid))
    for index, day in enumerate(days):
        mean = {name: xr.concat(values[index], "init").mean("init") for name, values in squares.items()}
        mean_crps = xr.concat(crps_values[index], "init").mean("init")
        for channel in checkpoint.prognostic:
            config = {
                "channel": channel,
                "initial_times": len(inits),
                "members": ENSEMBLE_MEMBERS,
                "amplitude": perturbation.default_amplitude,
                **(labels or {}),
            }
            at = {name: float(values.sel(channel=channel)) for name, values in mean.items()}
            emit(bench, f"spread_skill_{day}d", np.sqrt(at["spread"] / at["mean"]), config, device)
            emit(bench, f"crps_{day}d", float(mean_crps.sel(channel=channel)), config, device)
            emit(bench, f"mean_rmse_{day}d", np.sqrt(at["mean"]), config, device)
            emit(bench, f"mean_over_control_{day}d", np.sqrt(at["mean"] / at["control"]), config, device)


def truth_climate(checkpoint: Checkpoint, quick: bool) -> Climate:
    """The world's climate of :mod:`benchmarks.world_climate` (two members of four days with ``--quick``)."""
    config = load_config(ROOT / "configs" / "world_heldout.yaml")
    assert config.world is not None
    diagnostics = Diagnostics(checkpoint.grid, checkpoint.prognostic)
    if quick:
        world = config.world.model_copy(update={"spinup_days": 3})
        return world_climate(world, diagnostics, 2, scratch_directory("climate_") / "climate.nc", days=4)
    note(f"truth climate: {TRUTH_YEARS} independent years (unless cached: about 35 minutes of two cores)")
    return world_climate(config.world, diagnostics, TRUTH_YEARS, Path(config.data.store).parent / "world_climate.nc")


def band_error(bands: torch.Tensor, truth_bands: torch.Tensor, label: str) -> float:
    """:func:`spectrum_error`, noting the ratio of every band."""
    ratio = bands / truth_bands
    note(f"{label}: band power over the truth's (rows z, u, v, KE; bands {BANDS}):\n{np.round(ratio.numpy(), 2)}")
    return spectrum_error(bands, truth_bands)


def manifold_shares(powers: torch.Tensor, truth: torch.Tensor, label: str) -> torch.Tensor:
    """:meth:`SlowManifold.shares` of ``powers``, noting every band's beside the truth's."""
    shares = SlowManifold.shares(powers)
    rows = "\n".join(
        f"{name}: {np.round(model.numpy(), 3)} (truth {np.round(reference.numpy(), 3)})"
        for name, model, reference in zip(SHARES, shares, truth, strict=True)
    )
    note(f"{label}: slow manifold, share per band {BANDS}:\n{rows}")
    return shares


def planetary_factors(
    powers: torch.Tensor, truth: torch.Tensor, modes: PlanetaryModes, label: str
) -> dict[str, tuple[float, str]]:
    """:func:`mode_factor` and worst mode of the balanced flow's quantities (``planetary_mode_factor``) and of the
    divergent wind's (``divergent_mode_factor``), noting every mode's power over the truth's."""
    rows = "\n".join(
        f"{name}: {np.round(row.numpy(), 2)}" for name, row in zip(QUANTITIES, powers / truth, strict=True)
    )
    note(f"{label}: planetary modes (degree,order: {' '.join(modes.labels)}) over the truth's:\n{rows}")
    groups = {"planetary_mode_factor": slice(None, BALANCED), "divergent_mode_factor": slice(BALANCED, None)}
    factors = {}
    for figure, group in groups.items():
        factor, quantity, mode = mode_factor(powers[group], truth[group])
        factors[figure] = factor, f"{QUANTITIES[group][quantity]} {modes.labels[mode]}"
    return factors


def zonal_band_gap(
    zonal: ZonalPower,
    truth_zonal: ZonalPower,
    truth_bands: torch.Tensor,
    band_power: BandPower,
    label: str,
) -> tuple[float, dict[str, object]]:
    """The largest gap between a window's zonally symmetric band power and the truth's, as a share of the truth's
    whole band power, and where it is (band, both shares, and both shares of the zonal means' day-to-day
    departures); noting every band's shares beside the truth's."""
    shares, truth_shares = zonal.whole / truth_bands, truth_zonal.whole / truth_bands
    variability, truth_variability = zonal.variability / truth_bands, truth_zonal.variability / truth_bands
    note(
        f"{label}: zonal-mean (order 0) band power over the truth's whole (rows z, u, v, KE; bands {BANDS}):\n"
        f"{np.round(shares.numpy(), 2)}\ntruth:\n{np.round(truth_shares.numpy(), 2)}\n"
        f"of which in the day-to-day departures:\n{np.round(variability.numpy(), 2)}\n"
        f"truth:\n{np.round(truth_variability.numpy(), 2)}"
    )
    gap = (shares - truth_shares).abs()
    quantity, band = divmod(int(gap.argmax()), gap.shape[1])
    where = {
        "band": f"{band_power.quantities[quantity]} {band_power.labels[band]}",
        "share": round(float(shares[quantity, band]), 4),
        "truth_share": round(float(truth_shares[quantity, band]), 4),
        "variability_share": round(float(variability[quantity, band]), 4),
        "truth_variability_share": round(float(truth_variability[quantity, band]), 4),
    }
    return float(gap.max()), where


def truth_floor(
    climate: Climate, channels: list[str], member_years: int, suffix: str, bench: str, device: torch.device
) -> None:
    """The truth's own scores in windows of ``member_years``: the noise below which no model can be judged."""
    if member_years >= climate.years:
        note(f"no truth floor{suffix}: {member_years} member-years need more than the truth's {climate.years}")
        return
    floor = climate.floor(member_years)
    config: dict[str, object] = {"window_years": member_years, "truth_years": climate.years}
    emit(bench, f"energy_truth_floor{suffix}", floor.energy, config, device)
    emit(bench, f"spectrum_error_truth_floor{suffix}", floor.spectrum_error, config, device)
    emit(bench, f"bands_within_tolerance_truth_floor{suffix}", floor.bands_within, config, device)
    emit(bench, f"every_band_within_tolerance_truth_share{suffix}", floor.every_band_share, config, device)
    floors = {"offset": floor.zonal_offset, "spread": floor.zonal_spread} | {
        f"persistence_{lag}d": gaps for lag, gaps in floor.zonal_persistence.items()
    }
    for name, values in floors.items():
        for channel, value in zip(channels, values.tolist(), strict=True):
            emit(bench, f"zonal_{name}_truth_floor{suffix}", value, config | {"channel": channel}, device)


def zonal_scores(
    zonal: torch.Tensor,
    climate: Climate,
    channels: list[str],
    figures: str,
    at: dict[str, object],
    bench: str,
    device: torch.device,
) -> None:
    """The jets of a window's ``(day, member, channel, lat)`` daily zonal means against the truth's, per channel:
    the rms offset of their mean (physical units), their day-to-day spread over the truth's, and how long their
    departures last (lag autocorrelation at ``PERSISTENCE_LAGS`` days, the truth's beside it), as
    ``zonal_*{figures}``."""
    truth = climate.zonal.transpose(0, 1)
    scores = {
        "offset": zonal_offset(zonal.flatten(0, 1), truth.flatten(0, 1), climate.weights),
        "spread": zonal_spread(zonal.flatten(0, 1), truth.flatten(0, 1), climate.weights),
    }
    truths: dict[str, torch.Tensor] = {}
    for lag in (lag for lag in PERSISTENCE_LAGS if lag < min(len(zonal), len(truth))):
        scores[f"persistence_{lag}d"] = zonal_persistence(zonal, lag, climate.weights)
        truths[f"persistence_{lag}d"] = zonal_persistence(truth, lag, climate.weights)
    for index, channel in enumerate(channels):
        row = ", ".join(
            f"{name} {float(values[index]):.3g}"
            + (f" (truth {float(truths[name][index]):.3g})" if name in truths else "")
            for name, values in scores.items()
        )
        note(f"{figures.strip('_')}: {channel}'s zonal mean: {row}")
        for name, values in scores.items():
            config = at | {"channel": channel}
            if name in truths:
                config["truth_autocorrelation"] = round(float(truths[name][index]), 4)
            emit(bench, f"zonal_{name}{figures}", float(values[index]), config, device)


def long_rollout(
    checkpoint: Checkpoint, controls: StepperConfig, initial: torch.Tensor, years: float, device: torch.device
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(step, physical state)`` once a day for ``years``.

    Stops with :class:`DivergenceError` when the guard trips, or (guard off) at the
    first day with a non-finite value.
    """
    stepper = stepper_for(checkpoint, controls, device)
    normalizer = checkpoint.normalizer.subset(checkpoint.prognostic)
    steps = round(years * YEAR_DAYS * STEPS_PER_DAY)
    for step, state in enumerate(_forecast(stepper, normalizer.normalize(initial).to(device), steps), 1):
        if step % STEPS_PER_DAY == 0:
            if not bool(torch.isfinite(state).all()):
                raise DivergenceError(step, "any", "is not finite (found at the daily check)")
            yield step, normalizer.denormalize(state.cpu())


@dataclass(frozen=True)
class Window:
    """The rollout's daily diagnostics over the ``days`` days up to a mark, kept until the truth climate scores them."""

    suffix: str  # "" (a year or less) or "_decade"
    mark: str  # "1y", "10y", ... or "end"
    step: int
    days: int
    bands: torch.Tensor  # (quantity, band) mean power
    zonal: torch.Tensor  # (day, member, channel, lat) daily zonal means
    powers: torch.Tensor  # mean slow-manifold powers
    modes: torch.Tensor  # mean planetary-mode powers
    tilt_wave: torch.Tensor  # mean of the tilt and order-1 wave products

    @property
    def label(self) -> str:
        return f"{self.suffix.strip('_')} {self.mark}".strip()

    @property
    def figures(self) -> str:
        return f"{self.suffix}_{self.mark}"


@dataclass(frozen=True)
class Truth:
    """The truth climate with its mean kinetic energy, ``(quantity, band)`` power and zonal-mean band power."""

    climate: Climate
    energy: float
    bands: torch.Tensor
    zonal: ZonalPower


class RolloutScores:
    """The long rollout's figures, day by day. The truth climate may still be simulated beside the rollout: each
    mark's window is kept until it is there, then scored; the held-out truth's days give the slow manifold's
    shares, the planetary modes and the tilt's coherence."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        controls: StepperConfig,
        climate: Future[Climate],
        truth_days: torch.Tensor,
        years: float,
        members: int,
        bench: str,
        device: torch.device,
    ) -> None:
        world = load_config(ROOT / "configs" / "world_heldout.yaml").world
        assert world is not None
        self.diagnostics = Diagnostics(checkpoint.grid, checkpoint.prognostic)
        self.channels = checkpoint.prognostic
        self.manifold = SlowManifold(world.physics, checkpoint.prognostic)
        self.modes = PlanetaryModes(checkpoint.grid, checkpoint.prognostic)
        self.truth_shares = SlowManifold.shares(self.manifold.powers(truth_days))
        self.truth_modes = self.modes.powers(truth_days)
        self.truth_coherence = round(coherence(self.modes.tilt_wave(truth_days)), 3)
        self.climate: Future[Climate] = climate
        self.truth: Truth | None = None
        self.steps = round(years * YEAR_DAYS * STEPS_PER_DAY)
        days = YEAR_DAYS if years >= 1 else max(1, self.steps // STEPS_PER_DAY // 2)
        self.windows = {"": days, "_decade": DECADE_YEARS * YEAR_DAYS} if years >= DECADE_YEARS else {"": days}
        self.marks = {round(year * YEAR_DAYS * STEPS_PER_DAY): f"{year}y" for year in MARK_YEARS if year <= years}
        self.marks.setdefault(self.steps - self.steps % STEPS_PER_DAY, "end")
        self.members = members
        self.config: dict[str, object] = {"years": years, "members": members, "controls": describe_controls(controls)}
        self.bench, self.device = bench, device
        kept = max(self.windows.values())
        self.energy: deque[float] = deque(maxlen=kept)
        self.daily: defaultdict[str, deque[torch.Tensor]] = defaultdict(lambda: deque(maxlen=kept))
        self.annual: list[float] = []
        self.pending: list[Window] = []

    def add(self, step: int, state: torch.Tensor) -> None:
        """A day's physical ``state``, after ``step`` steps: its diagnostics, the windows it ends, its year."""
        self.energy.append(float(self.diagnostics.energy(state).mean()))
        day = {
            "bands": self.diagnostics.bands(state).mean(dim=0),
            "zonal": state.mean(dim=-1).cpu(),
            "powers": self.manifold.powers(state),
            "modes": self.modes.powers(state),
            "tilt_wave": self.modes.tilt_wave(state),
        }
        for name, value in day.items():
            self.daily[name].append(value)
        if step in self.marks:
            for suffix, days in self.windows.items():
                if len(self.energy) >= days:
                    self.pending.append(self._window(suffix, self.marks[step], step, days))
        if step % (STEPS_PER_DAY * YEAR_DAYS) == 0:
            self.annual.append(float(np.mean(list(self.energy)[-YEAR_DAYS:])))
            note(f"year {len(self.annual)}: mean kinetic energy {self.annual[-1]:.1f}")
        if self.climate.done():
            self._score_pending()

    def finish(self, reached: int, seconds: float) -> None:
        """The windows still waiting (for the truth climate, if need be), then the drift and the speed."""
        truth = self._score_pending()
        config = self.config | {"truth_years": truth.climate.years}
        bench, device = self.bench, self.device
        emit(bench, "steps_to_nonfinite", float(max(reached, 1)), config | {"rollout_steps": self.steps}, device)
        for suffix, window in self.windows.items():
            drift = float(np.mean(list(self.energy)[-window:])) / truth.energy - 1.0
            emit(bench, f"energy_drift{suffix}", drift, config | {"days": min(window, len(self.energy))}, device)
        if len(self.annual) > 1:
            drifts = np.abs(np.asarray(self.annual) / truth.energy - 1.0)
            at = config | {"years_reached": len(self.annual)}
            emit(bench, "energy_drift_median_year", float(np.median(drifts)), at, device)
            worst = at | {"year": int(drifts.argmax()) + 1}
            emit(bench, "energy_drift_worst_year", float(drifts.max()), worst, device)
        sypd = reached / (STEPS_PER_DAY * YEAR_DAYS) / (seconds / 86_400)
        emit(bench, "sypd", sypd, config | {"seconds_per_step": seconds / max(reached, 1)}, device)
        if self.members > 1:
            emit(bench, "sypd_all_members", sypd * self.members, config, device)

    def _window(self, suffix: str, mark: str, step: int, days: int) -> Window:
        last = {name: torch.stack(list(values)[-days:]) for name, values in self.daily.items()}
        means = {name: values.mean(dim=0) for name, values in last.items() if name != "zonal"}
        return Window(suffix, mark, step, days, zonal=last["zonal"], **means)

    def _score_pending(self) -> Truth:
        truth = self.truth or self._truth()
        for window in self.pending:
            self._score(window, truth)
        self.pending.clear()
        return truth

    def _truth(self) -> Truth:
        """The truth climate (waiting for it), noted, with its floors for windows as long as the rollout's."""
        climate = self.climate.result()
        energy, bands = climate.mean()
        note(f"truth climate: mean kinetic energy {energy:.1f}")
        zonal = ZonalPower.of(self.diagnostics, climate.zonal[:, ::TRUTH_ZONAL_EVERY_DAYS].flatten(0, 1))
        for suffix, window in self.windows.items():
            member_years = self.members * max(1, window // YEAR_DAYS)
            truth_floor(climate, self.channels, member_years, suffix, self.bench, self.device)
        self.truth = Truth(climate, energy, bands, zonal)
        return self.truth

    def _score(self, window: Window, truth: Truth) -> None:
        bench, device, label, figures = self.bench, self.device, window.label, window.figures
        at = self.config | {"truth_years": truth.climate.years, "step": window.step, "days": window.days}
        emit(bench, f"spectrum_error{figures}", band_error(window.bands, truth.bands, label), at, device)
        tolerance = {"tolerance": BAND_TOLERANCE, "bands": window.bands.numel()}
        within = bands_within(window.bands, truth.bands)
        emit(bench, f"bands_within_tolerance{figures}", within, at | tolerance, device)
        zonal_scores(window.zonal, truth.climate, self.channels, figures, at, bench, device)
        zonal_power = ZonalPower.of(self.diagnostics, window.zonal.flatten(0, 1))
        band_power = self.diagnostics.band_power
        gap, where = zonal_band_gap(zonal_power, truth.zonal, truth.bands, band_power, label)
        emit(bench, f"zonal_band_gap{figures}", gap, at | where, device)
        shares = manifold_shares(window.powers, self.truth_shares, label)
        for name, share, reference in zip(SHARES, shares, self.truth_shares, strict=True):
            truth_share = {"truth": round(float(reference.max()), 4)}
            emit(bench, f"{name.replace(' ', '_')}{figures}", float(share.max()), at | truth_share, device)
        for name, (factor, worst) in planetary_factors(window.modes, self.truth_modes, self.modes, label).items():
            emit(bench, f"{name}{figures}", factor, at | {"worst": worst}, device)
        tilt = {"truth": self.truth_coherence}
        emit(bench, f"tilt_wave_coherence{figures}", coherence(window.tilt_wave), at | tilt, device)


def controlled_rollout(
    checkpoint: Checkpoint,
    controls: StepperConfig,
    initial_store: str,
    climate: Future[Climate],
    years: float,
    device: torch.device,
    bench: str = BENCH,
    members: int = 1,
) -> None:
    """The long rollout with every control on: drift, spectra at the marks, speed.

    ``members`` rollouts run as one batch, each with its own stochastic forcing, from
    states of the store spread over its record (the first is the store's first
    state); their diagnostics are averaged, so a window holds ``members`` times the
    samples of one rollout. The rollout does not wait for the truth ``climate``: what
    it scores waits (:class:`RolloutScores`).
    """
    store = ZarrSource(initial_store, checkpoint.prognostic)
    initial = torch.from_numpy(store.read(np.arange(members) * (len(store) // members)))
    truth_days = torch.from_numpy(store.read(np.arange(0, len(store), STEPS_PER_DAY * TRUTH_MANIFOLD_EVERY_DAYS)))
    rollout_scores = RolloutScores(checkpoint, controls, climate, truth_days, years, members, bench, device)
    reached, start = 0, time.perf_counter()
    try:
        for step, state in long_rollout(checkpoint, controls, initial, years, device):
            reached = step
            rollout_scores.add(step, state)
    except DivergenceError as error:
        reached = error.step
        note(f"every control on: {error}")
    rollout_scores.finish(reached, time.perf_counter() - start)


def controls_off(checkpoint: Checkpoint, controls: StepperConfig, setting: Setting) -> None:
    """The rollout again with each control in use switched off: the step it fails at."""
    initial = torch.from_numpy(ZarrSource(setting.truth, checkpoint.prognostic).read([0]))
    years = min(setting.years, setting.off_years)
    steps = round(years * YEAR_DAYS * STEPS_PER_DAY)
    for control, off in OFF.items():
        if getattr(controls, control) == off:
            continue
        failed_at = steps
        try:
            without = controls.model_copy(update={control: off})
            for _ in long_rollout(checkpoint, without, initial, years, setting.device):
                pass
        except DivergenceError as error:
            failed_at = error.step
            note(f"without {control}: {error}")
        config = {"rollout_steps": steps, "failed": failed_at < steps, "controls": describe_controls(controls)}
        emit(BENCH, f"steps_to_failure_without_{control}", float(failed_at), config, setting.device)


def describe_controls(controls: StepperConfig) -> str:
    return controls.model_dump_json(exclude={"residual"})


def run(
    quick: bool,
    device: torch.device,
    years: float | None = None,
    checkpoint: str | None = None,
    overrides: list[str] | None = None,
    off_years: float | None = None,
) -> None:
    config, path, loaded = world_checkpoint(checkpoint, overrides)
    truth = truth_store(quick)
    train_store = load_config(ROOT / "configs" / "world_train.yaml").data.store
    setting = Setting(
        truth=truth,
        climatology_store=truth if quick or not Path(train_store).exists() else train_store,
        init_every_days=1 if quick else 5,
        lead_days=(1, 2) if quick else LEAD_DAYS,
        ensemble_inits=1 if quick else 12,
        years=years or (YEARS_QUICK if quick else YEARS),
        off_years=off_years or (YEARS_QUICK / 2 if quick else OFF_YEARS),
        device=device,
    )
    note(f"checkpoint {path}; truth {truth}; controls {describe_controls(config.stepper)}")
    with ThreadPoolExecutor(max_workers=1) as beside:
        climate = beside.submit(truth_climate, loaded, quick)
        scores(loaded, config.stepper.model_copy(update={"stochastic_forcing": None}), setting)
        controls = config.climate_stepper(loaded.config)
        controlled_rollout(loaded, controls, setting.truth, climate, setting.years, device)
    controls_off(loaded, controls, setting)
