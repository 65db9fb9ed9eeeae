"""Pinned CPU numerics: the same bits on every x86-64 machine with AVX2.

PyTorch's CPU results depend on the machine through the intra-op thread count (how
reductions are split), ATen's vector kernels (``ATEN_CPU_CAPABILITY``: AVX-512 vs AVX2),
MKL's GEMM code path (``MKL_CBWR``) and oneDNN's (``ONEDNN_MAX_CPU_ISA``); each of the
four changes the weights of a 20-step CLIP fine-tune on this project's CI machine (measured
in issue 16). They are read when the libraries start, so a pinned job runs in a fresh
process (``pinned_pool``) started with ``PINNED_ENV``: one thread and the AVX2 code paths.
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
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
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
    pinned = settings == PINNED_ENV and capability == "AVX2" and torch.get_num_threads() == 1
    return {"pinned": pinned, "cpu_capability": capability, "threads": torch.get_num_threads(), "settings": settings}
