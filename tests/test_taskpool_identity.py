"""A task pool's identity keys the on-disk cache of reference scores: every config key that changes what is scored is in it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import pytest
from omegaconf import OmegaConf
from scalar_world import ScalarTaskPool

from fusionbench.api.plugins import TASKPOOLS
from fusionbench.api.taskpool import TaskPool, TaskPoolConfig
from fusionbench.cli.main import main
from fusionbench.config.compose import compose
from fusionbench.taskpools import BUILTINS
from fusionbench.utils.cache import content_hash


@dataclasses.dataclass
class Top:
    taskpool: Any = None


def references(report: Path) -> dict[str, tuple[float, float, int]]:
    tasks = json.loads(report.read_text())["tasks"]
    return {t: (row["finetuned"], row["pretrained"], row["n"]) for t, row in tasks.items()}


@pytest.mark.parametrize("change", ["taskpool.seed=3", "taskpool.examples=64"])
def test_a_changed_dummy_task_pool_is_scored_again_not_read_from_the_cache(
    change: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    words = ["run", "method=simple_average", "modelpool=dummy"]
    assert main([*words, f"output_dir={tmp_path / 'first'}"]) == 0
    assert main([*words, change, f"output_dir={tmp_path / 'again'}"]) == 0, capsys.readouterr().err
    monkeypatch.setenv("FUSIONBENCH_HOME", str(tmp_path / "fresh-home"))
    assert main([*words, change, f"output_dir={tmp_path / 'fresh'}"]) == 0
    first, again, fresh = (references(tmp_path / name / "report.json") for name in ("first", "again", "fresh"))
    assert again == fresh
    assert first != fresh  # the change does change the references: a cached read would have been wrong


def catalog_file(folder: Path, kind: str) -> str:
    """A task catalog redefining one packaged task of ``kind`` (glue: cola, clip_vision: eurosat) with other prompts."""
    task = {
        "glue": {"cola": {"dataset": "nyu-mll/glue", "hf_config": "cola", "input_text": "cola: {sentence}", "targets": ["no", "yes"]}},
        "clip_vision": {"eurosat": {"dataset": "tanganke/eurosat", "classnames": ["a", "b"], "templates": ["a photo of {c}."]}},
    }[kind]
    path = folder / f"{kind}_catalog.yaml"
    OmegaConf.save(OmegaConf.create(task), path)
    return str(path)


def dataset_changes(kind: str, task: str, folder: Path) -> dict[str, dict[str, Any]]:
    """A change of each task-defining key of a dataset task pool, for a pool of the one task ``task``."""
    definition = OmegaConf.to_container(OmegaConf.load(catalog_file(folder, kind)))[task]  # type: ignore[index]
    return {
        "catalog": {"tasks": [], "catalog": False, "definitions": {task: definition}},  # every task -> this one task
        "catalog_file": {"catalog_file": catalog_file(folder, kind)},
        "datasets": {"datasets": {task: "/data/elsewhere"}},
        "definitions": {"definitions": {task: definition}},
        "seed": {"seed": 1},
        "holdout_fraction": {"holdout_fraction": 0.25},
    }


# per built-in task pool: its config, and for every key its Config adds to TaskPoolConfig, a change of that key
SCORING: dict[str, tuple[list[str], Callable[[Path], dict[str, dict[str, Any]]]]] = {
    "dummy": (["taskpool=dummy"], lambda folder: {"seed": {"seed": 3}, "examples": {"examples": 64}}),
    "glue": (
        ["taskpool=glue7", "taskpool.tasks=[cola]"],
        lambda folder: {
            **dataset_changes("glue", "cola", folder),
            "templates": {"templates": "paper"},
            "max_new_tokens": {"max_new_tokens": 3},
            "max_input_length": {"max_input_length": 64},
        },
    ),
    "clip_vision": (["taskpool=clip_vision7", "taskpool.tasks=[eurosat]"], lambda folder: dataset_changes("clip_vision", "eurosat", folder)),
}


def make_pool(words: list[str], changes: dict[str, Any]) -> TaskPool:
    cfg = OmegaConf.merge(compose(words, Top, groups=("taskpool",)).taskpool, changes)
    return TASKPOOLS.get(cfg.type)(cfg)


@pytest.mark.parametrize("kind", sorted(BUILTINS))
def test_every_key_a_builtin_task_pool_adds_changes_its_identity(kind: str, tmp_path: Path) -> None:
    words, changes_of = SCORING[kind]
    changes = changes_of(tmp_path)
    own = {f.name for f in fields(TASKPOOLS.get(kind).Config)} - {f.name for f in fields(TaskPoolConfig)}
    assert set(changes) == own  # a new config key needs a row here, and a place in the identity if it changes a score
    before = content_hash(make_pool(words, {}).identity())
    for key, change in changes.items():
        assert content_hash(make_pool(words, change).identity()) != before, key
    assert content_hash(make_pool(words, {"batch_size": 7}).identity()) == before  # how examples are batched scores nothing


def test_a_plugin_task_pools_own_keys_are_in_its_default_identity() -> None:
    @dataclasses.dataclass
    class ShiftedConfig(TaskPoolConfig):
        shift: float = 0.0
        weights: dict[str, float] = dataclasses.field(default_factory=dict)

    class Shifted(ScalarTaskPool):  # a plugin that adds keys and keeps the default identity()
        name, Config = "shifted", ShiftedConfig

    config = OmegaConf.structured(ShiftedConfig(type="shifted", name="mine", shift=0.25, weights={"alpha": 2.0}))
    expected = {"type": "shifted", "name": "mine", "version": "1", "limit": None, "shift": 0.25, "weights": {"alpha": 2.0}}
    identity = Shifted(config).identity()
    assert identity == expected and json.loads(json.dumps(identity)) == expected  # plain JSON, as reports and cache keys need
