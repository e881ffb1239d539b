"""Online training: windows simulated by the built-in world while training runs, nothing on disk.

As in "Training Deep Surrogate Models with Large Scale Online Learning" (Meyer et
al., 2023), independent solver trajectories feed a buffer of training windows
and each optimisation step draws its batch from the buffer: a producer thread
advances the trajectories as one batch of the solver (its tensor operations
release the GIL, so simulation and training overlap on separate cores) and every step takes
``refresh_per_step`` fresh windows in, in a fixed order, so a run is
reproducible for a given seed. Normalization statistics are estimated from
windows simulated before training starts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from emulator.config import OnlineConfig, WorldConfig
from emulator.data.normalizer import Normalizer
from emulator.data.source import Channel
from emulator.errors import EmulatorError
from emulator.grid import Grid
from emulator.quadrature import AreaMean
from emulator.training.batches import Batch
from emulator.world.shallow_water import ForcedShallowWater
from emulator.world.store import LEVEL_HPA

SECONDS_PER_DAY = 86_400


def world_grid(world: WorldConfig) -> Grid:
    physics = world.physics
    latitudes = ForcedShallowWater(physics, seed=0).latitudes_deg.numpy()
    return Grid.from_coordinates(latitudes, np.arange(physics.nlon) * 360.0 / physics.nlon, "world")


def _check_channels(channels: list[str]) -> list[str]:
    """The world's variable of each channel, or an error naming the channel it cannot give."""
    variables = []
    for name in channels:
        channel = Channel.parse(name)
        if channel.variable not in ("geopotential", "u_component_of_wind", "v_component_of_wind"):
            raise EmulatorError(f"train.online: the built-in world has no variable {channel.variable!r} ({name})")
        if channel.level not in (None, LEVEL_HPA):
            raise EmulatorError(f"train.online: the built-in world has level {LEVEL_HPA} only, not {channel.level}")
        variables.append(channel.variable)
    return variables


class Trajectories:
    """Independent solver runs, one batch of the world: spun up, then the last ``steps + 1`` states of each."""

    def __init__(
        self, world: WorldConfig, spinup_days: int, variables: list[str], steps: int, seeds: list[int]
    ) -> None:
        self.solver = ForcedShallowWater(world.physics, seed=seeds)
        self.variables, self.length = variables, steps + 1
        self.interval = round(world.output_interval_hours * 3600 / world.physics.dt_seconds)
        self.solver.step(round(spinup_days * SECONDS_PER_DAY / world.physics.dt_seconds))
        self.states = [self._state()]
        while len(self.states) < self.length:
            self.advance()

    def _state(self) -> torch.Tensor:
        fields = self.solver.grid_fields()
        return torch.stack([fields[name] for name in self.variables], dim=1).float()

    def advance(self) -> torch.Tensor:
        """Step one output interval; return each run's window of its latest ``steps + 1`` states."""
        self.solver.step(self.interval)
        self.states = [*self.states[1 - self.length :], self._state()]
        return torch.stack(self.states, dim=1)


def _window_stream(
    world: WorldConfig, online: OnlineConfig, variables: list[str], steps: int, seed: int
) -> Iterator[torch.Tensor]:
    """Windows ``(steps + 1, channel, lat, lon)`` in physical units, the trajectories in turn."""
    seeds = [seed * 1_000 + i for i in range(online.trajectories)]
    trajectories = Trajectories(world, online.spinup_days, variables, steps, seeds)
    while True:
        yield from trajectories.advance()


class _Producer(threading.Thread):
    """Runs the window stream in a background thread into a bounded queue."""

    def __init__(self, stream: Iterator[torch.Tensor], capacity: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.windows = stream, queue.Queue[torch.Tensor | BaseException](maxsize=capacity)
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            for window in self.stream:
                if not self._offer(window):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._offer(error)

    def _offer(self, item: torch.Tensor | BaseException) -> bool:
        """Queue ``item`` unless stopped first (a full queue never blocks :meth:`OnlineBatches.close`)."""
        while not self.stopped.is_set():
            try:
                self.windows.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def take(self) -> torch.Tensor:
        item = self.windows.get()
        if isinstance(item, BaseException):
            raise EmulatorError(f"train.online: the world's solver failed ({item})")
        return item


def estimate_statistics(
    world: WorldConfig, online: OnlineConfig, channels: list[str], grid: Grid, seed: int
) -> Normalizer:
    """Area-weighted mean, std and one-step tendency std from freshly simulated windows."""
    stream = _window_stream(world, online, _check_channels(channels), 1, seed=seed + 500_000)
    windows = torch.stack([next(stream) for _ in range(online.statistics_windows)]).double()
    area_mean = AreaMean(grid).double()

    def moments(fields: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        mean = area_mean(fields)[..., 0, 0].mean(dim=0)
        square = area_mean(fields.square())[..., 0, 0].mean(dim=0)
        return mean.numpy(), np.sqrt(np.maximum((square - mean.square()).numpy(), 0.0))

    mean, std = moments(windows[:, 0])
    _, tendency_std = moments(windows[:, 1] - windows[:, 0])
    return Normalizer(tuple(channels), mean, std, tendency_std)


class OnlineBatches:
    """Batches of ``steps``-step windows drawn from a buffer that the solver keeps refreshing.

    An "epoch" is ``buffer_windows / batch_size`` optimisation steps.
    """

    def __init__(
        self,
        world: WorldConfig,
        online: OnlineConfig,
        channels: list[str],
        normalizer: Normalizer,
        steps: int,
        batch_size: int,
        seed: int,
    ) -> None:
        self.online, self.normalizer, self.batch_size = online, normalizer.subset(channels), batch_size
        self.stream = _window_stream(world, online, _check_channels(channels), steps, seed)
        self.buffer: list[torch.Tensor] = []
        self.producer: _Producer | None = None

    def __len__(self) -> int:
        return max(1, self.online.buffer_windows // self.batch_size)

    def _fresh(self) -> torch.Tensor:
        if self.producer is None:
            self.producer = _Producer(self.stream, capacity=2 * self.online.refresh_per_step)
            self.producer.start()
        return self.normalizer.normalize(self.producer.take())

    def epoch(self, key: int, skip: int = 0) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(key)
        while len(self.buffer) < self.online.buffer_windows:
            self.buffer.append(self._fresh())
        for _ in range(skip, len(self)):
            for _ in range(self.online.refresh_per_step):
                self.buffer[int(torch.randint(len(self.buffer), (1,), generator=generator))] = self._fresh()
            chosen = torch.randperm(len(self.buffer), generator=generator)[: self.batch_size]
            state = torch.stack([self.buffer[int(i)] for i in chosen])
            yield state, state.new_zeros(*state.shape[:2], 0, *state.shape[-2:])

    def close(self) -> None:
        """Stop the producer and wait for it: a thread still inside the solver when the
        interpreter exits aborts the process (``terminate called without an active exception``)."""
        if self.producer is not None:
            self.producer.stopped.set()
            self.producer.join()
