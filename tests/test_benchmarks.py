"""Every benchmark runs in quick mode and prints well-formed JSON lines."""

import json
import math
import subprocess
import sys

import pytest

from benchmarks.__main__ import BENCHMARKS


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_quick_prints_json_figures(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", name, "--quick"], capture_output=True, text=True, check=True, timeout=300
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records, result.stderr
    for record in records:
        assert record["bench"] == name and record["device"] == "cpu"
        assert isinstance(record["value"], float) and math.isfinite(record["value"])
        assert isinstance(record["config"], dict)
