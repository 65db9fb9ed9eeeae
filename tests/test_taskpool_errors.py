"""Bad input to the task pools: each is a one-line ConfigError or DataError that says how to fix it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import datasets
import pytest
import torch
from omegaconf import OmegaConf
from tiny_data import TinyCLIP, random_images, save_image_dataset, save_text_dataset, tiny_clip, tiny_t5

from fusionbench.api.errors import ConfigError, DataError, FusionBenchError
from fusionbench.api.plugins import TASKPOOLS
from fusionbench.api.taskpool import TaskPool
from fusionbench.config.compose import compose
from fusionbench.taskpools.datasets_io import SplitPlan, select_rows

CLASSES = ["circle", "square", "triangle"]
TEMPLATES = ["a photo of a {c} ."]


@dataclasses.dataclass
class Top:
    taskpool: Any = None


def make_pool(*words: str) -> TaskPool:
    cfg = compose(list(words), Top, groups=("taskpool",))
    return TASKPOOLS.get(cfg.taskpool.type)(cfg.taskpool)


def raises(error: type[FusionBenchError], match: str, action: Callable[[], Any]) -> str:
    """Run ``action``; it must raise ``error`` with a one-line message matching ``match``."""
    with pytest.raises(error, match=match) as info:
        action()
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.fixture(scope="module")
def tiny() -> TinyCLIP:
    return tiny_clip([t.format(c=c) for t in TEMPLATES for c in CLASSES])


def vision_yaml(tmp_path: Path, dataset: str, config: dict[str, Any] | None = None, **definition: Any) -> str:
    spec = {"dataset": dataset, "classnames": CLASSES, "templates": TEMPLATES, **definition}
    path = tmp_path / "vision.yaml"
    OmegaConf.save(OmegaConf.create({"type": "clip_vision", "catalog": False, "definitions": {"shapes": spec}, **(config or {})}), path)
    return str(path)


def images(tmp_path: Path, labels: list[int], classnames: list[str] | None = CLASSES, name: str = "data", **columns: str) -> str:
    split = (random_images(len(labels), seed=0), labels)
    return str(save_image_dataset(tmp_path / name, {"train": split, "test": split}, classnames, **columns))


# ------------------------------------------------------------------ config
def test_unknown_tasks_and_keys(tmp_path: Path, tiny: TinyCLIP) -> None:
    config = vision_yaml(tmp_path, images(tmp_path, [0, 1, 2]))
    raises(ConfigError, "has no task 'nope'; valid tasks: shapes", lambda: make_pool(f"taskpool={config}", "taskpool.tasks=[nope]"))
    message = raises(ConfigError, "no task 'shapez'", lambda: make_pool(f"taskpool={config}").evaluate(tiny.model, ["shapez"]))
    assert "Did you mean 'shapes'?" in message
    raises(ConfigError, "taskpool.datasets names unknown task 'eurosatt'", lambda: make_pool("taskpool=clip_vision7", "taskpool.datasets.eurosatt=/x"))
    raises(ConfigError, "unknown split 'dev'", lambda: make_pool(f"taskpool={config}").evaluate(tiny.model, ["shapes"], "dev"))
    raises(ConfigError, "unknown key", lambda: make_pool(f"taskpool={vision_yaml(tmp_path, '/x', colour='red')}"))


@pytest.mark.parametrize("limit", [0, -3])
def test_non_positive_limit(tmp_path: Path, limit: int) -> None:
    config = vision_yaml(tmp_path, images(tmp_path, [0, 1, 2]))
    raises(ConfigError, "limit must be a positive number", lambda: make_pool(f"taskpool={config}", f"taskpool.limit={limit}"))
    raises(ConfigError, "limit must be a positive number", lambda: list(make_pool(f"taskpool={config}").batches("shapes", "test", 2, limit=limit)))


def test_invalid_vision_definitions(tmp_path: Path) -> None:
    for template in ["a photo", "a {c} of {size}", "a {c"]:
        raises(ConfigError, "template", lambda: make_pool(f"taskpool={vision_yaml(tmp_path, '/x', templates=[template])}"))
    raises(ConfigError, "no class names", lambda: make_pool(f"taskpool={vision_yaml(tmp_path, '/x', classnames=[])}"))
    raises(ConfigError, "has no dataset", lambda: make_pool(f"taskpool={vision_yaml(tmp_path, '')}"))
    raises(ConfigError, "holdout_fraction must be between 0 and 1", lambda: make_pool(f"taskpool={vision_yaml(tmp_path, '/x')}", "taskpool.holdout_fraction=1.5"))


# -------------------------------------------------------------------- data
def test_dataset_disagreeing_with_its_class_names(tmp_path: Path, tiny: TinyCLIP) -> None:
    def evaluate(dataset: str, **definition: Any) -> Any:
        return make_pool(f"taskpool={vision_yaml(tmp_path, dataset, **definition)}").evaluate(tiny.model, ["shapes"])

    four = images(tmp_path, [0, 1, 2, 3], CLASSES + ["star"], name="four")
    raises(DataError, "has 4 classes in column 'label' but the task defines 3 class names", lambda: evaluate(four))
    ints = images(tmp_path, [0, 1, 5], None, name="ints")
    raises(DataError, "has label 5 but the task defines 3 class names", lambda: evaluate(ints))
    other = images(tmp_path, [0, 1, 2], name="other", image_column="img", label_column="target")
    raises(DataError, "no label column 'label'; its columns: img, target; set the task's label_column", lambda: evaluate(other))
    raises(DataError, "no image column 'image'", lambda: evaluate(other, label_column="target"))
    assert evaluate(other, label_column="target", image_column="img")["shapes"].n == 3


def test_empty_missing_and_too_small_splits(tmp_path: Path, tiny: TinyCLIP) -> None:
    empty = str(save_image_dataset(tmp_path / "empty", {"train": (random_images(3, 0), [0, 1, 2]), "test": ([], [])}, CLASSES))
    raises(DataError, "split 'test' of dataset folder .* is empty", lambda: make_pool(f"taskpool={vision_yaml(tmp_path, empty)}").evaluate(tiny.model, ["shapes"]))
    in_memory = datasets.DatasetDict(test=datasets.Dataset.from_dict({"label": []}))
    raises(DataError, "split 'test' of dataset 'x' .* is empty", lambda: select_rows(in_memory, "shapes", SplitPlan(), "test", 0.1, 0, None, "'x'"))
    three = images(tmp_path, [0, 1, 2])
    pool = make_pool(f"taskpool={vision_yaml(tmp_path, three, test_split='eval')}")
    raises(DataError, "has no split 'eval' .*its splits: test, train", lambda: pool.evaluate(tiny.model, ["shapes"]))
    one = str(save_image_dataset(tmp_path / "one", {"train": (random_images(1, 0), [0]), "test": (random_images(1, 0), [0])}, CLASSES))
    raises(DataError, "has 1 example.*too few to hold out", lambda: make_pool(f"taskpool={vision_yaml(tmp_path, one)}").evaluate(tiny.model, ["shapes"], "validation"))


def test_unreadable_locations(tmp_path: Path, tiny: TinyCLIP) -> None:
    def evaluate(dataset: str) -> Any:
        return make_pool(f"taskpool={vision_yaml(tmp_path, dataset)}").evaluate(tiny.model, ["shapes"])

    raises(DataError, "does not exist; give a local copy with taskpool.datasets.shapes=", lambda: evaluate(str(tmp_path / "missing")))
    single = tmp_path / "single"
    datasets.Dataset.from_dict({"label": [0]}).save_to_disk(str(single))
    raises(DataError, "single Dataset without split names", lambda: evaluate(str(single)))


def test_offline_hub_dataset_says_how_to_provide_it(monkeypatch: pytest.MonkeyPatch, tiny: TinyCLIP) -> None:
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    message = raises(DataError, "cannot load dataset 'tanganke/eurosat' of task 'eurosat'",
                     lambda: make_pool("taskpool=clip_vision7", "taskpool.tasks=[eurosat]").evaluate(tiny.model, ["eurosat"]))
    assert "taskpool.datasets.eurosat=/path/to/eurosat" in message and "taskpool=mini_vision7 runs fully offline" in message
    t5 = tiny_t5(["cola sentence: x"], ["acceptable", "unacceptable"])
    message = raises(DataError, r"cannot load dataset 'nyu-mll/glue' \(cola\) of task 'cola'",
                     lambda: make_pool("taskpool=glue7", "taskpool.tasks=[cola]").evaluate(t5, ["cola"]))
    assert "taskpool.datasets.cola=/path/to/cola" in message


# ------------------------------------------------------------------- model
def test_model_output_width_must_match_text_embeddings(tmp_path: Path, tiny: TinyCLIP) -> None:
    narrow = dataclasses.replace(tiny.model, vision=torch.nn.Sequential(tiny.model.vision, torch.nn.Linear(16, 8)))
    pool = make_pool(f"taskpool={vision_yaml(tmp_path, images(tmp_path, [0, 1, 2]))}")
    raises(ConfigError, "image embeddings have width 8 but its text embeddings have width 16", lambda: pool.evaluate(narrow, ["shapes"]))


# -------------------------------------------------------------------- text
def test_text_task_errors(tmp_path: Path) -> None:
    def text_pool(dataset: str, config: dict[str, Any] | None = None, **definition: Any) -> TaskPool:
        spec = {"dataset": dataset, "input_text": "q: {question}", "targets": ["no", "yes"], **definition}
        path = tmp_path / "text.yaml"
        OmegaConf.save(OmegaConf.create({"type": "glue", "catalog": False, "definitions": {"qa": spec}, **(config or {})}), path)
        return make_pool(f"taskpool={path}")

    model = tiny_t5(["q: a"], ["no", "yes"])
    rows = {"question": ["a", "b", "c"], "label": [0, 1, 1]}
    named = str(save_text_dataset(tmp_path / "named", {"test": rows}, label_names=["no", "yes", "maybe"]))
    raises(DataError, "has 3 classes in column 'label' but the task defines 2 target texts", lambda: text_pool(named).evaluate(model, ["qa"]))
    ints = str(save_text_dataset(tmp_path / "ints", {"test": {**rows, "label": [0, 2, 1]}}))
    raises(DataError, "has label 2 but the task defines 2 target texts", lambda: text_pool(ints).evaluate(model, ["qa"]))
    raises(DataError, "has no column 'query' used by its input template; its columns: label, question",
           lambda: text_pool(ints, input_text="q: {query}").evaluate(model, ["qa"]))
    for template in ["plain", "q: {}", "q: {question"]:
        raises(ConfigError, "input_text", lambda: text_pool(ints, input_text=template))
    raises(ConfigError, "metric 'f1'; valid metrics: accuracy, spearman", lambda: text_pool(ints, metric="f1"))
    raises(ConfigError, "accuracy task 'qa' has no target texts", lambda: text_pool(ints, targets=[]))
    raises(ConfigError, "templates='fancy' is not a template set; valid: improved, paper", lambda: make_pool("taskpool=glue7", "taskpool.templates=fancy"))
    raises(ConfigError, "target_format '{:d}' of task 'qa' cannot format a number", lambda: text_pool(ints, metric="spearman", target_format="{:d}"))
    raises(ConfigError, "taskpool.max_new_tokens must be a positive number of tokens, got 0", lambda: text_pool(ints, config={"max_new_tokens": 0}))
