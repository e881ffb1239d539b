"""Lead steps gathered into blocks: where a block ends, and that its steps come out whole."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emulator.grid import Grid
from emulator.io.blocks import MAX_BLOCK_BYTES, MAX_BLOCK_STEPS, Members, StepBuffer, in_blocks
from emulator.io.forecast_reader import forecast_channels, open_forecast
from emulator.io.layout import ForecastLayout
from emulator.io.output import forecast_output


class BlockLog:
    """A block writer that keeps (first lead, number of steps, members) of each block it is given."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int, object]] = []

    def write_block(self, first_lead: int, block: np.ndarray, members: Members) -> None:
        rows = members.tolist() if isinstance(members, np.ndarray) else members
        self.blocks.append((first_lead, block.shape[1], rows))

    def set_status(self, status: str) -> None:
        self.blocks.append((-1, 0, status))


def test_a_block_ends_at_its_size_a_gap_other_members_and_a_status() -> None:
    log = BlockLog()
    buffer = StepBuffer(log)
    state = np.zeros((2, 3, 4, 8), np.float32)
    for lead in range(MAX_BLOCK_STEPS + 2):
        buffer.write(lead, state)
    buffer.write(12, state)  # a gap in the leads
    buffer.write(13, state[:1], np.array([1]))  # other members
    buffer.write(14, state[:1], np.array([1]))
    buffer.set_status("done")
    assert log.blocks == [
        (0, MAX_BLOCK_STEPS, slice(None)),
        (MAX_BLOCK_STEPS, 2, slice(None)),
        (12, 1, slice(None)),
        (13, 2, [1]),
        (-1, 0, "done"),
    ]


def test_a_block_holds_at_most_its_bytes() -> None:
    log = BlockLog()
    state = np.zeros((1, 1, 2048, 2048), np.float32)  # 16 MiB
    with in_blocks(log) as buffer:
        for lead in range(6):
            buffer.write(lead, state)
    per_block = MAX_BLOCK_BYTES // state.nbytes
    assert per_block < MAX_BLOCK_STEPS and [steps for _, steps, _ in log.blocks] == [per_block, 6 - per_block]


def test_the_steps_held_when_an_error_ends_the_context_are_written() -> None:
    log = BlockLog()
    with pytest.raises(RuntimeError, match="diverged"), in_blocks(log) as buffer:
        buffer.write(0, np.zeros((1, 1, 4, 8), np.float32))
        raise RuntimeError("diverged")
    assert log.blocks == [(0, 1, slice(None))]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_steps_written_in_blocks_read_back_at_their_leads(tmp_path: Path, suffix: str) -> None:
    steps = MAX_BLOCK_STEPS + 3
    states = np.random.default_rng(3).normal(size=(steps, 2, 3, 8, 16)).astype(np.float32)
    channels = ["geopotential@500", "geopotential@850", "2m_temperature"]
    leads = [6.0 * (lead + 1) for lead in range(steps)]
    layout = ForecastLayout(channels, {}, Grid(8, 16), pd.Timestamp("2020-01-01"), [0, 1], leads, {})
    with forecast_output(tmp_path / f"f{suffix}", layout) as writer:
        for lead, state in enumerate(states):
            writer.write(lead, state)
    with open_forecast(tmp_path / f"f{suffix}") as forecast:
        read = forecast_channels(forecast)
        assert (forecast.lead_time.values / np.timedelta64(1, "h")).tolist() == leads
        for index, channel in enumerate(channels):
            np.testing.assert_array_equal(read[channel].values[:, 0], states[:, :, index].transpose(1, 0, 2, 3))
