"""The same mini world on every machine (issue 16): a reduced vision world and its 21 fine-tuned models,
built by the CLI under CPU settings that change PyTorch's, MKL's, oneDNN's and NumPy's kernels, are
identical bit for bit, and so is the shipped base's training."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Each of these changes the weights of an unpinned fine-tune on an AVX-512 machine (fusionbench.utils.numerics);
# MKL's automatic path is the one it runs on a CPU it does not know.
OTHER_KERNELS = {
    "OMP_NUM_THREADS": "2",
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "AUTO",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512_SKX AVX2 FMA3",
}
TIMINGS = {"built_at", "date", "seconds", "cpu_seconds", "files"}  # what records may differ in: times, and data folders' identities (modification times)


def _without_timings(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_timings(v) for k, v in data.items() if k not in TIMINGS}
    return [_without_timings(v) for v in data] if isinstance(data, list) else data


def _fusionbench(home: Path, env: dict[str, str], *words: str) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in OTHER_KERNELS}
    subprocess.run([sys.executable, "-m", "fusionbench.cli", *words], env={**clean, **env, "FUSIONBENCH_HOME": str(home)}, check=True, capture_output=True)


def _artefacts(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``; of records (JSON, the fine-tuning logs) without their timings."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name in ("manifest.json", "READY", "training.json", "finetune.json"):
            data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
        elif path.name == "log.csv":
            rows = list(csv.DictReader(io.StringIO(data.decode())))
            data = json.dumps([_without_timings(row) for row in rows]).encode()
        out[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.mark.slow
def test_a_world_and_its_pools_are_identical_under_other_cpu_kernels(tmp_path: Path) -> None:
    world = tmp_path / "home" / "mini" / "vision-seed0-reduced"
    _fusionbench(tmp_path / "home", {}, "mini", "build", "vision", "reduced=true")
    here = _artefacts(world)
    shutil.rmtree(world)
    _fusionbench(tmp_path / "home", OTHER_KERNELS, "mini", "build", "vision", "reduced=true")
    assert len(here) > 100 and any(k.startswith("pools/llora/") for k in here)
    assert _artefacts(world) == here


@pytest.mark.parametrize("kind", ["vision", "text"])
def test_training_the_base_is_identical_under_other_cpu_kernels(kind: str, tmp_path: Path) -> None:
    for name, env in (("here", {}), ("other", OTHER_KERNELS)):
        _fusionbench(tmp_path, env, "mini", "train-base", kind, f"out={tmp_path / name}", "reduced=true")
    assert _artefacts(tmp_path / "here") == _artefacts(tmp_path / "other")
    record = json.loads((tmp_path / "other" / "training.json").read_text())
    assert record["numerics"]["pinned"] is True and record["numerics"]["cpu_capability"] == "AVX2"
    assert record["numerics"]["onednn"] is False and record["numerics"]["settings"]["MKL_CBWR"] == "COMPATIBLE"  # alike on Intel and AMD
