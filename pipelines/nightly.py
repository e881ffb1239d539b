"""The nightly job as a pipeline entry: the same as ``emulator nightly`` (see :mod:`emulator.nightly`).

python -m pipelines.nightly --config configs/nightly.yaml --output nightly
"""

from __future__ import annotations

import sys

from emulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["nightly", *sys.argv[1:]]))
