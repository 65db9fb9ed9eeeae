"""FusionBench's performance suite (pytest-benchmark), separate from the unit tests.

Run it with ``pytest perf/ --benchmark-enable``. Every target of docs/performance.md
is a ratio of two figures measured side by side in the same run; at the end the suite
prints them against their targets and writes them to ``.benchmarks/targets.json``.
Nothing here asserts a timing: a missed target is reported, not failed. Torch runs on
``FUSIONBENCH_BENCH_THREADS`` threads (default 1: on a shared, contended CPU a
multi-threaded step is far noisier).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import pytest
import torch

from bench_helpers import BYTES, PARTS, RESULTS_FILE, SECONDS, TARGETS, Target


def pytest_configure(config: Any) -> None:
    torch.set_num_threads(int(os.environ.get("FUSIONBENCH_BENCH_THREADS", "1")))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("fusionbench-home")
    monkeypatch.setenv("FUSIONBENCH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def figures(target: Target) -> str:
    """`` (numerator / denominator)`` of a measured target, seconds or MiB, so the figures print beside the ratio."""
    source, unit, scale = (SECONDS, "s", 1.0) if target.numerator in SECONDS else (BYTES, "MiB", 2.0**-20)
    if target.numerator not in source or target.denominator not in source:
        return ""
    return f" ({source[target.numerator] * scale:.4g} {unit} / {source[target.denominator] * scale:.4g} {unit})"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = []
    for target in TARGETS:
        ratio = target.ratio()
        met = None if ratio is None else (ratio >= target.bound if target.at_least else ratio <= target.bound)
        rows.append({"target": target.name, "ratio": ratio, "bound": f"{'>=' if target.at_least else '<='} {target.bound}",
                     "met": met, "paper": target.paper, "figures": figures(target)})
    if not SECONDS and not BYTES:
        return
    terminalreporter.section("FusionBench performance targets (ratios measured side by side in this run)")
    for row in rows:
        shown = "not measured" if row["ratio"] is None else f"{row['ratio']:.3f}"
        verdict = {None: "-", True: "met", False: "MISSED"}[row["met"]]
        paper = f" (paper: {row['paper']:.2f})" if row["paper"] else ""
        terminalreporter.write_line(f"{row['target']:<72} {shown:>12}  target {row['bound']:<8} {verdict}{paper}{row['figures']}")
    for name, numerator, denominator in PARTS:
        if numerator in SECONDS and denominator in SECONDS:
            ratio = SECONDS[numerator] / SECONDS[denominator]
            terminalreporter.write_line(f"{name:<72} {ratio:>12.3f}  ({SECONDS[numerator]:.4g} s / {SECONDS[denominator]:.4g} s)")
    for key, value in sorted(BYTES.items()):
        terminalreporter.write_line(f"{key:<72} {value / 2**20:>9.1f} MiB")
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    data = {
        "targets": rows,
        "seconds": SECONDS,
        "bytes": BYTES,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
    }
    RESULTS_FILE.write_text(json.dumps(data, indent=2) + "\n")
    terminalreporter.write_line(f"written to {RESULTS_FILE}")
