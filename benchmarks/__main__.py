"""``python -m benchmarks NAME [--quick] [--device cpu|cuda] [options]``: one JSON object per figure."""

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
    "climate",
    "one_step_bias",
    "climate_window",
)
OPTIONS = {
    "years": ("skill", "climate"),
    "off_years": ("skill",),
    "checkpoint": ("skill", "climate", "one_step_bias", "climate_window"),
    "members": ("climate",),
    "store": ("one_step_bias",),
    "overrides": ("skill", "climate", "one_step_bias"),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("--quick", action="store_true", help="a run of under a minute on two CPU cores")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--years", type=float, help="skill, climate: simulated years of the long rollout")
    parser.add_argument(
        "--off-years",
        type=float,
        help="skill: simulated years of each control-off rollout (default 1; at most --years)",
    )
    parser.add_argument(
        "--checkpoint",
        help="skill, climate, one_step_bias, climate_window: the checkpoint to score (default: the committed one)",
    )
    parser.add_argument("--members", type=int, help="climate: rollouts run as one batch and averaged (default 1)")
    parser.add_argument("--store", help="one_step_bias: the truth store to step from (default: the held-out world)")
    parser.add_argument(
        "--set", dest="overrides", action="append", metavar="KEY=VALUE",
        help="skill, climate, one_step_bias: override configs/world.yaml (e.g. stepper.balance={strength: 0.1})",
    )  # fmt: skip
    args = parser.parse_args()
    options = {key: getattr(args, key) for key in OPTIONS if getattr(args, key) is not None}
    for key in options:
        if args.name not in OPTIONS[key]:
            parser.error(f"--{key.replace('_', '-')} applies to {', '.join(OPTIONS[key])} only")
    module = importlib.import_module(f"benchmarks.{args.name}")
    module.run(args.quick, choose_device(args.device), **options)


if __name__ == "__main__":
    main()
