"""The element-wise merges against the memory-bandwidth floor, on eight ViT-B/16-shaped tasks (``merge_workload``).

Time: the floor (``bandwidth_floor``: ``torch.add`` summing the base and the eight fine-tuned
models into one output, T + 1 = 9 models read and one written; the faster of chunked and
whole-tensor adds) and ``Method.merge`` of simple average, task arithmetic, DARE (p = 0.5) and
TIES (k = 0.2) with their defaults, and DARE with ``base_method=ties``, side by side (``bench_helpers.side_by_side``),
with two parts of the missed targets' time: DARE's mask draws alone and TIES's thresholds alone. Memory: each
method's extra peak RSS in a fresh process, against one model's bytes.

``FUSIONBENCH_BENCH_MERGE`` picks the size: ``block`` (default: one encoder block, 7,087,872
parameters, 27 MiB a model) or ``tower`` (the vision transformer, 85,799,424 parameters,
327 MiB a model, about 3 GiB of inputs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_helpers import BYTES, SECONDS, side_by_side
from merge_workload import METHODS, bandwidth_floor, dare_draws, random_vit_pool, ties_thresholds

from fusionbench.api.modelpool import ModelPool

SCOPE = os.environ.get("FUSIONBENCH_BENCH_MERGE", "block")
WORKLOAD = Path(__file__).with_name("merge_workload.py")


@pytest.fixture(scope="module")
def pool() -> ModelPool:
    return random_vit_pool(SCOPE)


@pytest.mark.benchmark(group=f"merge engine: 8 ViT-B/16 tasks ({SCOPE}) against the bandwidth floor")
def test_merge_engine_against_the_floor(benchmark: Any, pool: ModelPool) -> None:
    calls = {"merge:floor-chunked": lambda: bandwidth_floor(pool, True), "merge:floor-whole": lambda: bandwidth_floor(pool, False)}
    calls.update({f"merge:{name}": (lambda method=method: method.merge(pool)) for name, method in METHODS.items()})
    calls.update({"merge:dare-draws": lambda: dare_draws(pool), "merge:ties-thresholds": lambda: ties_thresholds(pool)})
    best = side_by_side(benchmark, calls, rounds=5)
    SECONDS["merge:floor"] = min(best["merge:floor-chunked"], best["merge:floor-whole"])


@pytest.mark.parametrize("method", list(METHODS))
def test_merge_engine_extra_peak_memory(method: str) -> None:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}  # freed tensors leave the RSS
    done = subprocess.run([sys.executable, str(WORKLOAD), method, SCOPE], capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    BYTES[f"merge-extra:{method}"] = measured["extra"]
    BYTES["merge-model"] = measured["model"]
    BYTES[f"merge-runtime:{method}"] = measured["runtime"]
