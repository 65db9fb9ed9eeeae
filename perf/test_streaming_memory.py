"""Peak memory of task arithmetic over eight full ViT-B/16 checkpoints: streamed against loaded all at once.

Nine safetensors files (a base and eight fine-tuned vision transformers, 327 MiB each) are
merged in a fresh process either by ``fusionbench.methods.task_arithmetic.stream_task_arithmetic``
(tensor by tensor) or by loading every checkpoint as a ``ParamDict`` and calling
``task_arithmetic_merge``. Peak memory is each process's peak RSS (``run_measured``);
the floor of a process that only imports the same modules is measured beside them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from bench_helpers import BYTES, peak_rss, vit_b16_recipe

from fusionbench.api.params import ParamDict
from fusionbench.profiling.measure import run_measured
from fusionbench.profiling.workload import build_model

TASKS = 8
IMPORTS = "import fusionbench.models.streaming, fusionbench.api.params, fusionbench.methods.task_arithmetic"
STREAM = "from fusionbench.methods.task_arithmetic import stream_task_arithmetic as merge; merge(base, tasks, out, 0.3)"
LOAD_ALL = (
    "from fusionbench.api.params import ParamDict; from fusionbench.methods.task_arithmetic import task_arithmetic_merge; "
    "theta0 = ParamDict.load(base); thetas = [ParamDict.load(t) for t in tasks]; "
    "task_arithmetic_merge(theta0, [t - theta0 for t in thetas], 0.3).save(out)"
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    _, root = build_model(vit_b16_recipe(), "meta", 0)
    shapes = {name: p.shape for name, p in root.named_parameters()}
    folder = tmp_path_factory.mktemp("checkpoints")
    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(TASKS + 1):
        paths.append(folder / f"model{i}.safetensors")
        ParamDict({name: 0.02 * torch.randn(shape, generator=g) for name, shape in shapes.items()}).save(paths[-1])
    BYTES["checkpoint"] = paths[0].stat().st_size
    return paths


def merge_command(code: str, paths: list[Path], out: Path) -> list[str]:
    setup = f"base, tasks, out = {str(paths[0])!r}, {[str(p) for p in paths[1:]]!r}, {str(out)!r}; "
    return [sys.executable, "-c", f"{IMPORTS}; {setup}{code}"]


def test_import_floor() -> None:
    done = run_measured([sys.executable, "-c", IMPORTS])
    assert done.returncode == 0, done.stderr
    BYTES["rss:floor"] = done.peak_rss_bytes


@pytest.mark.benchmark(group="merge memory: task arithmetic over 8 ViT-B/16 checkpoints, fresh process")
@pytest.mark.parametrize("how", ["stream", "load-all"])
def test_task_arithmetic_peak_memory(benchmark: Any, checkpoints: list[Path], tmp_path: Path, how: str) -> None:
    peak_rss(benchmark, merge_command(STREAM if how == "stream" else LOAD_ALL, checkpoints, tmp_path / "merged.safetensors"), f"rss:{how}")
    benchmark.extra_info["checkpoint_mib"] = BYTES["checkpoint"] / 2**20
