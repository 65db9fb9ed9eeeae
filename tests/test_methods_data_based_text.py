"""Fisher merging, RegMean and AdaMerging on text-to-text (T5) pools (issue 19): the GLUE task pool's class
scores are the log-likelihoods of each task's label words, checked against transformers' own seq2seq loss;
the methods against independent expectations on a tiny T5 pool, and merged + evaluated on the reduced mini
text pools."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from test_taskpool_glue import TEMPLATE, make_pool, pairs, render
from tiny_data import save_text_dataset, tiny_t5

from fusionbench.api.errors import DataError
from fusionbench.api.families import TextToTextModel
from fusionbench.api.params import ParamDict
from fusionbench.cli.main import main
from fusionbench.engine.memory_pool import ParamDictPool
from fusionbench.methods.adamerging import AdaMerging, AdaMergingParams
from fusionbench.methods.fisher import FisherMerging, FisherParams
from fusionbench.methods.regmean import RegMean, RegMeanParams
from fusionbench.methods.task_arithmetic import TaskArithmetic
from fusionbench.taskpools.glue import GlueTaskPool, GlueTaskPoolConfig, TextTask
from fusionbench.taskpools.text_scores import label_word_scores

TARGETS = ["yes", "no"]
TASKS = ["one", "two"]


def sequence_log_likelihood(model: TextToTextModel, text: str, word: str) -> torch.Tensor:
    """log p(word | text) from transformers' mean token cross-entropy of one unpadded pair."""
    ids = model.tokenizer([text], return_tensors="pt")
    labels = model.tokenizer([word], return_tensors="pt")["input_ids"]
    return -model.module(**ids, labels=labels).loss * labels.shape[1]


def test_label_word_scores_are_transformers_sequence_log_likelihoods() -> None:
    texts = render(TEMPLATE, pairs(5, seed=3))
    model = tiny_t5(texts, TARGETS)
    words = ["yes", "no", "yes no yes"]  # a three-token word: every token's log-probability counts
    encoded = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = label_word_scores(model.module, model.tokenizer, encoded, words)
        expected = torch.stack([torch.stack([sequence_log_likelihood(model, t, w) for w in words]) for t in texts])
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- a tiny T5 world
def text_world(tmp_path: Path, poisoned: bool = False) -> tuple[ParamDictPool, Any, TextToTextModel]:
    """Two pair tasks (train, validation, test) over one tiny T5 and a pool of two perturbed copies of it."""
    texts = render(TEMPLATE, pairs(40, seed=5))
    model = tiny_t5(texts, TARGETS)
    with torch.no_grad():  # tiny_t5's label words win by a thousand nats; soften them so gradients and entropies are not zero
        model.module.shared.weight[model.tokenizer.convert_tokens_to_ids(TARGETS)] *= 0.002
    definitions = {}
    for k, task in enumerate(TASKS):
        splits = {}
        for s, split in enumerate(("train", "validation", "test")):
            columns = pairs(12, seed=10 * k + s)
            labels = [(i + k) % 2 for i in range(12)]
            splits[split] = {**columns, "label": [1 - y for y in labels] if poisoned and split == "test" else labels}
        path = save_text_dataset(tmp_path / f"{task}{'-poisoned' if poisoned else ''}", splits, label_names=TARGETS)
        definitions[task] = {"dataset": str(path), "input_text": TEMPLATE, "targets": TARGETS}
    config = tmp_path / f"text{'-poisoned' if poisoned else ''}.yaml"
    OmegaConf.save(OmegaConf.create({"type": "glue", "catalog": False, "max_new_tokens": 1, "batch_size": 4, "definitions": definitions}), config)
    base = ParamDict({n: p.detach().clone() for n, p in model.module.named_parameters()})
    generator = torch.Generator().manual_seed(0)
    finetuned = {t: ParamDict({n: p + 0.05 * p.std() * torch.randn(p.shape, generator=generator) for n, p in base.items()}) for t in TASKS}

    def resident(params: ParamDict) -> TextToTextModel:
        with torch.no_grad():
            for name, p in model.module.named_parameters():
                p.copy_(params[name])
        return model

    return ParamDictPool(base=base, finetuned=finetuned, model=resident, name="tiny-t5"), make_pool(f"taskpool={config}"), model


def test_fisher_on_t5_is_the_mean_squared_gradient_of_the_label_word_log_likelihood(tmp_path: Path) -> None:
    pool, taskpool, model = text_world(tmp_path)
    theta = pool.finetuned("one")
    fisher = FisherMerging(FisherParams(examples_per_task=6)).fisher(pool, taskpool, "one", theta)
    pool.model(theta)
    rows = taskpool.selection("one", "train", 6).data
    checked = ["shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight", "lm_head.weight" if "lm_head.weight" in theta else "decoder.final_layer_norm.weight"]
    params = dict(model.module.named_parameters())
    expected = {name: torch.zeros_like(params[name], dtype=torch.float64) for name in checked}
    for row in rows:
        text = TEMPLATE.format(**row)
        with torch.enable_grad():
            model.module.requires_grad_(True)
            log_p = F.log_softmax(torch.stack([sequence_log_likelihood(model, text, w) for w in TARGETS]).double(), dim=0)[row["label"]]
            grads = torch.autograd.grad(log_p, [params[n] for n in checked])
            model.module.requires_grad_(False)
        for name, grad in zip(checked, grads):
            expected[name] += grad.double() ** 2 / 6
    for name in checked:
        torch.testing.assert_close(fisher[name], expected[name], rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("method", [FisherMerging(FisherParams(examples_per_task=4)), RegMean(RegMeanParams(examples_per_task=8, batch_size=3))])
def test_one_task_returns_that_task_on_t5(tmp_path: Path, method: Any) -> None:
    pool, taskpool, _ = text_world(tmp_path)
    single = pool.subset(["two"])
    assert method.merge(single, taskpool).allclose(pool.finetuned("two"), rtol=1e-4, atol=1e-6)


def test_adamerging_on_t5_starts_at_task_arithmetic_and_never_reads_test_labels(tmp_path: Path) -> None:
    pool, clean, _ = text_world(tmp_path)
    start = AdaMerging(AdaMergingParams(steps=0)).merge(pool, clean)
    assert start.allclose(TaskArithmetic().merge(pool), rtol=1e-6, atol=1e-6)  # float32 sums in another order
    _, poisoned, _ = text_world(tmp_path, poisoned=True)
    for method in (AdaMerging(AdaMergingParams(steps=3, lr=1e-2, batch_size=4)), RegMean(RegMeanParams(split="test", examples_per_task=8))):
        merged = method.merge(pool, clean)
        assert not merged.allclose(start, rtol=0, atol=1e-7)
        assert merged.allclose(method.merge(pool, poisoned), rtol=0, atol=0), method.name
    batch = poisoned.examples("one", AdaMerging().data_use(), 4, "adamerging")[0]
    with pytest.raises(DataError, match="without labels"):
        poisoned.labels(batch)


def test_a_spearman_tasks_label_words_are_its_train_labels_or_its_declared_values(tmp_path: Path) -> None:
    columns = pairs(6, seed=1)
    path = save_text_dataset(tmp_path / "sts", {"train": {**columns, "label": [0.0, 2.5, 5.0, 2.5, 1.25, 0.0]}, "test": {**columns, "label": [0.1] * 6}})
    definition = TextTask(dataset=str(path), input_text=TEMPLATE, metric="spearman", target_format="{:.1f}")
    pool = GlueTaskPool(GlueTaskPoolConfig(type="glue", catalog=False, definitions={"sts": definition}))
    words, values = pool.label_words("sts")
    assert words == ["0.0", "1.2", "2.5", "5.0"] and values is not None and values.tolist() == [0.0, 1.25, 2.5, 5.0]
    batch = next(iter(pool.batches("sts", "test", 6)))
    assert pool.label_classes(batch, "sts").tolist() == [0] * 6  # 0.1 is nearest 0.0
    declared = GlueTaskPool(GlueTaskPoolConfig(type="glue", catalog=False, definitions={"sts": replace(definition, label_values=[1.0, 2.0])}))
    assert declared.label_words("sts")[0] == ["1.0", "2.0"]


def test_list_methods_states_what_each_data_based_method_computes_and_takes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one table row per method
    assert main(["list", "methods"]) == 0
    rows = {cells[0]: cells for row in capsys.readouterr().out.splitlines() if len(cells := [c.strip() for c in row.split("│")[1:-1]]) == 6}
    assert rows["fisher"][1:5] == ["train", "256", "yes", "no"] and "T5: label words" in rows["fisher"][5] and "llora" in rows["fisher"][5]
    assert rows["adamerging"][1:5] == ["test", "all", "no", "yes"] and "entropy" in rows["adamerging"][5]
    assert rows["regmean"][1:5] == ["train", "256", "no", "no"] and "merge_space=delta" in rows["regmean"][5]

