"""Every benchmark runs in quick mode and prints well-formed JSON lines."""

import json
import math
import subprocess
import sys

import pytest

from benchmarks.__main__ import BENCHMARKS

LOW_MODES = {f"{degree},{order}" for degree in (1, 2, 3) for order in range(degree + 1)}


def quick_records(name: str, *options: str) -> list[dict]:
    """The JSON records of ``python -m benchmarks NAME --quick OPTIONS``, checked for form."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", name, "--quick", *options],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records, result.stderr
    for record in records:
        assert record["bench"] == name and record["device"] == "cpu"
        assert isinstance(record["value"], float) and math.isfinite(record["value"])
        assert isinstance(record["config"], dict)
    return records


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_quick_prints_json_figures(name: str) -> None:
    quick_records(name)


def test_climate_takes_config_overrides_and_records_them() -> None:
    records = quick_records(
        "climate",
        "--set", "stepper.balance={strength: 0.2, min_degree: 8}",
        "--set", "stepper.divergent_wind={strength: 0.5, max_degree: 3}",
    )  # fmt: skip
    controls = json.loads(next(r for r in records if r["figure"] == "steps_to_nonfinite")["config"]["controls"])
    assert controls["balance"] == {"strength": 0.2, "min_degree": 8, "max_degree": None}
    assert controls["divergent_wind"] == {"strength": 0.5, "min_degree": 1, "max_degree": 3}
    shares = {r["figure"]: r for r in records if r["figure"].endswith("_end") and "truth" in r["config"]}
    assert set(shares) == {"unbalanced_geopotential_end", "divergent_kinetic_energy_end"}
    assert all(r["config"]["truth"] >= 0 and r["value"] >= 0 for r in shares.values())
    within = next(r for r in records if r["figure"] == "bands_within_tolerance_end")
    assert within["config"]["tolerance"] == 0.1 and 0 <= within["value"] <= within["config"]["bands"] == 20
    modes = next(r for r in records if r["figure"] == "planetary_mode_factor_end")
    quantity, _, mode = modes["config"]["worst"].rpartition(" ")
    assert modes["value"] >= 1 and quantity in {"geopotential", "rotational kinetic energy"} and mode in LOW_MODES
