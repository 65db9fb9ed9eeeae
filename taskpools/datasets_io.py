"""Dataset access shared by the task pools: where a task's data lives and which rows a split is.

A task's ``dataset`` is a Hugging Face hub id or a local path. Local paths start with ``/``,
``~``, ``.`` or ``$`` (``$FUSIONBENCH_HOME`` expands to FusionBench's home folder even when the
variable is unset) and hold either a ``DatasetDict`` saved with ``save_to_disk`` or, for image
tasks, an image folder (``<split>/<class>/<image>``). A hub id is first looked for as a local
mirror at ``$FUSIONBENCH_HOME/datasets/<id>[/<hf_config>]``, then on the hub.

Logical splits map to physical ones per task (see :class:`SplitPlan`); a missing validation
split is a seeded hold-out of the train split, and ``limit`` keeps a seeded sample of rows.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import datasets
import numpy as np

from fusionbench.api.errors import ConfigError, DataError, choices_text
from fusionbench.api.taskpool import SPLITS
from fusionbench.utils.cache import content_hash, home

_LOCAL_PREFIXES = ("/", "~", ".", "$")
_HOME_VARIABLE = re.compile(r"^\$(\{FUSIONBENCH_HOME\}|FUSIONBENCH_HOME)(?=/|$)")


def is_local(location: str) -> bool:
    """Whether a task's ``dataset`` names a local path rather than a hub id."""
    return location.startswith(_LOCAL_PREFIXES)


def expand_path(location: str) -> Path:
    """A local dataset path with ``$FUSIONBENCH_HOME``, other variables and ``~`` expanded."""
    return Path(os.path.expandvars(_HOME_VARIABLE.sub(str(home()), location))).expanduser()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _load_local(path: Path, task: str, image_folder: bool, hint: str) -> datasets.DatasetDict:
    if not path.is_dir():
        raise DataError(f"dataset folder {str(path)!r} of task {task!r} does not exist; {hint}")
    try:
        if (path / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(path))
        if (path / "state.json").is_file():
            raise DataError(
                f"{str(path)!r} (task {task!r}) holds a single Dataset without split names; "
                f"save a DatasetDict instead, e.g. DatasetDict(train=..., test=...).save_to_disk(path)"
            )
        if image_folder:
            return datasets.load_dataset("imagefolder", data_dir=str(path), cache_dir=str(home() / "cache" / "hf-datasets"))
    except DataError:
        raise
    except Exception as exc:  # datasets raises many types for unreadable folders
        empty = [p.parent.name for p in sorted(path.glob("*/state.json")) if not json.loads(p.read_text()).get("_data_files")]
        if empty:  # datasets saves an empty split without data files and cannot load it back
            raise DataError(f"split {empty[0]!r} of dataset folder {str(path)!r} (task {task!r}) is empty; it needs at least one example") from exc
        raise DataError(f"cannot read dataset folder {str(path)!r} of task {task!r}: {_first_line(exc)}") from exc
    raise DataError(
        f"{str(path)!r} (task {task!r}) is not a `datasets` folder (no dataset_dict.json); "
        f"save one with DatasetDict(...).save_to_disk(path)"
    )


def local_folder(location: str, hf_config: Optional[str]) -> Optional[Path]:
    """The local folder a task's data is read from: its path, or a hub id's local mirror (None: the hub)."""
    if is_local(location):
        return expand_path(location)
    mirror = home() / "datasets" / location / (hf_config or "")
    return mirror if mirror.is_dir() else None


def folder_fingerprint(folder: Path) -> str:
    """A hash of every file's relative path, size and modification time under ``folder``."""
    stats = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
    return content_hash(stats)


def load_dataset_dict(
    location: str, hf_config: Optional[str], task: str, image_folder: bool, offline_hint: str
) -> datasets.DatasetDict:
    """Every split of a task's dataset, from a local path, a local mirror or the hub."""
    how = (
        f"give a local copy with taskpool.datasets.{task}=/path/to/{task} (a folder saved with "
        f"DatasetDict.save_to_disk{', or an image folder' if image_folder else ''})"
    )
    folder = local_folder(location, hf_config)
    if folder is not None:
        return _load_local(folder, task, image_folder, how)
    mirror = home() / "datasets" / location / (hf_config or "")
    try:
        return datasets.load_dataset(location, hf_config)
    except Exception as exc:  # offline, unknown id, gated repo: all mean "no data here"
        raise DataError(
            f"cannot load dataset {location!r}{f' ({hf_config})' if hf_config else ''} of task {task!r} "
            f"from the Hugging Face hub ({_first_line(exc)}); {how}, or place it at {mirror}; {offline_hint}"
        ) from exc


@dataclass(frozen=True)
class SplitPlan:
    """How a task's logical splits map to its dataset's physical splits.

    ``validation`` is a physical split name, ``"holdout"`` (always a seeded hold-out of
    ``train``) or ``"auto"`` (the physical ``validation`` split when the dataset has one,
    otherwise a hold-out). When the validation split is a hold-out, the logical train split is
    the rest of ``train``.
    """

    train: str = "train"
    validation: str = "auto"
    test: str = "test"


@dataclass
class Selection:
    """The rows of one task's logical split."""

    data: datasets.Dataset  # the physical split restricted to ``rows``
    physical: str  # physical split name
    rows: list[int]  # indices into the physical split, ascending
    source: str  # human-readable provenance, e.g. "train[held-out 10%, seed 0]"
    key: dict[str, Any]  # what determines the rows' content, for cache keys


def _files_identity(data: datasets.Dataset) -> list[tuple[str, int, int]]:
    """The arrow files behind a split, with size and modification time (changes when data changes)."""
    stats = [(f["filename"], os.stat(f["filename"])) for f in data.cache_files]
    return [(name, st.st_size, st.st_mtime_ns) for name, st in stats]


def select_rows(
    splits: datasets.DatasetDict,
    task: str,
    plan: SplitPlan,
    split: str,
    holdout_fraction: float,
    seed: int,
    limit: Optional[int],
    where: str,
) -> Selection:
    """Resolve logical ``split`` of ``task`` to physical rows (hold-out and ``limit`` applied)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid splits: {choices_text(SPLITS)}")
    holdout = plan.validation == "holdout" or (plan.validation == "auto" and "validation" not in splits)
    if split == "test":
        physical = plan.test
    elif split == "train" or holdout:
        physical = plan.train
    else:
        physical = "validation" if plan.validation == "auto" else plan.validation
    if physical not in splits:
        raise DataError(
            f"dataset {where} of task {task!r} has no split {physical!r} (needed for its {split} split); "
            f"its splits: {choices_text(splits)}; rename a split or set the task's {split}_split"
        )
    data = splits[physical]
    n = len(data)
    if n == 0:
        raise DataError(f"split {physical!r} of dataset {where} (task {task!r}) is empty; it needs at least one example")
    rows = np.arange(n)
    source = physical
    if holdout and split in ("train", "validation"):
        k = max(1, round(holdout_fraction * n))
        if k >= n:
            raise DataError(
                f"split {physical!r} of dataset {where} (task {task!r}) has {n} example(s), too few to hold out "
                f"{holdout_fraction * 100:g}% for validation; add examples or give the dataset a validation split"
            )
        order = np.random.default_rng([seed, 0]).permutation(n)
        rows = np.sort(order[:k] if split == "validation" else order[k:])
        part = "held-out" if split == "validation" else "without held-out"
        source = f"{physical}[{part} {holdout_fraction * 100:g}%, seed {seed}]"
    if limit is not None and limit < len(rows):
        rows = np.sort(np.random.default_rng([seed, 1]).choice(rows, size=limit, replace=False))
        source = f"{source}[sample of {limit}, seed {seed}]"
    picked = rows.tolist()
    key = {"files": _files_identity(data), "rows": content_hash(picked)}
    return Selection(data.select(picked), physical, picked, source, key)


def check_label_column(data: datasets.Dataset, column: str, count: Optional[int], what: str, task: str, where: str) -> None:
    """The label column exists and, when it is a ClassLabel and ``count`` is given, has ``count`` classes."""
    if column not in data.column_names:
        raise DataError(
            f"dataset {where} of task {task!r} has no label column {column!r}; its columns: "
            f"{choices_text(data.column_names)}; set the task's label_column"
        )
    feature = data.features[column]
    if count is not None and isinstance(feature, datasets.ClassLabel) and feature.num_classes != count:
        raise DataError(
            f"dataset {where} of task {task!r} has {feature.num_classes} classes in column {column!r} but the task "
            f"defines {count} {what}; make the {what} list match the dataset's classes"
        )


def check_label_range(labels: list[int], count: int, what: str, task: str, where: str) -> None:
    """Every label indexes one of the ``count`` classes."""
    bad = [y for y in labels if not 0 <= y < count]
    if bad:
        raise DataError(
            f"dataset {where} of task {task!r} has label {bad[0]} but the task defines {count} {what} "
            f"(labels 0..{count - 1}); make the {what} list match the dataset's classes"
        )
