"""The climate of one checkpoint: the ``skill`` benchmark's long rollout alone.

``python -m benchmarks climate [--checkpoint PATH] [--years N] [--members K] [--set
KEY=VALUE ...]`` rolls a checkpoint (the committed one by default) out for ``N``
simulated years (default 1), ``K`` rollouts as one batch (default 1; their
diagnostics averaged) from states of the held-out truth, with every stability
control of ``configs/world.yaml`` (with the ``--set`` overrides, as the CLI's) and
its climate forcing (``climate.stochastic_forcing``, else the one the checkpoint was
trained through, if any). It prints
``spectrum_error_*``, ``bands_within_tolerance_*``, ``unbalanced_geopotential_*``,
``divergent_kinetic_energy_*``, ``planetary_mode_factor_*``, ``divergent_mode_factor_*``,
``tilt_wave_coherence_*``, the jets' ``zonal_*`` figures, ``energy_drift``,
``steps_to_nonfinite``, ``sypd`` and the truth's own floor for windows of as many
member-years (``*_truth_floor*``) as ``skill`` does, against the same truth climate,
noting every band's power over the truth's, and its slow-manifold shares and
planetary modes beside the held-out truth's.
A simulated year of one rollout takes about a minute on two cores: the loop in which
training candidates are compared. Where the truth climate is not cached yet (a new
machine), it is simulated in a thread beside the rollout, which does not wait for it:
the figures of each mark do.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from benchmarks.skill import (
    YEARS_QUICK,
    controlled_rollout,
    describe_controls,
    truth_climate,
    truth_store,
    world_checkpoint,
)
from benchmarks.timing import note

BENCH = "climate"
YEARS = 1.0


def run(
    quick: bool,
    device: torch.device,
    years: float | None = None,
    checkpoint: str | None = None,
    members: int | None = None,
    overrides: list[str] | None = None,
) -> None:
    config, path, loaded = world_checkpoint(checkpoint, overrides)
    truth = truth_store(quick)
    controls = config.climate_stepper(loaded.config)
    note(f"checkpoint {path}; truth {truth}; controls {describe_controls(controls)}")
    years = years or (YEARS_QUICK if quick else YEARS)
    with ThreadPoolExecutor(max_workers=1) as beside:
        climate = beside.submit(truth_climate, loaded, quick)
        controlled_rollout(loaded, controls, truth, climate, years, device, BENCH, members or (2 if quick else 1))
