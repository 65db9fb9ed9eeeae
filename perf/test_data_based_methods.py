"""The data-based methods on the mini vision pool (issue 19): Fisher merging, RegMean and AdaMerging
merge the seven-task ``mini_clip_full`` pool with their defaults, reading ``mini_vision7``'s data.

The issue's bar is an absolute one, a minute on 2 cores, so each target is the merge's seconds
(one round: the merges are deterministic and take up to a minute) over a fixed 60-second budget;
the merge's CPU seconds go to the benchmark's ``extra_info`` beside them.
A second benchmark merges every pair of the seven tasks as a pairs sweep's worker does, once with
the per-task Fishers / Grams reused across the merges (``fusionbench.api.derived``, what sweeps do)
and once computed in every merge, and records the ratio.
The mini world is built into a temporary home (a few minutes, once) unless
``FUSIONBENCH_MINI_HOME`` names a home that already holds it (``fusionbench mini build vision``).
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import pytest
from bench_helpers import SECONDS, run

from fusionbench.api.derived import DerivedCache
from fusionbench.config.compose import compose
from fusionbench.engine.build import build
from fusionbench.runner import RunSchema

BUDGET = 60.0  # seconds: the "under a minute on 2 cores"


@pytest.fixture(scope="module")
def mini_vision_home(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A FUSIONBENCH_HOME holding the full mini vision world (built here unless FUSIONBENCH_MINI_HOME has it)."""
    home = os.environ.get("FUSIONBENCH_MINI_HOME") or str(tmp_path_factory.mktemp("mini-vision-home"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUSIONBENCH_HOME", home)
        build(compose(["method=simple_average", "modelpool=mini_clip_full"], RunSchema), "cpu")
    return home


@pytest.mark.benchmark(group="data-based methods: one merge of the 7-task mini vision pool, defaults")
@pytest.mark.parametrize("name", ["fisher", "regmean", "adamerging"])
def test_data_based_merge_on_the_mini_vision_pool(benchmark: Any, mini_vision_home: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", mini_vision_home)
    pool, taskpool, method = build(compose([f"method={name}", "modelpool=mini_clip_full"], RunSchema), "cpu")
    taskpool.evaluate(pool.model(pool.base()), pool.tasks, "test")  # decoded images and zero-shot heads cached, as in a run
    seconds: list[float] = []
    cpu_seconds: list[float] = []

    def merge() -> None:
        start, cpu_start = time.perf_counter(), time.process_time()
        method.merge(pool, taskpool)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)

    run(benchmark, merge, rounds=1, warmup=0)
    SECONDS[f"data-merge:{name}"] = min(seconds)
    SECONDS["budget:minute"] = BUDGET
    benchmark.extra_info.update(seconds=min(seconds), cpu_seconds=min(cpu_seconds))  # CPU time: what contention does not inflate


@pytest.mark.benchmark(group="data-based methods: the 21 pairs of the mini vision pool, per-task results reused or not")
@pytest.mark.parametrize("name", ["fisher", "regmean"])
def test_pairs_merges_reuse_each_tasks_fishers_and_grams(benchmark: Any, mini_vision_home: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", mini_vision_home)
    pool, taskpool, method = build(compose([f"method={name}", "modelpool=mini_clip_full", "method.examples_per_task=64"], RunSchema), "cpu")
    taskpool.evaluate(pool.model(pool.base()), pool.tasks, "test")
    pairs = [list(pair) for pair in itertools.combinations(pool.tasks, 2)]
    seconds: dict[str, float] = {}

    def merges(reuse: bool) -> None:
        pool.derived = DerivedCache() if reuse else None
        start = time.perf_counter()
        for pair in pairs:
            method.merge(pool.subset(pair), taskpool)
        seconds[f"pairs:{name}:{'reused' if reuse else 'computed'}"] = time.perf_counter() - start

    run(benchmark, lambda: (merges(False), merges(True)), rounds=1, warmup=0)
    SECONDS.update(seconds)
    benchmark.extra_info.update(seconds)
