"""The profile's figures: what is counted without running (parameters, checkpoint size), the paper's published figures, and ratios to full fine-tuning."""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

from fusionbench.profiling.workload import FOLDABLE, Setup

GIB, MIB = 2**30, 2**20


def static_figures(setup: Setup, paradigm: str, seed: int = 0) -> dict[str, Any]:
    """Table 3's exact figures of a paradigm: parameter counts (built on the meta device) and checkpoint size."""
    from fusionbench.profiling.workload import apply_paradigm, build_model, checkpoint_bytes, parameter_counts

    model, root = apply_paradigm(*build_model(setup, "meta", seed), paradigm, setup)
    trainable, total = parameter_counts(model)
    with tempfile.TemporaryDirectory(prefix="fusionbench-ckpt-") as tmp:
        size = checkpoint_bytes(root, paradigm, setup.recipe.lora, Path(tmp))
    return {"trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / total,
            "checkpoint_bytes": size, "checkpoint_mib": size / MIB}


def phases(paradigm: str) -> tuple[str, ...]:
    return ("train", "infer", "infer_folded") if paradigm in FOLDABLE else ("train", "infer")


def paper_keys(paradigm: str, r: int) -> tuple[str, str]:
    """(table 3 key, table 4 key) of a paradigm in the paper's figures (anchors.json naming)."""
    return {
        "full": ("full", "full"),
        "linearized": ("full_linearized", "full_linearized"),
        "lora": (f"lora_r{r}", f"lora_r{r}"),
        "llora": (f"llora_r{r}", f"llora_r{r}"),
    }[paradigm]


@dataclass(frozen=True)
class Row:
    """One figure of a table: our key, and the paper's key(s) in its table (None: not published)."""

    label: str
    ours: str
    paper: Optional[tuple[str, ...]]
    fmt: Callable[[float], str]


def _count(v: float) -> str:
    return f"{v:,.0f}"


def _num(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"


TABLE3 = (
    Row("trainable params", "trainable", ("trainable",), _count),
    Row("total params", "total", ("total",), _count),
    Row("trainable %", "trainable_pct", ("trainable_pct",), _num),
    Row("checkpoint (MiB)", "checkpoint_mib", ("ckpt_mb",), _num),
    Row("peak train memory (GiB)", "train_peak_gib", ("vram_gb", "vram_gb_per_gpu_x4"), _num),
)
TABLE4 = (
    Row("train it/s", "train_its", ("train_its",), _num),
    Row("train peak memory (GiB)", "train_peak_gib", ("train_vram_gb",), _num),
    Row("inference it/s", "infer_its", ("infer_its",), _num),
    Row("inference it/s, adapters folded", "infer_folded_its", None, _num),
    Row("inference peak memory (GiB)", "infer_peak_gib", ("infer_vram_gb",), _num),
    Row("inference peak, folded (GiB)", "infer_folded_peak_gib", None, _num),
)


def paper_figures(spec: Mapping[str, Any], paradigms: Sequence[str], r: int) -> dict[str, dict[str, dict[str, float]]]:
    """The paper's published figures per table and paradigm, under the table rows' keys."""
    paper = spec.get("paper", {})
    out: dict[str, dict[str, dict[str, float]]] = {"table3": {}, "table4": {}}
    for table, rows, index in (("table3", TABLE3, 0), ("table4", TABLE4, 1)):
        published = paper.get(table, {})
        for paradigm in paradigms:
            entry = published.get(paper_keys(paradigm, r)[index])
            if entry is None:
                continue
            figures = {}
            for row in rows:
                found = [entry[k] for k in row.paper or () if k in entry]
                if found:
                    figures[row.ours] = float(found[0])
            out[table][paradigm] = figures
    return out


FOLDED_REFERENCE = {"infer_folded_its": "infer_its", "infer_folded_peak_gib": "infer_peak_gib"}  # full's model is dense


def ratios_to_full(figures: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Each figure divided by full fine-tuning's same figure (folded inference: by full's inference)."""
    full = figures.get("full")
    if not full:
        return {}
    out: dict[str, dict[str, float]] = {}
    for paradigm, values in figures.items():
        out[paradigm] = {}
        for key, value in values.items():
            reference = full.get(FOLDED_REFERENCE.get(key, key))
            if reference:
                out[paradigm][key] = value / reference
    return out


def device_info(device: str) -> dict[str, Any]:
    from fusionbench.utils.provenance import device_name

    info: dict[str, Any] = {"type": torch.device(device).type, "name": device_name(device), "torch": torch.__version__,
                            "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if device.startswith("cuda"):
        info["cuda"] = torch.version.cuda
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return info
