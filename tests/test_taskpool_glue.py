"""The text-to-text (GLUE) task pool against independently computed accuracy and Spearman, its cache and data API."""

from __future__ import annotations

import dataclasses
import json
import math
from importlib.resources import files
from pathlib import Path
from typing import Any, Optional, cast

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tiny_data import save_text_dataset, tiny_t5

from fusionbench.api.families import TextToTextModel
from fusionbench.api.plugins import TASKPOOLS
from fusionbench.api.taskpool import TaskPool
from fusionbench.config.compose import compose
from fusionbench.taskpools.glue import GlueTaskPool, GlueTaskPoolConfig, TextTask

WORDS = ["red", "blue", "cat", "dog", "runs", "sleeps", "big", "small", "the", "a"]
TEMPLATE = "premise: {sentence1} hypothesis: {sentence2}"
GLUE = json.loads((files("fusionbench.taskpools") / "data" / "glue_tasks.json").read_text())


@dataclasses.dataclass
class Top:
    taskpool: Any = None


def make_pool(*words: str) -> TaskPool:
    cfg = compose(list(words), Top, groups=("taskpool",))
    return TASKPOOLS.get(cfg.taskpool.type)(cfg.taskpool)


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 8)))) for _ in range(n)]


def pairs(n: int, seed: int) -> dict[str, list[str]]:
    return {"sentence1": sentences(n, seed), "sentence2": sentences(n, seed + 100)}


def greedy(model: TextToTextModel, texts: list[str], max_new_tokens: int = 1) -> list[str]:
    """Greedy outputs one unpadded input at a time, straight from the T5 module."""
    outputs = []
    with torch.no_grad():
        for text in texts:
            generated = model.module.generate(**model.tokenizer([text], return_tensors="pt"), max_new_tokens=max_new_tokens, do_sample=False)
            outputs.append(model.tokenizer.decode(generated[0], skip_special_tokens=True).strip())
    return outputs


def half_right(outputs: list[str], targets: list[str]) -> list[int]:
    """Labels that agree with the outputs on even rows and disagree on odd rows."""
    return [targets.index(o) if i % 2 == 0 else 1 - targets.index(o) for i, o in enumerate(outputs)]


def render(template: str, columns: dict[str, list[str]]) -> list[str]:
    n = len(next(iter(columns.values())))
    return [template.format(**{k: v[i] for k, v in columns.items()}) for i in range(n)]


def custom_task(tmp_path: Path, targets: list[str] = ["yes", "no"], n: int = 13) -> tuple[TextToTextModel, str, list[int], list[str]]:
    """A tiny T5 and a saved pair task whose test labels are half right; returns (model, yaml, labels, outputs)."""
    test = pairs(n, seed=1)
    model = tiny_t5(render(TEMPLATE, test), targets)
    outputs = greedy(model, render(TEMPLATE, test))
    labels = half_right(outputs, targets)
    train = {**pairs(20, seed=2), "label": [i % 2 for i in range(20)]}
    path = save_text_dataset(tmp_path / "pairs", {"train": train, "test": {**test, "label": labels}}, label_names=targets)
    definition = {"dataset": str(path), "input_text": TEMPLATE, "targets": targets}
    config = tmp_path / "pairs.yaml"
    OmegaConf.save(OmegaConf.create({"type": "glue", "catalog": False, "max_new_tokens": 1, "batch_size": 3, "definitions": {"pairs": definition}}), config)
    return model, str(config), labels, outputs


def test_custom_task_from_yaml_matches_independent_accuracy(tmp_path: Path) -> None:
    model, config, labels, outputs = custom_task(tmp_path)
    pool = make_pool(f"taskpool={config}")
    assert pool.all_tasks() == ["pairs"]
    score = pool.evaluate(model, ["pairs"])["pairs"]
    p = sum(o == ["yes", "no"][y] for o, y in zip(outputs, labels)) / len(labels)
    assert 0.0 < p < 1.0 and len(set(outputs)) == 2
    assert score.metric == "accuracy" and score.n == len(labels)
    assert score.value == pytest.approx(p, abs=1e-12)
    assert score.stderr == pytest.approx(math.sqrt(p * (1 - p) / len(labels)))
    assert score.extra["source"] == "test"
    assert pool.predict(model, "pairs").tolist() == [["yes", "no"].index(o) for o in outputs]

    definition = TextTask(**cast(dict, OmegaConf.to_container(OmegaConf.load(config).definitions.pairs)))
    direct = GlueTaskPool(GlueTaskPoolConfig(type="glue", catalog=False, max_new_tokens=1, definitions={"pairs": definition}))
    assert direct.evaluate(model, ["pairs"])["pairs"] == score


@pytest.mark.parametrize("templates", ["paper", "improved"])
def test_glue7_on_a_local_copy_reports_on_the_validation_split(tmp_path: Path, templates: str) -> None:
    rte = GLUE["tasks"]["rte"]["templates"][templates]
    targets = [rte["target_text"]["0"], rte["target_text"]["1"]]
    validation = pairs(11, seed=3)
    model = tiny_t5(render(rte["input_text"], validation), targets)
    outputs = greedy(model, render(rte["input_text"], validation))
    labels = half_right(outputs, targets)
    splits = {
        "train": {**pairs(20, seed=4), "label": [i % 2 for i in range(20)]},
        "validation": {**validation, "label": labels},
        "test": {**pairs(5, seed=5), "label": [-1] * 5},  # GLUE hides its test labels
    }
    path = save_text_dataset(tmp_path / "rte", splits)
    pool = make_pool("taskpool=glue7", f"taskpool.templates={templates}", f"taskpool.datasets.rte={path}", "taskpool.tasks=[rte]", "taskpool.max_new_tokens=1")
    score = pool.evaluate(model, ["rte"], "test")["rte"]
    assert score.value == pytest.approx(sum(o == targets[y] for o, y in zip(outputs, labels)) / 11, abs=1e-12)
    assert (score.n, score.extra["source"]) == (11, "validation")
    assert pool.identity()["templates"] == templates

    val = pool.selection("rte", "validation")
    assert val.physical == "train" and val.source == "train[held-out 10%, seed 0]" and len(val.rows) == 2
    assert sorted(val.rows + pool.selection("rte", "train").rows) == list(range(20))
    assert make_pool("taskpool=glue7", f"taskpool.datasets.rte={path}").selection("rte", "validation").rows == val.rows


def test_packaged_glue_task_lists() -> None:
    paper7 = ["cola", "mnli", "mrpc", "qqp", "rte", "sst2", "stsb"]
    assert make_pool("taskpool=glue7").tasks == paper7
    assert make_pool("taskpool=glue8").tasks == paper7 + ["qnli"]
    mnli = make_pool("taskpool=glue8").definition("mnli")
    assert (mnli.test_split, mnli.validation_split, mnli.targets) == ("validation_matched", "holdout", ["entailment", "neutral", "contradiction"])


def ranks(values: list[float]) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = np.zeros(len(values))
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def test_stsb_spearman_and_unparseable_outputs(tmp_path: Path) -> None:
    stsb = GLUE["tasks"]["stsb"]["templates"]["paper"]
    numbers = ["0.0", "1.0", "2.5", "4.0", "5.0"]
    validation = pairs(24, seed=6)
    model = tiny_t5(render(stsb["input_text"], validation), numbers + ["unsure"])
    outputs = greedy(model, render(stsb["input_text"], validation))
    labels = [float(x) for x in np.round(np.random.default_rng(7).uniform(0, 5, 24), 2)]
    splits = {"train": {**pairs(10, seed=8), "label": [1.0] * 10}, "validation": {**validation, "label": labels}}
    path = save_text_dataset(tmp_path / "stsb", splits)
    pool = make_pool("taskpool=glue7", "taskpool.templates=paper", f"taskpool.datasets.stsb={path}", "taskpool.tasks=[stsb]", "taskpool.max_new_tokens=1")
    score = pool.evaluate(model, ["stsb"])["stsb"]

    unparseable = sum(o not in numbers for o in outputs)
    assert 0 < unparseable < 24 and len(set(outputs)) > 2
    predicted: list[Optional[float]] = [float(o) if o in numbers else None for o in outputs]
    lowest = min(p for p in predicted if p is not None) - 1.0  # unparseable outputs rank below every number
    rho = float(np.corrcoef(ranks([lowest if p is None else p for p in predicted]), ranks(labels))[0, 1])
    assert score.metric == "spearman" and score.n == 24
    assert score.value == pytest.approx(rho, abs=1e-9)
    assert score.extra["unparseable"] == unparseable
    assert pool.predict(model, "stsb").tolist() == pytest.approx([math.nan if p is None else p for p in predicted], nan_ok=True)
    assert score.stderr == pytest.approx((1 - rho**2) * math.sqrt(1.06 / 21))

    batch = next(iter(pool.batches("stsb", "test", 4)))
    assert batch.targets == [f"{y:.1f}" for y in labels[:4]]


def test_second_evaluation_skips_tokenisation(tmp_path: Path) -> None:
    model, config, _, _ = custom_task(tmp_path)
    model.tokenizer.calls = 0
    first = make_pool(f"taskpool={config}").evaluate(model, ["pairs"])["pairs"]
    assert model.tokenizer.calls == 1  # one batched call for the whole (small) split
    pool = make_pool(f"taskpool={config}")
    assert pool.evaluate(model, ["pairs"])["pairs"] == first
    assert model.tokenizer.calls == 1
    other = dataclasses.replace(model, tokenizer_fingerprint="another tokenizer")
    assert pool.evaluate(other, ["pairs"])["pairs"] == first
    assert model.tokenizer.calls == 2


def test_batches_and_seq2seq_loss(tmp_path: Path) -> None:
    model, config, labels, _ = custom_task(tmp_path)
    pool = make_pool(f"taskpool={config}")
    batches = list(pool.batches("pairs", "test", 5))
    assert [len(b.inputs) for b in batches] == [5, 5, 3]
    test = pairs(13, seed=1)
    assert [x for b in batches for x in b.inputs] == render(TEMPLATE, test)
    assert [t for b in batches for t in b.targets] == [["yes", "no"][y] for y in labels]

    batch = batches[0]
    loss = pool.loss(model, batch, "pairs")
    enc = model.tokenizer(render(TEMPLATE, test)[:5], padding=True, return_tensors="pt")
    target_ids = model.tokenizer([["yes", "no"][y] for y in labels[:5]], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model.module(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=target_ids).logits
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_ids.reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert model.module.shared.weight.grad is not None
