"""Shared pieces of the benchmark suite: the figures recorded in this run and the targets they meet or miss."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

SECONDS: dict[str, float] = {}  # target key -> fastest side-by-side round's seconds (see side_by_side)
BYTES: dict[str, float] = {}  # memory key -> bytes
RESULTS_FILE = Path(".benchmarks") / "targets.json"


@dataclass(frozen=True)
class Target:
    """``ratio = numerator / denominator`` of two recorded figures, to be >= (or <=) ``bound``."""

    name: str
    numerator: str
    denominator: str
    bound: float
    at_least: bool
    paper: Optional[float] = None

    def ratio(self) -> Optional[float]:
        source = BYTES if self.numerator in BYTES or self.denominator in BYTES else SECONDS
        if self.numerator in source and self.denominator in source:
            return source[self.numerator] / source[self.denominator]
        return None


TARGETS = (
    # throughput ratios are inverse time ratios: it/s(L-LoRA) / it/s(LoRA) = t(LoRA) / t(L-LoRA)
    Target("L-LoRA training throughput / LoRA", "train:lora", "train:llora", 0.95, True, paper=3.24 / 3.83),
    Target("merged L-LoRA inference throughput / base model", "infer:base", "infer:llora-folded", 0.98, True, paper=7.23 / 8.92),
    Target("warm-cache / cold-cache evaluation speed (mini scale)", "eval-cold:tiny-clip", "eval-warm:tiny-clip", 5.0, True),
    Target("warm-cache / cold-cache evaluation speed (ViT-B/16 scale)", "eval-cold:clip-vit-b16", "eval-warm:clip-vit-b16", 5.0, True),
    Target("streaming task arithmetic peak RSS / one checkpoint (8 checkpoints)", "rss:stream", "checkpoint", 3.0, False),
    Target("fusionbench merge stream=true peak RSS / one checkpoint (8 CLIP checkpoints)", "rss:merge-stream", "full-pool-checkpoint", 3.0, False),
    # the merge engine against the memory-bandwidth floor (perf/test_merge_engine.py)
    Target("task arithmetic time / bandwidth floor (8 ViT-B/16 tasks)", "merge:task_arithmetic", "merge:floor", 1.5, False),
    Target("simple average time / bandwidth floor (8 ViT-B/16 tasks)", "merge:simple_average", "merge:floor", 1.5, False),
    Target("DARE (p = 0.5) time / bandwidth floor (8 ViT-B/16 tasks)", "merge:dare", "merge:floor", 3.0, False),
    Target("TIES (k = 0.2) time / bandwidth floor (8 ViT-B/16 tasks)", "merge:ties", "merge:floor", 6.0, False),
    # DARE + TIES: TIES's bound (its sign election and disjoint merge on top of DARE's draws; the DARE is DARE + task arithmetic)
    Target("DARE (p = 0.5) + TIES time / bandwidth floor (8 ViT-B/16 tasks)", "merge:dare_ties", "merge:floor", 6.0, False),
    Target("task arithmetic extra peak memory / one model", "merge-extra:task_arithmetic", "merge-model", 1.2, False),
    Target("simple average extra peak memory / one model", "merge-extra:simple_average", "merge-model", 1.2, False),
    Target("TIES extra peak memory / one model", "merge-extra:ties", "merge-model", 2.0, False),
    # the data-based methods against the one-minute budget (perf/test_data_based_methods.py)
    Target("Fisher merging (N = 256) on the mini vision pool / one minute", "data-merge:fisher", "budget:minute", 1.0, False),
    Target("RegMean (N = 256) on the mini vision pool / one minute", "data-merge:regmean", "budget:minute", 1.0, False),
    Target("AdaMerging (layer-wise, 500 steps) on the mini vision pool / one minute", "data-merge:adamerging", "budget:minute", 1.0, False),
    # a pairs sweep's merges with each task's Fishers / Grams reused, against computing them in every merge
    Target("Fisher merging (N = 64), 21 mini vision pairs: per-task Fishers reused / computed per merge", "pairs:fisher:reused", "pairs:fisher:computed", 0.5, False),
)


# figures with no target of their own, printed beside the targets: where a missed target's time goes
PARTS = (
    ("DARE's mask draws alone (Philox4x32-10, 8 x N float32) / floor", "merge:dare-draws", "merge:floor"),
    ("TIES's trim thresholds alone (the joint select pass) / floor", "merge:ties-thresholds", "merge:floor"),
    # loaded once a process before the measured merge (merge_workload.runtime_bytes), as the package's import is
    ("compiled kernels' runtime (Numba), TIES's process / one model", "merge-runtime:ties", "merge-model"),
    # RegMean's pairs merges are mostly its per-layer solves, which no reuse removes
    ("RegMean (N = 64), 21 mini vision pairs: per-task Grams reused / computed per merge", "pairs:regmean:reused", "pairs:regmean:computed"),
)


def run(benchmark: Any, fn: Callable[..., Any], rounds: int = 3, warmup: int = 1,
        setup: Optional[Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]] = None) -> None:
    """``benchmark.pedantic`` with fixed rounds, one call per round."""
    benchmark.pedantic(fn, setup=setup, rounds=rounds, warmup_rounds=warmup, iterations=1)


def peak_rss(benchmark: Any, command: list[str], key: str) -> None:
    """Run ``command`` once in a fresh process (``run_measured``) under ``benchmark``; its peak RSS goes to ``BYTES[key]``."""
    from fusionbench.profiling.measure import run_measured

    peaks = []

    def once() -> None:
        done = run_measured(command)
        assert done.returncode == 0, done.stderr
        peaks.append(done.peak_rss_bytes)

    run(benchmark, once, rounds=1, warmup=0)
    BYTES[key] = max(peaks)
    benchmark.extra_info["peak_rss_mib"] = max(peaks) / 2**20


def side_by_side(benchmark: Any, calls: Mapping[str, Callable[[], Any]], rounds: int,
                 setups: Optional[Mapping[str, Callable[[], Any]]] = None) -> dict[str, float]:
    """Time each call once per round, reversing their order every round; record each one's fastest round.

    Interleaving makes interference from other processes hit every variant alike, and the
    workloads are deterministic, so the fastest round is the least disturbed estimate of
    each cost. Each call runs once untimed first. ``setups[key]`` runs untimed before each
    call of ``key``. pytest-benchmark times whole rounds; the per-call minima go to
    ``SECONDS`` (the targets' figures) and to the benchmark's ``extra_info``.
    """
    times: dict[str, list[float]] = {key: [] for key in calls}
    order = list(calls)

    def call(key: str) -> float:
        if setups and key in setups:
            setups[key]()
        start = time.perf_counter()
        calls[key]()
        return time.perf_counter() - start

    for key in order:
        call(key)

    def one_round() -> None:
        for key in order:
            times[key].append(call(key))
        order.reverse()

    benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=0, iterations=1)
    best = {key: min(values) for key, values in times.items()}
    SECONDS.update(best)
    benchmark.extra_info.update({f"fastest_seconds[{key}]": value for key, value in best.items()})
    return best


def vit_b16_recipe(batch_size: int = 2) -> Any:
    """The shipped clip-vit-b16 profile setup (AdamW, LoRA r16 on q_proj + v_proj) at ``batch_size``."""
    from dataclasses import replace

    from fusionbench.profiling.measure import model_config, setup_of

    setup = setup_of(model_config("clip-vit-b16"), "clip-vit-b16")
    return replace(setup, recipe=replace(setup.recipe, batch_size=batch_size))
