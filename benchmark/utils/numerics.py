"""Pinned CPU numerics: the same bits on every x86-64 machine with AVX2, Intel or AMD.

PyTorch's CPU results depend on the machine through the intra-op thread count (how
reductions are split), ATen's vector kernels (``ATEN_CPU_CAPABILITY``: AVX-512 vs AVX2),
MKL's GEMM code path (``MKL_CBWR``) and oneDNN's convolutions (``ONEDNN_MAX_CPU_ISA``, and
the blocking oneDNN picks for the CPU); each changes the weights of a short fine-tune
(measured in issue 16). MKL honours a named code path such as ``AVX2`` on Intel CPUs only
and runs its automatic one elsewhere (Intel's MKL developer guide, "Getting Started with
Conditional Numerical Reproducibility"; measured on an AMD EPYC: ``AVX2``, ``AVX512`` and
``AUTO`` gave the same weights), so the pinned path is ``COMPATIBLE``, the one MKL runs
alike on every x86-64 CPU; and the pinned processes leave oneDNN off (convolutions run
through ATen and MKL). The variables are read when the libraries start, so a pinned job
runs in a fresh process (``pinned_pool``) started with ``PINNED_ENV``.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

PINNED_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
}
T = TypeVar("T")


@contextmanager
def pinned_environment() -> Iterator[None]:
    """``PINNED_ENV`` in ``os.environ`` for the block (for the processes started in it), then the old values."""
    old = {key: os.environ.get(key) for key in PINNED_ENV}
    os.environ.update(PINNED_ENV)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _start_pinned_worker() -> None:
    import torch

    from fusionbench.utils.quiet import quiet_libraries

    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    quiet_libraries()


@contextmanager
def pinned_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Up to ``workers`` fresh processes whose numerics are pinned: they start on demand, so
    ``PINNED_ENV`` stays set in this process for the whole block."""
    context = multiprocessing.get_context("spawn")
    with pinned_environment(), ProcessPoolExecutor(workers, mp_context=context, initializer=_start_pinned_worker) as pool:
        yield pool


def run_pinned(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in one pinned process (``fn`` and its arguments must pickle)."""
    with pinned_pool(1) as pool:
        return pool.submit(fn, *args).result()


def numerics_record() -> dict[str, Any]:
    """What this process computes with: ``pinned`` is true only where every setting took effect."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    settings = {key: os.environ.get(key) for key in PINNED_ENV}
    onednn = torch.backends.mkldnn.enabled
    pinned = settings == PINNED_ENV and capability == "AVX2" and torch.get_num_threads() == 1 and not onednn
    return {"pinned": pinned, "cpu_capability": capability, "threads": torch.get_num_threads(), "onednn": onednn, "settings": settings}
