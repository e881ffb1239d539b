"""Residual statistics of a checkpoint, for its stochastic forcing (see :mod:`emulator.stochastic`).

From two-step windows of the training period, ``e_1 = x_1 - step(x_0)`` and
``e_2 = x_2 - step(x_1)`` are the one-step residuals of the deterministic stepper
(the config's controls, no stochastic forcing). Their per-degree covariance across
components, and each component's covariance between ``e_1`` and ``e_2``, are
stored in the checkpoint with where they came from. When the channels hold a wind,
the same windows fit the tilt's linear model (:class:`TiltMoments`), which is
logged and kept in the statistics' provenance as ``tilt_model``, the setting of
``stepper.equatorial_angular_momentum``, and the divergent partners of the planetary
waves (:class:`PartnerMoments`), kept as ``divergent_partners``, the setting of
``stepper.divergent_partners`` (``null`` when no mode's partners explain enough).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from pathlib import Path

import torch

from emulator import __version__
from emulator.angular_momentum import TiltModel
from emulator.checkpoint import check_fits, load_checkpoint
from emulator.config import Config
from emulator.data.normalizer import Normalizer
from emulator.data.source import ZarrSource
from emulator.device import choose_device
from emulator.divergent_partners import DivergentPartnersConfig, PartnerMode
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.spectra import wind_levels
from emulator.stepper import Stepper
from emulator.stochastic import ResidualStatistics, SpectralComponents
from emulator.training.batches import StoreBatches
from emulator.winds import DIVERGENT, ROTATIONAL, every_level_winds, vector_transforms

LOG = logging.getLogger(__name__)
BATCH_SIZE = 16
PARTNER_DEGREES, PARTNER_ORDERS = 5, 4  # the divergent coefficients fitted to their rotational partners
PARTNER_EXPLAINED = 0.5  # the share of a coefficient's power its partners must explain for it to be kept


def degree_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum Re(a_i conj(b_j))`` over batch and orders per degree ``(l, i, j)``; orders ``m > 0`` count twice.

    Twice, because each stands for ``m`` and ``-m``: the sum is the degree's cross-power times ``4 pi``.
    """
    multiplicity = torch.full((a.shape[-1],), 2.0, dtype=a.real.dtype)
    multiplicity[0] = 1.0
    return torch.einsum("bilm,bjlm,m->lij", a, b.conj(), multiplicity.to(a.dtype)).real


class ResidualMoments:
    """Running sums of the residuals' per-degree covariance and lag-one covariance."""

    def __init__(self, transform: SpectralComponents, std: torch.Tensor) -> None:
        self.transform, self.std = transform, std[:, None, None]
        self.covariance = self.lag_covariance = torch.zeros(())
        self.count = 0

    def add(self, first: torch.Tensor, second: torch.Tensor) -> None:
        """Residuals ``(batch, channel, lat, lon)`` in normalized units, ``second`` one step after ``first``."""
        a, b = (self.transform.analysis((e * self.std).double()) for e in (first, second))
        self.covariance = self.covariance + degree_products(a, a) + degree_products(b, b)
        self.lag_covariance = self.lag_covariance + degree_products(a, b).diagonal(dim1=1, dim2=2)
        self.count += len(first)

    def statistics(self, provenance: dict[str, str]) -> ResidualStatistics:
        """Per coefficient: a degree's power over its ``2 l + 1`` coefficients."""
        coefficients = 2 * torch.arange(self.covariance.shape[0], dtype=torch.float64) + 1
        return ResidualStatistics(
            self.transform.names,
            self.covariance / (2 * self.count * coefficients[:, None, None]),
            self.lag_covariance / (self.count * coefficients[:, None]),
            provenance,
        )


class TiltMoments:
    """Running sums that fit a :class:`~emulator.angular_momentum.TiltModel` to the truth.

    From pairs of the truth's tilt ``x_0, x_1`` (the first wind level's rotational (1, 1)
    coefficient, one step apart), its rotational (3, 1) coefficient ``y_1`` and its
    divergent (2, 1) coefficient ``c`` with ``x_1``: ``rotation`` and ``wave_coupling``
    are the least-squares ``a, b`` of ``x_1 = a x_0 + b y_1``, ``innovation`` the rms of
    what they leave and ``divergent_partner`` the least-squares ``k`` of ``c = k x_1``.
    """

    def __init__(self, normalizer: Normalizer, grid: Grid) -> None:
        self.winds = every_level_winds(normalizer, "equatorial_angular_momentum")
        self.vsht, _ = vector_transforms(grid, 4)
        self.gram = torch.zeros(2, 2, dtype=torch.complex128)  # sums of conj(r_i) r_j over the regressors (x_0, y_1)
        self.projections = torch.zeros(2, dtype=torch.complex128)  # sums of conj(r_i) x_1
        self.sums = dict.fromkeys(("x1x1", "cx1"), torch.zeros((), dtype=torch.complex128))
        self.count = 0

    def coefficients(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first level's rotational (1, 1) and (3, 1) and divergent (2, 1) coefficients of normalized states."""
        vector = self.vsht(self.winds.read(state)[:, 0]).to(torch.complex128)
        return vector[:, ROTATIONAL, 1, 1], vector[:, ROTATIONAL, 3, 1], vector[:, DIVERGENT, 2, 1]

    def add(self, start: torch.Tensor, following: torch.Tensor) -> None:
        """Normalized truth states ``(batch, channel, lat, lon)`` and those one step later."""
        (x0, _, _), (x1, y1, c) = self.coefficients(start), self.coefficients(following)
        regressors = torch.stack([x0, y1])
        self.gram = self.gram + regressors.conj() @ regressors.T
        self.projections = self.projections + regressors.conj() @ x1
        self.sums["x1x1"] = self.sums["x1x1"] + (x1 * x1.conj()).sum()
        self.sums["cx1"] = self.sums["cx1"] + (c * x1.conj()).sum()
        self.count += len(x0)

    def fit(self) -> TiltModel:
        rotation, coupling = torch.linalg.pinv(self.gram, hermitian=True) @ self.projections
        x1x1 = self.sums["x1x1"].real
        departure = x1x1 - (rotation.conj() * self.projections[0] + coupling.conj() * self.projections[1]).real
        innovation = round(float((departure.clamp_min(0) / self.count).sqrt()), 4)
        return TiltModel(
            rotation=_pair(rotation),
            wave_coupling=_pair(coupling),
            innovation=innovation,
            divergent_partner=_pair(self.sums["cx1"] / x1x1),
        )


class PartnerMoments:
    """Running sums that fit :class:`~emulator.divergent_partners.DivergentPartnersConfig` to the truth.

    For each velocity-potential coefficient ``chi(l, m)`` at orders 1 to ``PARTNER_ORDERS`` and degrees up to
    ``PARTNER_DEGREES`` (the first wind level's), the least-squares factors of the stream function's
    ``psi(l - 1, m)`` and ``psi(l + 1, m)`` (those that exist) at the same moment; :meth:`fit` keeps the modes whose
    partners explain at least ``PARTNER_EXPLAINED`` of their power.
    """

    def __init__(self, normalizer: Normalizer, grid: Grid) -> None:
        self.winds = every_level_winds(normalizer, "divergent_partners")
        self.vsht, _ = vector_transforms(grid, PARTNER_DEGREES + 2)
        self.modes = [
            (degree, order, [k for k in (degree - 1, degree + 1) if k >= order])
            for order in range(1, PARTNER_ORDERS + 1)
            for degree in range(order, PARTNER_DEGREES + 1)
        ]
        self.gram = [torch.zeros(len(k), len(k), dtype=torch.complex128) for _, _, k in self.modes]
        self.projections = [torch.zeros(len(k), dtype=torch.complex128) for _, _, k in self.modes]
        self.power = torch.zeros(len(self.modes), dtype=torch.float64)

    def add(self, state: torch.Tensor) -> None:
        """Normalized truth states ``(batch, channel, lat, lon)``."""
        vector = self.vsht(self.winds.read(state)[:, 0]).to(torch.complex128)
        for index, (degree, order, partners) in enumerate(self.modes):
            regressors, chi = vector[:, ROTATIONAL, partners, order], vector[:, DIVERGENT, degree, order]
            self.gram[index] = self.gram[index] + regressors.T.conj() @ regressors
            self.projections[index] = self.projections[index] + regressors.T.conj() @ chi
            self.power[index] = self.power[index] + chi.abs().square().sum()

    def fit(self) -> tuple[DivergentPartnersConfig | None, dict[str, float]]:
        """The modes kept (None: none) and every fitted mode's share of power explained, by ``"l,m"``."""
        kept, explained = [], {}
        for index, (degree, order, partners) in enumerate(self.modes):
            factors = torch.linalg.pinv(self.gram[index], hermitian=True) @ self.projections[index]
            share = float((factors.conj() @ self.projections[index]).real / self.power[index].clamp_min(1e-300))
            explained[f"{degree},{order}"] = round(share, 3)
            if share >= PARTNER_EXPLAINED:
                pairs = {k: _pair(factor, 5) for k, factor in zip(partners, factors, strict=True)}
                kept.append(PartnerMode(degree=degree, order=order, partners=pairs))
        return (DivergentPartnersConfig(modes=kept) if kept else None), explained


def _pair(value: torch.Tensor, digits: int = 4) -> tuple[float, float]:
    """A complex number as a config's ``[real, imaginary]``."""
    return round(float(value.real), digits), round(float(value.imag), digits)


@torch.no_grad()
def calibrate(config: Config, checkpoint_path: str, output: str | None, windows: int, device: str = "auto") -> Path:
    """Measure the residual statistics of a checkpoint on ``windows`` windows of the config's training period.

    Writes the checkpoint with the statistics to ``output`` (default: in place) and returns its path.
    """
    data = config.data
    loaded = load_checkpoint(checkpoint_path)
    source = ZarrSource(data.store, data.prognostic + data.forcing, data.regrid)
    check_fits(loaded, config, source.grid, f"store {data.store}", checkpoint_path)
    target = choose_device(device)
    normalizer = loaded.normalizer.subset(loaded.prognostic)
    controls = config.stepper.model_copy(
        update={"residual": loaded.config.stepper.residual, "stochastic_forcing": None}
    )
    stepper = Stepper(loaded.model, normalizer, controls, loaded.grid).to(target).eval()
    winds = bool(wind_levels(normalizer.channels))
    tilt = TiltMoments(normalizer, loaded.grid) if winds else None
    partners = PartnerMoments(normalizer, loaded.grid) if winds else None
    batches = StoreBatches(
        source, data.prognostic, data.forcing, loaded.normalizer, data.train_period, 2, BATCH_SIZE, 0, True, data.regrid
    )
    moments = ResidualMoments(SpectralComponents(loaded.prognostic, loaded.grid), torch.from_numpy(normalizer.std))
    for state, forcing in batches.epoch(config.train.seed):
        wanted = windows - moments.count
        state, forcing = state[:wanted].to(target), forcing[:wanted].to(target)
        first = state[:, 1] - stepper.step(state[:, 0], forcing[:, 0])
        second = state[:, 2] - stepper.step(state[:, 1], forcing[:, 1])
        moments.add(first.cpu(), second.cpu())
        if tilt is not None:
            tilt.add(state[:, 0].cpu(), state[:, 1].cpu())
        if partners is not None:
            partners.add(state[:, 0].cpu())
        if moments.count >= windows:
            break
    if moments.count < 2:
        raise EmulatorError(f"{data.store}: calibration needs at least 2 two-step windows in {data.train_period}")
    provenance = {
        "store": data.store,
        "period": json.dumps(data.train_period),
        "windows": str(moments.count),
        "checkpoint": Path(checkpoint_path).name,
        "checkpoint_step": str(loaded.step),
        "controls": controls.model_dump_json(exclude={"residual", "stochastic_forcing"}),
        "version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if tilt is not None:
        fitted = tilt.fit().model_dump_json()
        provenance["tilt_model"] = fitted
        LOG.info("the tilt's linear model: stepper.equatorial_angular_momentum=%s", fitted)
    if partners is not None:
        kept, explained = partners.fit()
        provenance["divergent_partners"] = kept.model_dump_json() if kept else "null"
        provenance["divergent_partners_explained"] = json.dumps(explained)
        LOG.info("divergent partners' share of power explained (degree,order): %s", explained)
        LOG.info("the divergent partners: stepper.divergent_partners=%s", provenance["divergent_partners"])
    statistics = moments.statistics(provenance)
    LOG.info("residual statistics from %d windows; components %s", moments.count, ", ".join(statistics.components))
    return dataclasses.replace(loaded, residual_statistics=statistics).save(output or checkpoint_path)
