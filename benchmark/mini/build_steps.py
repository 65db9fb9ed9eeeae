"""Helpers of a world build: its sizes, progress bars, step timings, atomic folders, library versions, JSON files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fusionbench.api.taskpool import SPLITS


@dataclass(frozen=True)
class WorldSize:
    """How much data and pretraining a world gets (``build.SIZES``)."""

    train: int
    validation: int
    test: int
    pretrain_examples: int  # vision: captioned scenes; text: weakly labelled examples per task
    pretrain_steps: int
    batch_size: int

    def split(self, name: str) -> int:
        return int(getattr(self, name))

    def split_sizes(self) -> dict[str, int]:
        """Examples per task in each split."""
        return {split: self.split(split) for split in SPLITS}


# ----------------------------------------------------------------------- helpers
def progress_bar(quiet: bool, console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )


class StepTimer:
    """Wall and CPU seconds per named phase (CPU time shows the cost on a machine others share)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.seconds[name] = round(time.perf_counter() - wall, 2)
        self.cpu_seconds[name] = round(time.process_time() - cpu, 2)


@contextmanager
def library_progress_bars_off() -> Iterator[None]:
    """Silence the progress bars of datasets and transformers (the build shows its own)."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets_were_on = datasets.is_progress_bar_enabled()
    hf_was_on = hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_were_on:
            datasets.enable_progress_bars()
        if hf_was_on:
            hf_logging.enable_progress_bar()


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """A fresh temporary folder beside ``final`` that replaces it when the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.replace(final, old / "world")
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def library_versions() -> dict[str, str]:
    import datasets
    import tokenizers
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "numpy": np.__version__,
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def stream_rng(seed: int, *stream: object) -> np.random.Generator:
    """An independent generator for one named stream of a world (data of a task, captions, ...)."""
    return np.random.default_rng([seed, zlib.crc32(repr(stream).encode())])


def torch_seed(seed: int, *stream: object) -> int:
    return int(stream_rng(seed, "torch", *stream).integers(2**31))


def loss_summary(losses: list[float]) -> dict[str, float]:
    k = max(1, len(losses) // 10)
    return {"first": round(float(np.mean(losses[:k])), 4), "last": round(float(np.mean(losses[-k:])), 4), "steps": len(losses)}
