"""How far states of the built-in world are from its slow manifold, per band of degrees.

The world's flow is non-divergent and its geopotential in nonlinear balance with the
wind to within a few per cent at every degree (at 6-hour samples the gravity waves
have been damped away). An emulator's rollout can leave that manifold while its
spectra stay near the truth's: its geopotential then varies apart from its wind, and
part of its kinetic energy is divergent. Two shares per band measure it, from sums of
spectral power so that they average over days and members as the spectra do:

* unbalanced geopotential: the power of ``phi - phi_b`` over the power of ``phi``,
  where ``phi_b`` is in nonlinear balance with the rotational wind
  (:meth:`~emulator.world.shallow_water.ForcedShallowWater.balanced_geopotential`);
* divergent kinetic energy: the divergent wind's kinetic energy over the wind's.
"""

from __future__ import annotations

import torch

from benchmarks.world_climate import BANDS
from emulator.spectra import degree_power
from emulator.world.shallow_water import ForcedShallowWater, WorldPhysics

SHARES = ("unbalanced geopotential", "divergent kinetic energy")


class SlowManifold:
    """Band sums of the powers behind :data:`SHARES` for physical ``(batch, channel, lat, lon)`` states."""

    def __init__(self, physics: WorldPhysics, channels: list[str]) -> None:
        self.world = ForcedShallowWater(physics, seed=0)
        self.geopotential = channels.index("geopotential@250")
        self.wind = [channels.index(f"{name}_component_of_wind@250") for name in ("u", "v")]
        solver = self.world.solver
        degree = torch.arange(solver.lmax, dtype=torch.float64)
        # Kinetic energy of degree l is |vorticity or divergence coefficient|^2 / (l (l + 1)).
        self.inverse_eigenvalue = torch.where(degree > 0, 1.0 / (degree * (degree + 1)).clamp(min=1), 0.0)

    def powers(self, state: torch.Tensor) -> torch.Tensor:
        """``(4, band)``, batch means: unbalanced and total geopotential power, divergent and total kinetic energy."""
        solver, state = self.world.solver, state.float()
        geopotential = solver.grid2spec(state[:, self.geopotential])
        vorticity_divergence = solver.vrtdivspec(state[:, self.wind])
        unbalanced = geopotential - self.world.balanced_geopotential(vorticity_divergence[:, 0])
        kinetic = degree_power(vorticity_divergence).double() * self.inverse_eigenvalue
        per_degree = torch.stack(
            [
                degree_power(unbalanced).double(),
                degree_power(geopotential).double(),
                kinetic[:, 1],
                kinetic.sum(dim=1),
            ],
            dim=1,
        ).mean(dim=0)
        return torch.stack([per_degree[:, low:high].sum(dim=-1) for low, high in BANDS], dim=-1)

    @staticmethod
    def shares(powers: torch.Tensor) -> torch.Tensor:
        """``(2, band)``: :data:`SHARES` from (a mean of) :meth:`powers`."""
        return torch.stack([powers[0] / powers[1], powers[2] / powers[3]])
