"""Build, inspect and remove the mini worlds under ``$FUSIONBENCH_HOME/mini``.

A *world* is one modality's data, tokenizer and pretrained base, built deterministically
from a seed (the base is the shipped one, copied after its checksums match; a reduced
world trains a tiny one), in a process with pinned numerics, so the same bits on every
machine (``fusionbench.utils.numerics``)::

    mini/vision-seed0/                      mini/text-seed0/
        manifest.json                           manifest.json
        tasks.json   (class names, templates)   tasks.json   (glue_tasks.json shape)
        data/<task>/ (DatasetDict on disk)      data/<task>/ (DatasetDict on disk)
        clip/        (CLIPModel + CLIPProcessor) t5/         (T5ForConditionalGeneration + tokenizer)

A world is built in a hidden temporary folder beside its final place and renamed into
place only when complete, with ``manifest.json`` written last; a world without a
manifest of the current format is never used. ``reduced=True`` builds a tiny world
(seconds) for tests.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.progress import Progress
from transformers import CLIPModel, CLIPProcessor, T5ForConditionalGeneration, T5Tokenizer

from fusionbench.api.errors import DataError
from fusionbench.api.taskpool import SPLITS
from fusionbench.mini import base_training, bases, shipped, text_data, text_world, vision_world
from fusionbench.mini.build_steps import (
    StepTimer, WorldSize, atomic_dir, library_progress_bars_off, library_versions, progress_bar, stream_rng, write_json,
)  # fmt: skip
from fusionbench.mini.vision_tasks import VISION_TASKS
from fusionbench.utils.cache import home
from fusionbench.utils.numerics import numerics_record, run_pinned

FORMAT = "fusionbench.mini/13"  # bump whenever a build would produce something different
KINDS = ("vision", "text")


SIZES: dict[tuple[str, bool], WorldSize] = {
    ("vision", False): WorldSize(2000, 300, 500, 16000, 8000, 128),  # pretraining: the shipped base's (``fusionbench mini train-base``)
    ("vision", True): WorldSize(48, 16, 32, 256, 4, 32),
    ("text", False): WorldSize(8000, 300, 500, 4000, 2000, 64),  # pretraining: the shipped base's
    ("text", True): WorldSize(48, 16, 32, 64, 4, 16),
}


Filler = Callable[[Path, WorldSize, int, bool, Progress, StepTimer], dict[str, Any]]


# ------------------------------------------------------------------------- paths
def mini_home() -> Path:
    """``$FUSIONBENCH_HOME/mini``."""
    return home() / "mini"


def world_name(kind: str, seed: int = 0, reduced: bool = False) -> str:
    _check_kind(kind)
    return f"{kind}-seed{seed}" + ("-reduced" if reduced else "")


def world_dir(kind: str, seed: int = 0, reduced: bool = False) -> Path:
    """Where the world lives (whether or not it is built)."""
    return mini_home() / world_name(kind, seed, reduced)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise DataError(f"unknown mini world {kind!r}; valid kinds: {', '.join(KINDS)}")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a complete world at ``path``, or None (missing, torn or of another format)."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


def _is_current(path: Path, kind: str, seed: int, reduced: bool) -> bool:
    manifest = read_manifest(path)
    return manifest is not None and manifest["spec"] == _spec(kind, seed, reduced)


def _spec(kind: str, seed: int, reduced: bool) -> dict[str, Any]:
    return {"kind": kind, "seed": seed, "reduced": reduced, "size": asdict(SIZES[(kind, reduced)])}


def _build(kind: str, seed: int, reduced: bool, force: bool, quiet: bool) -> Path:
    """Reuse the world if it is complete and current, else fill a temporary folder in a pinned process
    (``fusionbench.utils.numerics``: the same bits on every machine) and move it into place."""
    final = world_dir(kind, seed, reduced)
    if not force and _is_current(final, kind, seed, reduced):
        return final
    with atomic_dir(final) as tmp:
        results = run_pinned(_fill, kind, tmp, seed, reduced, quiet)
        manifest = {
            "format": FORMAT,
            "spec": _spec(kind, seed, reduced),
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
            **results,
        }
        write_json(tmp / "manifest.json", manifest)
    return final


def _fill(kind: str, root: Path, seed: int, reduced: bool, quiet: bool) -> dict[str, Any]:
    """Write the ``kind`` world into ``root`` (in the pinned process); returns the manifest's results."""
    timer = StepTimer()
    with library_progress_bars_off(), progress_bar(quiet, None) as progress:
        with timer.phase("total"):
            results = FILLERS[kind](root, SIZES[(kind, reduced)], seed, reduced, progress, timer)
    return {**results, "numerics": numerics_record(), "seconds": timer.seconds, "cpu_seconds": timer.cpu_seconds}


def _advance(progress: Progress, bar: Any) -> Callable[[int], None]:
    return lambda k: progress.advance(bar, k)


# ------------------------------------------------------------------------ vision
def build_vision_world(seed: int = 0, reduced: bool = False, force: bool = False, quiet: bool = False) -> Path:
    """Build (or reuse) the vision world: 7 image tasks of their own domains and the tiny CLIP base
    (the shipped one; a reduced world trains a tiny one)."""
    return _build("vision", seed, reduced, force, quiet)


def _fill_vision(root: Path, size: WorldSize, seed: int, reduced: bool, progress: Progress, timer: StepTimer) -> dict[str, Any]:
    splits: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    with timer.phase("data"):
        step = _advance(progress, progress.add_task("vision: draw images", total=len(VISION_TASKS) * len(SPLITS)))
        for name in VISION_TASKS:
            splits[name] = {split: vision_world.task_split(name, size.split(split), stream_rng(seed, "vision", name, split)) for split in SPLITS}
            step(len(SPLITS))
    with timer.phase("save_data"):
        for name in VISION_TASKS:
            save_vision_task(root, name, splits[name])
        write_json(root / "tasks.json", vision_tasks_json())
    with timer.phase("base"):
        if reduced:  # a tiny base, trained by the shipped base's code path
            base = base_training.train_vision_into(root / "clip", size.pretrain_examples, size.pretrain_steps, size.batch_size, seed, progress)
        else:
            base = _ship_base("vision", root / "clip")
        model = CLIPModel.from_pretrained(root / "clip")
        processor = CLIPProcessor.from_pretrained(root / "clip")
    with timer.phase("evaluate"):
        scores = {}
        for name, task in VISION_TASKS.items():
            images, labels = splits[name]["test"]
            head = bases.zero_shot_head(model, processor.tokenizer, task)
            acc = bases.zero_shot_accuracy(model, head, bases.pixel_values(images, processor.image_processor), torch.from_numpy(labels))
            scores[name] = {"metric": "accuracy", "value": round(acc, 4), "n": len(labels), "chance": round(1 / task.num_classes, 4)}
    return {"tasks": list(VISION_TASKS), "pretrained": scores, "base": base}


def save_vision_task(root: Path, name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write one vision task's (images, labels) per split as a ``datasets`` folder under ``root/data/<name>``."""
    import datasets
    from PIL import Image

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(VISION_TASKS[name].classnames))})
    datasets.DatasetDict(
        {split: datasets.Dataset.from_dict({"image": [Image.fromarray(im) for im in images], "label": labels.tolist()}, features=features)
         for split, (images, labels) in splits.items()}  # fmt: skip
    ).save_to_disk(str(root / "data" / name))


def _ship_base(kind: str, target: Path) -> dict[str, Any]:
    """Copy the shipped ``kind`` base into the world after checking its checksums; returns its provenance."""
    source = shipped.SHIPPED_BASES[kind]
    sums = shipped.copy_verified(source, target)
    record = json.loads((source / shipped.RECORD).read_text())
    return {"source": "shipped", "sha256": sums, "recipe": record["recipe"], "pretrain_loss": record["pretrain_loss"]}


def vision_tasks_json() -> dict[str, Any]:
    """Task definitions in the shape of ``clip_vision_tasks.json`` (dataset = folder under the world)."""
    return {
        name: {"dataset": f"data/{name}", "num_classes": t.num_classes, "classnames": list(t.classnames), "templates": list(t.templates)}
        for name, t in VISION_TASKS.items()
    }


# -------------------------------------------------------------------------- text
def build_text_world(seed: int = 0, reduced: bool = False, force: bool = False, quiet: bool = False) -> Path:
    """Build (or reuse) the text world: 7 GLUE-like tasks and the tiny T5 base with its tokenizer
    (the shipped one; a reduced world trains a tiny one)."""
    return _build("text", seed, reduced, force, quiet)


def _text_features(task: text_data.TextTask) -> Any:
    import datasets

    label = datasets.ClassLabel(names=list(task.label_names)) if task.label_names else datasets.Value("float32")
    return datasets.Features({**{f: datasets.Value("string") for f in task.fields}, "label": label, "idx": datasets.Value("int32")})


def _fill_text(root: Path, size: WorldSize, seed: int, reduced: bool, progress: Progress, timer: StepTimer) -> dict[str, Any]:
    import datasets

    tasks = text_data.TEXT_TASKS
    with timer.phase("data"):
        step = _advance(progress, progress.add_task("text: generate examples", total=len(tasks) * (len(SPLITS) + 1)))
        corpus = text_world.generate_corpus(size.split_sizes(), size.pretrain_examples, seed, step)
    with timer.phase("save_data"):
        for name, task in tasks.items():
            columns = {split: [{**e, "idx": i} for i, e in enumerate(rows)] for split, rows in corpus.splits[name].items()}
            datasets.DatasetDict(
                {split: datasets.Dataset.from_list(rows, features=_text_features(task)) for split, rows in columns.items()}
            ).save_to_disk(str(root / "data" / name))
        write_json(root / "tasks.json", text_tasks_json())
    with timer.phase("base"):
        if reduced:  # a tiny tokenizer and base, trained by the shipped base's code path
            base = base_training.train_text_into(root / "t5", corpus, size.pretrain_steps, size.batch_size, seed, progress)
        else:
            base = _ship_base("text", root / "t5")
        model = T5ForConditionalGeneration.from_pretrained(root / "t5").eval()
        tokenizer = T5Tokenizer.from_pretrained(root / "t5")
    with timer.phase("evaluate"):
        scores = {name: bases.t5_score(model, tokenizer, task, corpus.splits[name]["test"]) for name, task in tasks.items()}
        weak = {name: text_data.weak_score(name, corpus.splits[name]["test"]) for name in tasks}
    return {"tasks": list(tasks), "pretrained": scores, "weak_labeller": weak, "base": base}


def text_tasks_json() -> dict[str, Any]:
    """Task definitions in the shape of ``glue_tasks.json`` (dataset = folder under the world)."""
    return {
        "note": "FusionBench mini text world: GLUE-like tasks over one synthetic sentence distribution; "
        "the pretrained T5 was trained with the 'paper' templates.",
        "tasks": {
            name: {
                "dataset": f"data/{name}",
                "metric": t.metric,
                "eval_split": "test",
                "fields": list(t.fields),
                "label_names": list(t.label_names) if t.label_names else None,
                "templates": t.templates(),
            }
            for name, t in text_data.TEXT_TASKS.items()
        },
    }


# ----------------------------------------------------------------- whole worlds
FILLERS: dict[str, Filler] = {"vision": _fill_vision, "text": _fill_text}


def build_world(kind: str, seed: int = 0, reduced: bool = False, force: bool = False, quiet: bool = False) -> Path:
    """Build (or reuse) the ``kind`` world; returns its folder."""
    _check_kind(kind)
    return _build(kind, seed, reduced, force, quiet)


def require_world(kind: str, seed: int = 0, reduced: bool = False) -> Path:
    """The folder of a complete world, or a DataError that says how to build it."""
    path = world_dir(kind, seed, reduced)
    if not _is_current(path, kind, seed, reduced):
        flags = f" seed={seed}" + (" reduced=true" if reduced else "")
        raise DataError(
            f"the mini {kind} world is not built at {path}; build it with `fusionbench mini build {kind}{flags}` "
            f"or fusionbench.mini.build_world({kind!r}, seed={seed}, reduced={reduced})"
        )
    return path


def status() -> list[dict[str, Any]]:
    """One row per folder under ``mini_home()``: whether it is a complete world, and what it holds."""
    rows: list[dict[str, Any]] = []
    if not mini_home().is_dir():
        return rows
    for path in sorted(mini_home().iterdir()):
        if not path.is_dir():
            continue
        manifest = None if path.name.startswith(".") else read_manifest(path)
        size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        row: dict[str, Any] = {"name": path.name, "path": str(path), "complete": manifest is not None, "size_mb": round(size_mb, 2)}
        if manifest is not None:
            row.update(
                kind=manifest["spec"]["kind"],
                seed=manifest["spec"]["seed"],
                reduced=manifest["spec"]["reduced"],
                built_at=manifest["built_at"],
                seconds=manifest["seconds"]["total"],
                pretrained={t: s["value"] for t, s in manifest["pretrained"].items()},
            )
        rows.append(row)
    return rows


def clean(kind: str | None = None, seed: int | None = None, reduced: bool | None = None) -> list[Path]:
    """Remove worlds (all, or those matching ``kind`` / ``seed`` / ``reduced``) and any leftover
    temporary folders of interrupted builds; returns what was removed."""
    if kind is not None:
        _check_kind(kind)
    removed: list[Path] = []
    if not mini_home().is_dir():
        return removed
    for path in sorted(mini_home().iterdir()):
        if not path.is_dir():
            continue
        if path.name.startswith("."):
            matches = True  # an interrupted build, never a world in use
        else:
            manifest = read_manifest(path)
            spec = manifest["spec"] if manifest else {}
            matches = all(
                want is None or spec.get(key) == want for key, want in (("kind", kind), ("seed", seed), ("reduced", reduced))
            ) and (manifest is not None or kind is None)
        if matches:
            shutil.rmtree(path)
            removed.append(path)
    return removed
