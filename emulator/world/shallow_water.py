"""A forced, damped rotating shallow-water world with a statistically steady climate.

The dynamics are torch-harmonics' spectral ``ShallowWaterSolver``; this module adds
what turns a decaying test case into a climate:

* the geopotential relaxes toward a balanced pair of mid-latitude jets
  (``dphi/dt += -(phi - phi_eq) / tau_relax``);
* linear (Rayleigh) drag on vorticity and divergence (``-zeta / tau_drag``);
* a stochastic vorticity forcing, red in time (AR(1) with memory ``tau_f``) and
  confined to total wavenumbers ``l_min <= l <= l_max``, which keeps eddies alive;
* implicit hyperdiffusion on all three prognostic fields.

Time stepping is third-order Adams-Bashforth, with its tendency history carried
across calls so that stepping ``n`` then ``m`` steps equals stepping ``n + m``.
The forcing's random stream comes from a seeded generator, so a seed fixes the
whole trajectory. Given several seeds, the world runs that many independent
members as one batch (five to eight times cheaper per member at 64x128 than one by
one), each member's stream from its own seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from pydantic import Field, model_validator
from torch_harmonics.examples import ShallowWaterSolver

from emulator.schema import Strict

SECONDS_PER_DAY = 86_400.0


class WorldPhysics(Strict):
    """Parameters of the forced shallow-water world (SI units unless named).

    Adams-Bashforth 3 is stable for gravity waves while
    ``sqrt(g H) * truncation / radius * dt`` stays below about 0.7: at the default
    depth, truncation 32 takes ``dt`` up to about 440 s.
    """

    nlat: int = Field(64, ge=8)
    nlon: int = Field(128, ge=16)
    truncation: int = Field(32, ge=4)
    dt_seconds: float = Field(400.0, gt=0)
    mean_depth_m: float = Field(10_000.0, gt=0)
    jet_speed_m_s: float = 35.0
    jet_latitude_deg: float = Field(45.0, ge=0, le=90)
    jet_width_deg: float = Field(10.0, gt=0)
    relaxation_days: float = Field(10.0, gt=0)
    drag_days: float = Field(10.0, gt=0)
    forcing_min_degree: int = Field(8, ge=1)
    forcing_max_degree: int = Field(12, ge=1)
    forcing_memory_days: float = Field(1.0, gt=0)
    forcing_amplitude: float = Field(6.0e-11, ge=0)

    @model_validator(mode="after")
    def _forcing_band_resolved(self) -> WorldPhysics:
        if not self.forcing_min_degree <= self.forcing_max_degree < self.truncation:
            raise ValueError("forcing degrees must satisfy forcing_min_degree <= forcing_max_degree < truncation")
        return self


class ForcedShallowWater:
    """Integrates the forced shallow-water world; the state lives in spectral space.

    The spectral state has shape ``(3, lmax, mmax)`` for one seed and ``(member, 3,
    lmax, mmax)`` for a sequence of seeds, holding geopotential ``phi = g h``,
    relative vorticity and divergence (torch-harmonics' convention).
    """

    def __init__(self, physics: WorldPhysics, seed: int | Sequence[int]) -> None:
        self.physics = physics
        p = physics
        self.solver = ShallowWaterSolver(
            p.nlat, p.nlon, p.dt_seconds, lmax=p.truncation, mmax=p.truncation, havg=p.mean_depth_m
        ).to(torch.float32)
        s = self.solver
        seeds = [seed] if isinstance(seed, int) else list(seed)
        self.generators = [torch.Generator().manual_seed(member_seed) for member_seed in seeds]
        self.batch_shape: tuple[int, ...] = () if isinstance(seed, int) else (len(seeds),)
        degree = torch.arange(s.lmax, dtype=torch.float32).reshape(-1, 1).expand(s.lmax, s.mmax)
        order = torch.arange(s.mmax).reshape(1, -1).expand(s.lmax, s.mmax)
        self._forcing_mask = (degree >= p.forcing_min_degree) & (degree <= p.forcing_max_degree) & (order <= degree)
        self._forcing_decay = math.exp(-p.dt_seconds / (p.forcing_memory_days * SECONDS_PER_DAY))
        self._drag_rate = 1.0 / (p.drag_days * SECONDS_PER_DAY)
        self._relax_rate = 1.0 / (p.relaxation_days * SECONDS_PER_DAY)
        lap = -degree * (degree + 1)
        self._hyperdiffusion = torch.exp((-p.dt_seconds / 3600.0) * (lap / lap[-1, 0]) ** 4)
        self._phi_eq = self._balanced_jet_geopotential()
        self.forcing = torch.zeros(*self.batch_shape, s.lmax, s.mmax, dtype=torch.complex64)
        self._history: list[torch.Tensor] = []
        self.state = self._initial_state()

    def _balanced_jet_geopotential(self) -> torch.Tensor:
        """Spectral geopotential in gradient-wind balance with two zonal jets."""
        p, s = self.physics, self.solver
        lat = s.lats.to(torch.float32).reshape(-1, 1)
        jet_lat, width = math.radians(p.jet_latitude_deg), math.radians(p.jet_width_deg)
        u = p.jet_speed_m_s * torch.exp(-(((lat.abs() - jet_lat) / width) ** 2))
        uv = torch.stack((u.expand(p.nlat, p.nlon), torch.zeros(p.nlat, p.nlon)))
        vorticity = s.spec2grid(s.vrtdivspec(uv))[0]
        mean = s.grid2spec(torch.full((p.nlat, p.nlon), float(s.gravity * s.havg)))
        return (self._nonlinear_balance(uv, vorticity) + mean).to(torch.complex64)

    def _nonlinear_balance(self, wind: torch.Tensor, vorticity: torch.Tensor) -> torch.Tensor:
        """Spectral geopotential in nonlinear balance with a non-divergent ``wind``, but for its mean (degree 0).

        ``wind`` is ``(..., 2, lat, lon)``, ``vorticity`` its relative vorticity ``(..., lat,
        lon)``; balance is the divergence equation at rest: ``laplacian(phi + |wind|^2 / 2) =
        curl((vorticity + f) wind)``.
        """
        s = self.solver
        flux = s.vrtdivspec(wind * (vorticity.unsqueeze(-3) + s.coriolis))
        kinetic = s.grid2spec(0.5 * wind.square().sum(dim=-3))
        return s.invlap * flux[..., 0, :, :] - kinetic

    def balanced_geopotential(self, vorticity: torch.Tensor) -> torch.Tensor:
        """Spectral geopotential in nonlinear balance with the flow of spectral ``vorticity``, but for its mean.

        ``vorticity`` is ``(..., lmax, mmax)``, as :meth:`ShallowWaterSolver.vrtdivspec` gives it;
        the flow is the non-divergent wind of that vorticity.
        """
        s = self.solver
        rotational = torch.stack((vorticity, torch.zeros_like(vorticity)), dim=-3)
        return self._nonlinear_balance(s.getuv(rotational), s.spec2grid(vorticity))

    def _complex_noise(self) -> torch.Tensor:
        """Standard complex normal coefficients ``(*batch, lmax, mmax)``, each member from its own generator."""
        shape = (self.solver.lmax, self.solver.mmax, 2)
        draws = [torch.view_as_complex(torch.randn(shape, generator=generator)) for generator in self.generators]
        return torch.stack(draws).reshape(*self.batch_shape, *shape[:2])

    def _initial_state(self) -> torch.Tensor:
        """Resting fluid at the equilibrium geopotential, plus small random vorticity."""
        s = self.solver
        state = torch.zeros(*self.batch_shape, 3, s.lmax, s.mmax, dtype=torch.complex64)
        state[..., 0, :, :] = self._phi_eq
        state[..., 1, :, :] = self._complex_noise() * 1.0e-6 * self._forcing_mask
        return torch.tril(state)

    def _dynamics(self, uspec: torch.Tensor) -> torch.Tensor:
        """The shallow-water tendency of ``(..., 3, lmax, mmax)`` states.

        torch-harmonics' ``ShallowWaterSolver.dudtspec`` for any leading dimensions
        (it indexes the field dimension first, so it takes one state only).
        """
        s = self.solver
        grid = s.spec2grid(uspec)
        geopotential, vorticity = grid[..., :1, :, :], grid[..., 1:2, :, :]
        wind = s.getuv(uspec[..., 1:, :, :])
        absolute_flux = s.vrtdivspec(wind * (vorticity + s.coriolis))
        mass_flux = s.vrtdivspec(wind * geopotential)
        energy = s.grid2spec(geopotential[..., 0, :, :] + 0.5 * wind.square().sum(dim=-3))
        dudt = torch.stack(
            (-mass_flux[..., 1, :, :], -absolute_flux[..., 1, :, :], absolute_flux[..., 0, :, :] - s.lap * energy),
            dim=-3,
        )
        return dudt.to(torch.complex64)

    def _tendency(self, uspec: torch.Tensor) -> torch.Tensor:
        dudt = self._dynamics(uspec)
        dudt[..., 0, :, :] -= self._relax_rate * (uspec[..., 0, :, :] - self._phi_eq)
        dudt[..., 1:, :, :] -= self._drag_rate * uspec[..., 1:, :, :]
        dudt[..., 1, :, :] += self.forcing
        return dudt

    def _advance_forcing(self) -> None:
        noise = self._complex_noise()
        innovation = math.sqrt(1.0 - self._forcing_decay**2) * self.physics.forcing_amplitude
        self.forcing = self._forcing_decay * self.forcing + innovation * noise * self._forcing_mask

    @torch.no_grad()
    def step(self, n: int) -> torch.Tensor:
        """Advance ``n`` time steps (AB3, history kept across calls); return the state."""
        dt = self.physics.dt_seconds
        for _ in range(n):
            self._advance_forcing()
            self._history = [self._tendency(self.state), *self._history[:2]]
            while len(self._history) < 3:
                self._history.append(self._history[-1])
            new, now, old = self._history
            update = (23.0 / 12.0) * new - (16.0 / 12.0) * now + (5.0 / 12.0) * old
            self.state = self._hyperdiffusion * (self.state + dt * update)
        return self.state

    def grid_fields(self) -> dict[str, torch.Tensor]:
        """Geopotential (m2 s-2) and wind components (m s-1) on the grid, ``(*batch, lat, lon)`` north to south."""
        s = self.solver
        phi = s.spec2grid(self.state[..., 0, :, :])
        uv = s.getuv(self.state[..., 1:, :, :])
        return {"geopotential": phi, "u_component_of_wind": uv[..., 0, :, :], "v_component_of_wind": uv[..., 1, :, :]}

    @property
    def latitudes_deg(self) -> torch.Tensor:
        return torch.rad2deg(self.solver.lats.to(torch.float64))
