"""A worker process whose CPU arithmetic gives the same bits on every x86-64 CPU.

torch does its CPU matrix products and FFTs with oneMKL, which picks its code by the
instruction set it finds (SSE4.2, AVX2, AVX-512), and the paths round differently. The
built-in world is chaotic, so that last-bit difference grows into another weather within
weeks, and a store simulated on one CPU gives other scores than one simulated on
another. oneMKL's conditional numerical reproducibility mode ``COMPATIBLE`` runs one
path on every x86-64 CPU, Intel's or AMD's. It has to be chosen before oneMKL's first
call and then holds for the whole process, and it slows the network's CPU step
1.5-1.9x (the solver not at all), so the world is simulated in a process of its own that
chooses it: ``MKL_CBWR`` is set there unless the caller's environment sets it already.
torch's own CPU kernels give the same bits with AVX2 and AVX-512, and the world the same
with 1 to 8 threads; ARM CPUs run other kernels and simulate another realisation of the
same climate.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

MKL_MODE_VARIABLE = "MKL_CBWR"
PORTABLE_MKL_MODE = "COMPATIBLE"


def _choose_portable_arithmetic() -> None:
    os.environ.setdefault(MKL_MODE_VARIABLE, PORTABLE_MKL_MODE)


def portable_worker() -> ProcessPoolExecutor:
    """One fresh (spawned) process that runs oneMKL in its x86-64-portable mode."""
    return ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_choose_portable_arithmetic
    )
