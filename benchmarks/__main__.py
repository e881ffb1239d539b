"""``python -m benchmarks NAME [--quick] [--device cpu|cuda]``: one JSON object per figure."""

from __future__ import annotations

import argparse
import importlib

from emulator.device import choose_device

BENCHMARKS = (
    "model_throughput",
    "ensemble_scaling",
    "writer_overhead",
    "ingest_throughput",
    "rollout_speed",
    "skill",
    "ensemble_amplitude",
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("--quick", action="store_true", help="a run of under a minute on two CPU cores")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--years", type=float, help="skill: simulated years of the long rollout (default 100)")
    args = parser.parse_args()
    module = importlib.import_module(f"benchmarks.{args.name}")
    options = {"years": args.years} if args.years is not None else {}
    if options and args.name != "skill":
        parser.error("--years applies to the skill benchmark only")
    module.run(args.quick, choose_device(args.device), **options)


if __name__ == "__main__":
    main()
