"""The slow-manifold diagnostics of the climate rollouts: nonlinear balance and divergent energy, per band."""

import torch

from benchmarks.slow_manifold import SlowManifold
from benchmarks.world_climate import BANDS
from emulator.world.shallow_water import ForcedShallowWater, WorldPhysics

CHANNELS = ["geopotential@250", "u_component_of_wind@250", "v_component_of_wind@250"]
PHYSICS = WorldPhysics()  # 64x128: every band is resolved
MEAN_GEOPOTENTIAL = 9.81 * PHYSICS.mean_depth_m


def _coefficients(world: ForcedShallowWater, low: int, high: int, amplitude: float, seed: int) -> torch.Tensor:
    """Random coefficients ``(2, lmax, mmax)`` at degrees ``low <= l < high``."""
    solver, generator = world.solver, torch.Generator().manual_seed(seed)
    degree = torch.arange(solver.lmax).reshape(-1, 1)
    noise = torch.view_as_complex(torch.randn(2, solver.lmax, solver.mmax, 2, generator=generator))
    return torch.tril(amplitude * noise * ((degree >= low) & (degree < high)))


def _balanced_state(world: ForcedShallowWater) -> tuple[torch.Tensor, torch.Tensor]:
    """A rotational flow with eddies at every degree, its geopotential in balance; and its vorticity."""
    solver = world.solver
    vorticity = _coefficients(world, 1, solver.lmax, 2.0e-6, seed=0)[0]
    wind = solver.getuv(torch.stack((vorticity, torch.zeros_like(vorticity))))
    geopotential = solver.grid2spec(torch.full((PHYSICS.nlat, PHYSICS.nlon), MEAN_GEOPOTENTIAL))
    geopotential = geopotential + world.balanced_geopotential(vorticity)
    return torch.cat([solver.spec2grid(geopotential)[None], wind])[None], vorticity


def test_the_balanced_geopotential_stills_the_divergence_tendency() -> None:
    world = ForcedShallowWater(PHYSICS, seed=0)
    _, vorticity = _balanced_state(world)
    # without the mean, which the divergence tendency does not see (its Laplacian is zero) but whose float32
    # transforms leave round-off near 1e-3 of the tendency of a 10 % imbalance
    geopotential = world.balanced_geopotential(vorticity)
    divergence = torch.zeros_like(vorticity)

    def divergence_tendency(phi: torch.Tensor) -> float:
        tendency = world._dynamics(torch.stack((phi, vorticity, divergence)).to(torch.complex64))
        return float(tendency[2].abs().square().sum().sqrt())

    unbalanced = 0.9 * geopotential
    assert divergence_tendency(geopotential) < 1e-3 * divergence_tendency(unbalanced)


def test_shares_single_out_the_band_and_the_kind_of_departure() -> None:
    manifold = SlowManifold(PHYSICS, CHANNELS)
    world, solver = manifold.world, manifold.world.solver
    state, _ = _balanced_state(world)
    balanced = SlowManifold.shares(manifold.powers(state))
    assert balanced.shape == (2, len(BANDS)) and float(balanced.abs().max()) < 1e-3

    divergent = _coefficients(world, 4, 8, 2.0e-6, seed=1)[1]
    departed = state.clone()
    departed[:, 1:] += solver.getuv(torch.stack((torch.zeros_like(divergent), divergent)))
    departed[:, 0] += solver.spec2grid(_coefficients(world, 8, 16, 300.0, seed=2)[0])
    shares = SlowManifold.shares(manifold.powers(departed))
    unbalanced, divergent_energy = shares[0], shares[1]
    assert float(unbalanced[3]) > 0.05 and float(divergent_energy[2]) > 0.05
    assert float(torch.cat([unbalanced[:3], unbalanced[4:]]).max()) < 1e-3
    assert float(torch.cat([divergent_energy[:2], divergent_energy[3:]]).max()) < 1e-3
