"""Stochastic forcing: red noise with the spatial covariance of a model's one-step errors.

A deterministic emulator learns the expected tendency. Where the truth is driven
by forcing the inputs do not determine (the built-in world's random vorticity
forcing; unresolved processes in a reanalysis), its rollouts lack the energy that
forcing injects, and their climate is too quiet. The stochastic forcing puts it
back. After every step it adds ``eta_t = rho eta_(t-1) + sqrt(1 - rho^2) xi_t``
(an AR(1) process, stationary from the first step), where ``xi_t`` has, at every
spherical-harmonic degree, the covariance of the model's one-step residuals
across components, and ``rho`` is their lag-one correlation.

The components are each scalar channel and, at each level with both winds, the
wind's velocity potential and stream function (its vector transform), so that
noise in the winds is rotational or divergent as the residuals are. The residual
statistics are measured by :mod:`emulator.training.calibration` and stored in
the checkpoint; :class:`StochasticForcingConfig` picks the components, degrees,
amplitude and seed. It may hold several bands (:class:`ForcingBand`), each its own
AR(1) process with its own components, degrees, amplitude and correlation, their
noise summed (the built-in world's model, for one, is given noise in the stream
function at the synoptic degrees and in the geopotential and stream function at the
planetary ones). A band may add the geopotential in linear balance with its wind
noise (``balanced_geopotential``), so that it forces balanced flow, as the world's
vorticity forcing does once the flow has adjusted to it. A band may force only the
lowest zonal wavenumbers (``max_order``): with ``0`` and a long memory it drives the
slow shifts of the zonal-mean jets (the annular modes; ``benchmarks/RESULTS.md``,
session 33). A model meant to run with
the forcing is trained through it (its stepper adds it inside the training
rollouts), so it learns to carry the energy rather than turn it into small-scale noise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from pydantic import Field
from torch import nn
from torch_harmonics import InverseRealSHT, InverseRealVectorSHT, RealSHT, RealVectorSHT

from emulator.balance import BalancedGeopotential
from emulator.degrees import DegreeBand
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.spectra import wind_levels, wind_pair

TENSOR_PREFIX = "residual_statistics."


class ForcingBand(DegreeBand):
    """One AR(1) process: which residual components get red noise, at which degrees, how strong, how red."""

    scale: float = Field(1.0, gt=0, description="multiple of the calibrated residual amplitude")
    components: list[str] = Field(
        default_factory=list, description="e.g. stream_function@250 or geopotential@250; empty: all"
    )
    correlation: float | None = Field(None, ge=0, lt=1, description="lag-one correlation; None: the calibrated one")
    balanced_geopotential: float = Field(
        0.0, ge=0, description="add this multiple of the geopotential in linear balance with the band's wind noise"
    )


class StochasticForcingConfig(ForcingBand):
    """The forcing: this band and ``more_bands``, each its own AR(1) process, their noise summed; and the seed."""

    more_bands: list[ForcingBand] = Field(
        default_factory=list, description="further processes, each with its own degrees, components, scale, correlation"
    )
    seed: int = 0

    def bands(self) -> list[ForcingBand]:
        return [self, *self.more_bands]


class SpectralComponents(nn.Module):
    """Fields ``(batch, channel, lat, lon)`` <-> coefficients ``(batch, component, degree, order)``.

    Components are the scalar channels in order, then ``stream_function@L`` and
    ``velocity_potential@L`` for each wind level ``L``: the order of torch-harmonics'
    vector transform, whose first coefficient is the rotational (non-divergent) part
    of the wind and the second the divergent part.
    """

    def __init__(self, channels: Sequence[str], grid: Grid) -> None:
        super().__init__()
        winds = [name for level in wind_levels(channels) for name in wind_pair(level)]
        self.scalar = [i for i, name in enumerate(channels) if name not in winds]
        self.wind = [channels.index(name) for name in winds]
        self.names = [channels[i] for i in self.scalar] + [
            f"{potential}{'@' + level if level else ''}"
            for level in wind_levels(channels)
            for potential in ("stream_function", "velocity_potential")
        ]
        lmax = grid.max_degree
        shape, transform = (grid.nlat, grid.nlon), {"lmax": lmax, "mmax": lmax, "grid": grid.kind}
        self.sht, self.isht = RealSHT(*shape, **transform), InverseRealSHT(*shape, **transform)
        self.vsht, self.ivsht = RealVectorSHT(*shape, **transform), InverseRealVectorSHT(*shape, **transform)
        self.shape = shape

    def analysis(self, fields: torch.Tensor) -> torch.Tensor:
        batch, shape = fields.shape[0], fields.shape[-2:]
        parts = [self.sht(fields[:, self.scalar])] if self.scalar else []
        if self.wind:
            parts.append(self.vsht(fields[:, self.wind].reshape(batch, -1, 2, *shape)).flatten(1, 2))
        return torch.cat(parts, dim=1)

    def synthesis(self, coefficients: torch.Tensor, nonzero: Sequence[int] | None = None) -> torch.Tensor:
        """Fields of ``coefficients``; components not in ``nonzero`` (default: all are) are zero, not transformed."""
        batch, count = coefficients.shape[0], len(self.scalar)
        used = range(len(self.names)) if nonzero is None else nonzero
        scalars = [i for i in used if i < count]
        levels = sorted({(i - count) // 2 for i in used if i >= count})
        fields = coefficients.new_zeros(batch, count + len(self.wind), *self.shape, dtype=coefficients.real.dtype)
        if scalars:
            fields[:, [self.scalar[i] for i in scalars]] = self.isht(coefficients[:, scalars])
        if levels:
            wind = coefficients[:, count:].reshape(batch, -1, 2, *coefficients.shape[-2:])[:, levels]
            channels = [self.wind[2 * level + part] for level in levels for part in (0, 1)]
            fields[:, channels] = self.ivsht(wind).flatten(1, 2)
        return fields


@dataclass
class ResidualStatistics:
    """Per-degree covariance ``(degree, component, component)`` of one-step residuals in physical units.

    ``lag_covariance`` ``(degree, component)`` is each component's covariance with the
    next step's residual. Both are per spherical-harmonic coefficient (the average
    over orders), so an isotropic field with these coefficients has this spectrum.
    """

    components: list[str]
    covariance: torch.Tensor
    lag_covariance: torch.Tensor
    provenance: dict[str, str] = field(default_factory=dict)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            TENSOR_PREFIX + "covariance": self.covariance.float().contiguous(),
            TENSOR_PREFIX + "lag_covariance": self.lag_covariance.float().contiguous(),
        }

    def metadata(self) -> str:
        return json.dumps({"components": self.components, "provenance": self.provenance})

    @classmethod
    def from_saved(cls, metadata: str, tensors: dict[str, torch.Tensor]) -> ResidualStatistics:
        described = json.loads(metadata)
        return cls(
            described["components"],
            tensors[TENSOR_PREFIX + "covariance"],
            tensors[TENSOR_PREFIX + "lag_covariance"],
            described["provenance"],
        )


def _unknown(names: Sequence[str], known: Sequence[str]) -> str | None:
    return next((name for name in names if name not in known), None)


class RedNoiseBand(nn.Module):
    """The innovations' spectral coefficients of one :class:`ForcingBand`, and its lag-one correlation."""

    def __init__(self, band: ForcingBand, statistics: ResidualStatistics, key: str) -> None:
        super().__init__()
        names, degrees = statistics.components, statistics.covariance.shape[0]
        unknown = _unknown(band.components, names)
        if unknown is not None:
            raise EmulatorError(f"{key}.components: {unknown!r} is not one of {', '.join(names)}")
        chosen = torch.tensor([not band.components or name in band.components for name in names])
        in_band = band.mask(degrees)
        covariance = statistics.covariance.double() * (chosen[:, None] & chosen[None, :])
        diagonal = covariance.diagonal(dim1=1, dim2=2)
        jitter = 1e-9 * diagonal.mean(dim=1).clamp_min(1e-30)
        factor = torch.linalg.cholesky(covariance + torch.diag_embed(jitter[:, None].expand_as(diagonal)))
        factor = factor * chosen[None, :, None]
        selected = in_band[:, None] & chosen[None, :]
        calibrated = float(statistics.lag_covariance.double()[selected].sum() / diagonal[selected].sum())
        self.chosen = [i for i, used in enumerate(chosen.tolist()) if used]
        self.correlation = band.correlation if band.correlation is not None else min(max(calibrated, 0.0), 0.999)
        self.balanced_geopotential = band.balanced_geopotential
        self.factor: torch.Tensor
        self.coefficient_mask: torch.Tensor  # the band's degrees and orders
        self.register_buffer("factor", (band.scale * factor).to(torch.complex64), persistent=False)
        self.register_buffer("coefficient_mask", band.coefficient_mask(degrees).to(torch.complex64), persistent=False)

    def coefficients(self, generator: torch.Generator) -> torch.Tensor:
        """One draw of the innovation's coefficients ``(1, component, degree, order)``."""
        degrees, components = self.factor.shape[0], self.factor.shape[1]
        unit = torch.randn(1, components, degrees, degrees, dtype=torch.complex64, generator=generator)
        # m = 0 coefficients of a real field are real, with the variance of |c_lm|^2 at m > 0
        unit[..., 0] = unit[..., 0].real * math.sqrt(2.0)
        return torch.einsum("lij,bjlm->bilm", self.factor, unit.to(self.factor.device) * self.coefficient_mask)


class StochasticForcing(nn.Module):
    """Draws of the AR(1) forcing, normalized like the state; see the module docstring.

    Its state ``eta`` is ``(band, batch, component, degree, order, re/im)``: one AR(1)
    process per band of the config, kept as its spectral coefficients (physical units,
    :class:`SpectralComponents`' components). The noise added to a step is their sum,
    transformed once: the transforms are linear, so the bands need not be transformed
    one by one. Every band draws from each member's one generator, in the config's order.
    """

    def __init__(
        self,
        config: StochasticForcingConfig,
        statistics: ResidualStatistics,
        channels: list[str],
        std: torch.Tensor,
        grid: Grid,
    ) -> None:
        super().__init__()
        self.transform = SpectralComponents(channels, grid)
        names, degrees = self.transform.names, grid.max_degree
        if statistics.components != names or statistics.covariance.shape[0] != degrees:
            raise EmulatorError(
                f"stepper.stochastic_forcing: the residual statistics are of {statistics.components} at "
                f"{statistics.covariance.shape[0]} degrees, the model's components are {names} at {degrees}"
            )
        keys = ["stepper.stochastic_forcing"] + [
            f"stepper.stochastic_forcing.more_bands[{i}]" for i in range(len(config.more_bands))
        ]
        self.bands = nn.ModuleList(
            RedNoiseBand(band, statistics, key) for band, key in zip(config.bands(), keys, strict=True)
        )
        bands = cast(list[RedNoiseBand], list(self.bands))
        self.forced = sorted({component for band in bands for component in band.chosen})
        balancing = [key for band, key in zip(config.bands(), keys, strict=True) if band.balanced_geopotential]
        self.balanced = (
            BalancedGeopotential(channels, grid, f"{balancing[0]}.balanced_geopotential") if balancing else None
        )
        winds = range(len(self.transform.scalar), len(names))
        self.balanced_winds = sorted(
            {component for band in bands if band.balanced_geopotential for component in band.chosen} & set(winds)
        )
        self.balance_factors: torch.Tensor  # (band, 1, 1, 1, 1): each band's multiple of its balanced geopotential
        self.register_buffer(
            "balance_factors",
            torch.tensor([band.balanced_geopotential for band in bands], dtype=torch.complex64).view(-1, 1, 1, 1, 1),
            persistent=False,
        )
        self.inverse_std: torch.Tensor
        self.register_buffer("inverse_std", (1.0 / std.float())[:, None, None], persistent=False)

    def advance(self, eta: torch.Tensor | None, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """The AR(1) state after ``eta``, one member per generator; a stationary draw when ``eta`` is ``None``."""
        if eta is not None and (eta.dim() != 6 or len(eta) != len(self.bands)):
            raise EmulatorError(
                f"stepper.stochastic_forcing: a forcing state of shape {tuple(eta.shape)}, not "
                f"({len(self.bands)} bands, member, component, degree, order, re/im)"
            )
        states = []
        for index, band in enumerate(cast(list[RedNoiseBand], self.bands)):
            innovation = torch.view_as_real(torch.cat([band.coefficients(generator) for generator in generators]))
            if eta is not None:
                rho = band.correlation
                innovation = rho * eta[index] + math.sqrt(1.0 - rho**2) * innovation
            states.append(innovation)
        return torch.stack(states)

    def noise(self, eta: torch.Tensor) -> torch.Tensor:
        """The noise of AR(1) state ``eta``, summed over its bands: ``(batch, channel, lat, lon)``, normalized.

        Each member is transformed alone, so it does not depend on the batch it is in.
        """
        coefficients = torch.view_as_complex(eta.contiguous())
        members = [self._fields(coefficients[:, member : member + 1]) for member in range(coefficients.shape[1])]
        return torch.cat(members) * self.inverse_std

    def _fields(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``(band, 1, component, degree, order)`` -> one member's noise ``(1, channel, lat, lon)``, physical units."""
        fields = self.transform.synthesis(coefficients.sum(dim=0), self.forced)
        if self.balanced is None:
            return fields
        balanced = self.transform.synthesis((self.balance_factors * coefficients).sum(dim=0), self.balanced_winds)
        return self.balanced.add(fields, balanced)

    def draws(self, generators: Sequence[torch.Generator]) -> Iterator[torch.Tensor]:
        """The noise ``eta_1, eta_2, ...`` (summed over bands) of one rollout per generator, stationary."""
        eta = self.advance(None, generators)
        while True:
            eta = self.advance(eta, generators)
            yield self.noise(eta)
