"""Every registered method on the reduced mini text pools (a tiny T5, GLUE-style tasks) in full, LoRA and L-LoRA mode
and, for the methods that merge dense Linear updates, in the adapter pools' delta space (issue 19); the data-based
methods against a copy of the task pool whose every test label is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
import yaml
from mini_helpers import reduced_configs
from omegaconf import OmegaConf
from test_taskpool_glue import make_pool

from fusionbench.api.errors import ConfigError
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.plugins import METHODS
from fusionbench.api.taskpool import TaskPool
from fusionbench.cli.main import main
from fusionbench.config.compose import compose
from fusionbench.engine.build import build
from fusionbench.methods.adamerging import AdaMerging, AdaMergingParams
from fusionbench.methods.fisher import FisherMerging, FisherParams
from fusionbench.methods.lorahub import LoraHub, LoraHubParams
from fusionbench.methods.regmean import RegMean, RegMeanParams
from fusionbench.methods.regmean_plusplus import RegMeanPlusPlus
from fusionbench.runner import RunSchema

SMALL = {  # within the reduced world's 8 examples per split (taskpool.limit), few steps and evaluations
    "lorahub": {"examples_per_task": 8, "budget": 5},
    "fisher": {"examples_per_task": 8},
    "regmean": {"examples_per_task": 8},
    "regmean_plusplus": {"examples_per_task": 8},
    "adamerging": {"steps": 3},
    "awd": {"steps": 3},
}
DENSE_ONLY = {"regmean", "regmean_plusplus", "knots"}  # adapter pools need modelpool.merge_space=delta
REFUSALS = {  # (method, full or adapter pool) -> its one ConfigError, naming the fix
    ("knots", "full"): "supports pools of mode lora or llora, but pool 'mini_t5_full' has mode full; use a LoRA or L-LoRA pool "
    "with modelpool.merge_space=delta",
    ("knots", "adapter"): "holds as LoRA factors .*set modelpool.merge_space=delta",
    ("regmean", "adapter"): "merges whole Linear weights, but pool 'mini_t5_.*holds adapter factors; set modelpool.merge_space=delta",
    ("regmean_plusplus", "adapter"): "merges whole Linear weights, but pool 'mini_t5_.*holds adapter factors; set modelpool.merge_space=delta",
}


def t5_world(tmp_path: Path, mode: str, *words: str, tasks: tuple[str, ...] = ("cola", "sst2", "mnli")) -> tuple[ModelPool, TaskPool]:
    """The reduced mini text pool of ``mode`` on three of its tasks, and its task pool (8 examples per split)."""
    pool_yaml = reduced_configs(tmp_path, f"mini_t5_{mode}", "mini_text7")
    pool, taskpool, _ = build(compose(["method=simple_average", f"modelpool={pool_yaml}", "taskpool.limit=8", *words], RunSchema), "cpu")
    return pool.subset(list(tasks)), taskpool


def label_scores(pool: ModelPool, taskpool: TaskPool, params: ParamDict) -> torch.Tensor:
    """The label-word scores of the T5 with ``params`` on the first 4 test examples of the pool's first task."""
    task = pool.tasks[0]
    with torch.no_grad():
        return taskpool.class_logits(pool.model(params), next(iter(taskpool.batches(task, "test", 4))), task)


def runs_and_is_evaluated(pool: ModelPool, taskpool: TaskPool, merged: ParamDict, unmerged: torch.Tensor, name: str) -> None:
    """The merged T5 scores the label words finitely, unlike the base model, and is evaluated on 8 test examples per task."""
    scores = label_scores(pool, taskpool, merged)
    assert scores.shape == unmerged.shape and torch.isfinite(scores).all() and not torch.allclose(scores, unmerged), name
    evaluation = taskpool.evaluate(pool.model(merged), pool.tasks, "test")
    assert set(evaluation) == set(pool.tasks) and all(s.n == 8 and 0 <= s.value <= 1 for s in evaluation.values()), name


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_every_method_merges_and_evaluates_on_a_tiny_t5_pool(mode: str, mini_text_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_text_home))
    pool, taskpool = t5_world(tmp_path, mode)
    base = pool.base()
    unmerged = label_scores(pool, taskpool, base)
    for name in METHODS.names():
        cls = METHODS.get(name)
        method = cls(cls.Params(**SMALL.get(name, {})))
        refusal = REFUSALS.get((name, "full" if mode == "full" else "adapter"))
        if refusal is not None:
            with pytest.raises(ConfigError, match=refusal):
                method.merge(pool, taskpool if method.needs_data else None)
            continue
        merged = method.merge(pool, taskpool if method.needs_data else None)
        assert list(merged) == list(base), name
        merged.assert_finite(name)
        assert all(merged[k].shape == base[k].shape and merged[k].dtype == base[k].dtype for k in base), name
        runs_and_is_evaluated(pool, taskpool, merged, unmerged, name)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "llora"])
def test_dense_only_methods_merge_t5_adapters_in_delta_space(mode: str, mini_text_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_text_home))
    adapters, _ = t5_world(tmp_path, mode)
    pool, taskpool = t5_world(tmp_path, mode, "modelpool.merge_space=delta")
    task, batch = pool.tasks[0], next(iter(taskpool.batches(pool.tasks[0], "test", 4)))
    with torch.no_grad():  # a task's dense update is its adapter folded (exact for L-LoRA too)
        folded = taskpool.class_logits(pool.model(pool.finetuned(task)), batch, task)
        torch.testing.assert_close(taskpool.class_logits(adapters.model(adapters.finetuned(task)), batch, task), folded, atol=1e-4, rtol=0)
    base = pool.base()
    unmerged = label_scores(pool, taskpool, base)
    for name in sorted(DENSE_ONLY):
        cls = METHODS.get(name)
        merged = cls(cls.Params(**SMALL.get(name, {}))).merge(pool, taskpool if cls.needs_data else None)
        merged.assert_finite(name)
        assert {k: (v.shape, v.dtype) for k, v in merged.items()} == {k: (v.shape, v.dtype) for k, v in base.items()}, name
        runs_and_is_evaluated(pool, taskpool, merged, unmerged, name)


# ------------------------------------------------------------------------ poisoned test labels
def poisoned_taskpool(home: Path, tmp_path: Path) -> TaskPool:
    """mini_text7 over copies of the reduced world's datasets whose every test label is wrong (the next class; a
    similarity score s becomes 5 - s); train and validation untouched."""
    world = home / "mini" / "text-seed0-reduced"
    definitions = yaml.safe_load((world / "definitions.yaml").read_text())
    for task, definition in definitions.items():
        data = datasets.load_from_disk(str(world / definition["dataset"]))
        classes = len(definition.get("targets", []))

        def wrong(row: dict[str, Any], classes: int = classes) -> dict[str, Any]:
            return {"label": (row["label"] + 1) % classes if classes else 5.0 - row["label"]}

        data["test"] = data["test"].map(wrong, keep_in_memory=True)
        definition["dataset"] = str(tmp_path / "poisoned" / task)
        data.save_to_disk(definition["dataset"])
    (tmp_path / "poisoned" / "definitions.yaml").write_text(yaml.safe_dump(definitions))
    config = OmegaConf.load(tmp_path / "mini_text7.yaml")  # written by reduced_configs
    config.catalog_file = str(tmp_path / "poisoned" / "definitions.yaml")
    OmegaConf.save(config, tmp_path / "poisoned.yaml")
    return make_pool(f"taskpool={tmp_path / 'poisoned.yaml'}", "taskpool.limit=8")


@pytest.mark.slow
def test_data_based_methods_never_read_the_test_labels_of_a_t5_task_pool(mini_text_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_text_home))
    pool, clean = t5_world(tmp_path, "full", tasks=("sst2", "mnli", "stsb"))  # two and three classes, and a Spearman task
    poisoned = poisoned_taskpool(mini_text_home, tmp_path)
    for task in pool.tasks:
        clean_labels, poisoned_labels = (next(iter(p.batches(task, "test", 8))).labels for p in (clean, poisoned))
        assert not torch.equal(clean_labels, poisoned_labels), task
        torch.testing.assert_close(next(iter(poisoned.batches(task, "train", 8))).labels, next(iter(clean.batches(task, "train", 8))).labels)
    start = AdaMerging(AdaMergingParams(steps=0)).merge(pool, clean)
    methods = [
        AdaMerging(AdaMergingParams(steps=2, lr=1e-2, batch_size=4)),
        RegMean(RegMeanParams(split="test", examples_per_task=8)),
        RegMeanPlusPlus(RegMeanParams(split="test", examples_per_task=8)),
        FisherMerging(FisherParams(examples_per_task=4)),
        LoraHub(LoraHubParams(examples_per_task=8, budget=5)),
    ]
    for method in methods:
        merged = method.merge(pool, clean)
        assert not merged.allclose(start, rtol=0, atol=1e-7), method.name  # the data changed the merge
        assert merged.allclose(method.merge(pool, poisoned), rtol=0, atol=0), method.name


@pytest.mark.slow
def test_a_dense_only_method_on_a_t5_adapter_pool_is_one_error_line_and_runs_in_delta_space(
    mini_text_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_text_home))
    words = ["run", "method=regmean", f"modelpool={reduced_configs(tmp_path, 'mini_t5_llora', 'mini_text7')}", "taskpool.limit=8"]
    assert main([*words, f"output_dir={tmp_path / 'refused'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "set modelpool.merge_space=delta" in err[0]
    assert main([*words, "modelpool.merge_space=delta", "method.examples_per_task=8", f"output_dir={tmp_path / 'run'}"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["method"]["data"] == {"split": "train", "examples_per_task": 8, "labels": False, "test_time_adaptation": False}
    assert len(report["tasks"]) == 7 and all(score["n"] == 8 for score in report["tasks"].values())
