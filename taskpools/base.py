"""The shared part of the dataset-backed task pools: task definitions, dataset locations, splits.

A pool's tasks are its packaged catalog (``catalog: true``) plus the ``definitions`` of its
config; a definition with a catalog task's name replaces that task. ``datasets.<task>``
replaces one task's dataset location (a hub id or a local path).
"""

from __future__ import annotations

import json
import string
from abc import abstractmethod
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar, Optional

import datasets
from omegaconf import DictConfig, OmegaConf

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.taskpool import TaskPool, TaskPoolConfig
from fusionbench.taskpools.datasets_io import Selection, SplitPlan, expand_path, folder_fingerprint, load_dataset_dict, local_folder, select_rows
from fusionbench.utils.cache import content_hash


@dataclass
class TaskDefinition:
    """Where a task's data lives and how its logical splits map to the dataset's splits."""

    dataset: str = ""  # hub id, or a local path starting with / ~ . or $FUSIONBENCH_HOME
    hf_config: Optional[str] = None  # hub dataset configuration (ignored for local paths)
    label_column: str = "label"
    train_split: str = "train"
    validation_split: str = "auto"  # a physical split, "auto" (validation if present, else hold-out) or "holdout"
    test_split: str = "test"


@dataclass
class DatasetTaskPoolConfig(TaskPoolConfig):
    catalog: bool = True  # include the packaged task definitions
    catalog_file: Optional[str] = None  # a YAML/JSON file of task definitions (the fields of `definitions`); relative dataset paths are resolved against its folder
    datasets: dict[str, str] = field(default_factory=dict)  # task -> hub id or local path, replacing its dataset
    holdout_fraction: float = 0.1  # share of train held out as validation where a dataset has none
    seed: int = 0  # seeds the hold-out and the `limit` sample


DEFINING_KEYS = ("catalog", "catalog_file", "datasets", "definitions")  # resolved into each task's definition in identity()


def template_fields(template: str, what: str) -> list[str]:
    """The placeholder names of a ``str.format`` template (``what`` names it in errors)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{what} {template!r} is not a valid template ({exc}); write placeholders as {{name}} and literal braces as {{{{ }}}}") from None


def with_catalog_file(config: Any) -> DictConfig:
    """``config`` with the definitions of its ``catalog_file`` added under its own ``definitions`` (which win)."""
    path = expand_path(config.catalog_file)
    if not path.is_file():
        raise ConfigError(f"taskpool.catalog_file {config.catalog_file!r} does not exist ({path}); give a YAML or JSON file of task definitions")
    definitions = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(definitions, dict):
        raise ConfigError(f"taskpool.catalog_file {str(path)!r} must map task names to task definitions")
    for definition in definitions.values():
        dataset = str(definition.get("dataset", ""))
        if dataset and not dataset.startswith(("/", "~", "$")) and (path.parent / dataset).exists():
            definition["dataset"] = str(path.parent / dataset)
    config = config if isinstance(config, DictConfig) else OmegaConf.structured(config)
    try:
        return OmegaConf.merge(config, {"definitions": definitions}, {"definitions": OmegaConf.to_container(config.definitions)})
    except Exception as exc:  # omegaconf reports unknown or ill-typed fields in several exception types
        raise ConfigError(f"taskpool.catalog_file {str(path)!r} has an invalid task definition: {str(exc).splitlines()[0]}") from None


def packaged_json(name: str) -> Any:
    """A task catalog shipped in ``fusionbench/taskpools/data``."""
    return json.loads((files("fusionbench.taskpools") / "data" / name).read_text())


class DatasetTaskPool(TaskPool):
    """A task pool whose tasks are defined by a dataset plus a task definition."""

    image_folders: ClassVar[bool] = False  # whether a local image folder is a valid dataset
    offline_hint: ClassVar[str]  # how to run without the hub, for error messages

    def __init__(self, config: Any, device: str = "cpu") -> None:
        if config.catalog_file:
            config = with_catalog_file(config)
        plain: Any = OmegaConf.to_object(config) if isinstance(config, DictConfig) else config
        self.definitions: dict[str, Any] = {**(self.catalog(plain) if plain.catalog else {}), **plain.definitions}
        for task, location in plain.datasets.items():
            if task not in self.definitions:
                raise ConfigError(
                    f"taskpool.datasets names unknown task {task!r}.{did_you_mean(task, self.definitions)} "
                    f"Valid tasks: {choices_text(self.definitions)}"
                )
            self.definitions[task] = replace(self.definitions[task], dataset=location)
        for task, definition in self.definitions.items():
            if not definition.dataset:
                raise ConfigError(f"task {task!r} has no dataset; set taskpool.definitions.{task}.dataset to a hub id or local path")
            self.check_definition(task, definition)
        if not 0.0 < plain.holdout_fraction < 1.0:
            raise ConfigError(f"taskpool.holdout_fraction must be between 0 and 1 (exclusive), got {plain.holdout_fraction}")
        super().__init__(config, device)
        self._splits: dict[tuple[str, Optional[str]], datasets.DatasetDict] = {}
        self._selections: dict[tuple[str, str, Optional[int]], Selection] = {}
        self._fingerprints: dict[Path, str] = {}

    @abstractmethod
    def catalog(self, config: Any) -> dict[str, Any]:
        """The packaged task definitions."""

    @abstractmethod
    def check_definition(self, task: str, definition: Any) -> None:
        """Raise ConfigError when a task definition is incomplete or invalid."""

    def all_tasks(self) -> list[str]:
        return list(self.definitions)

    def definition(self, task: str) -> Any:
        """The definition of ``task``; an unknown task is a ConfigError."""
        if task not in self.definitions:
            raise ConfigError(
                f"task pool {self.config.name!r} has no task {task!r}.{did_you_mean(task, self.definitions)} "
                f"Valid tasks: {choices_text(self.definitions)}"
            )
        return self.definitions[task]

    def selection(self, task: str, split: str, limit: Optional[int] = None) -> Selection:
        """The rows of ``task``'s logical ``split`` (capped by ``limit`` and ``config.limit``)."""
        d = self.definition(task)
        caps = [c for c in (limit, self.config.limit) if c is not None]
        if any(c <= 0 for c in caps):
            raise ConfigError(f"limit must be a positive number of examples, got {min(caps)}")
        memo = (task, split, min(caps, default=None))
        if memo not in self._selections:
            where = (d.dataset, d.hf_config)
            if where not in self._splits:
                self._splits[where] = load_dataset_dict(d.dataset, d.hf_config, task, self.image_folders, self.offline_hint)
            plan = SplitPlan(d.train_split, d.validation_split, d.test_split)
            name = repr(d.dataset) + (f" ({d.hf_config})" if d.hf_config else "")
            c = self.config
            self._selections[memo] = select_rows(self._splits[where], task, plan, split, c.holdout_fraction, c.seed, memo[2], name)
        return self._selections[memo]

    def _data_fingerprint(self, task: str) -> Optional[str]:
        """For data read from a local folder, a fingerprint of its files (so edited data is never mistaken for old)."""
        d = self.definitions[task]
        folder = local_folder(d.dataset, d.hf_config)
        if folder is None or not folder.is_dir():
            return None
        if folder not in self._fingerprints:
            self._fingerprints[folder] = folder_fingerprint(folder)[:16]
        return self._fingerprints[folder]

    def identity(self) -> dict[str, Any]:
        """The default identity, with the keys that define tasks replaced by each task's resolved definition and data."""
        tasks = {}
        for t in self.tasks:
            d = self.definitions[t]
            tasks[t] = {"dataset": d.dataset, "hf_config": d.hf_config, "definition": content_hash(asdict(d))[:16], "files": self._data_fingerprint(t)}
        kept = {k: v for k, v in super().identity().items() if k not in DEFINING_KEYS}
        return {**kept, "tasks": tasks}
