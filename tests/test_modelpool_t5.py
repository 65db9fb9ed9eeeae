"""Flan-T5 pools (transformers) on tiny models saved in the real formats: full, LoRA, L-LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny_models as tm
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from fusionbench.api.params import ParamDict
from fusionbench.modelpools.t5 import FlanT5ModelPool
from fusionbench.models.linearize import linearize_lora_

TASKS = ["cola", "rte"]
INPUT_IDS = torch.tensor([[5, 9, 12, 7, 1], [8, 8, 20, 1, 0]])
DECODER_IDS = torch.tensor([[0, 14, 6], [0, 3, 9]])


def make_pool(base: Path, models: dict[str, Path], **extra: Any) -> FlanT5ModelPool:
    cfg = OmegaConf.merge(
        OmegaConf.structured(FlanT5ModelPool.Config),
        {"type": "t5", "name": "tiny-t5", "base": str(base), "models": {t: str(p) for t, p in models.items()}, **extra},
    )
    return FlanT5ModelPool(cfg)


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=INPUT_IDS, decoder_input_ids=DECODER_IDS).logits


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("t5")
    base = tm.save_tiny_t5(root / "base")
    w: dict[str, Any] = {"base": base, "full": {}, "full_params": {}, "lora": {}, "lora_phi": {}, "llora": {}, "llora_phi": {}}
    for i, task in enumerate(TASKS):
        model = tm.load_t5(base)
        tm.perturb_(model, seed=i + 1)
        if task == "rte":  # legacy layout: the tied embedding stored under each of its names
            state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
            for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
                state[alias] = state["shared.weight"].clone()
            (root / f"full-{task}").mkdir()
            save_file(state, str(root / f"full-{task}" / "model.safetensors"))
        else:
            model.save_pretrained(root / f"full-{task}")
        w["full"][task] = root / f"full-{task}"
        w["full_params"][task] = {n: p.detach().clone() for n, p in model.named_parameters()}

        peft_model = tm.lora_model(tm.load_t5(base), targets=("q", "v"))
        w["phi0"] = tm.adapter_state(peft_model)
        tm.perturb_(peft_model, seed=10 + i, scale=0.3, only=["lora_"])
        peft_model.save_pretrained(root / f"lora-{task}")
        w["lora"][task], w["lora_phi"][task] = root / f"lora-{task}", tm.adapter_state(peft_model)

        peft_model = tm.lora_model(tm.load_t5(base), targets=("q", "v"), init_seed=3)
        w["llora_phi0"] = tm.adapter_state(peft_model)
        tm.perturb_(peft_model, seed=20 + i, scale=0.3, only=["lora_"])
        w["llora_phi"][task] = tm.adapter_state(peft_model)
        w["llora"][task] = tm.save_own_llora(peft_model, root / f"llora-{task}", w["llora_phi0"])
    return w


def test_full_t5_task_vectors_and_resident_model(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["full"])
    base = tm.load_t5(world["base"])
    base_params = {n: p.detach() for n, p in base.named_parameters()}
    assert set(pool.base()) == set(base_params)
    assert "lm_head.weight" in pool.base() and "encoder.embed_tokens.weight" not in pool.base()  # tied: counted once
    for task in TASKS:
        tv = pool.task_vector(task)
        for name, value in base_params.items():
            assert torch.allclose(tv[name], world["full_params"][task][name] - value, atol=1e-6), name
    model = pool.model(pool.finetuned("rte"))
    ft = tm.load_t5(world["base"])
    tm.perturb_(ft, seed=2)
    assert torch.allclose(logits(model.module), logits(ft), atol=1e-5)
    assert model.tokenizer("hello").input_ids == tm.t5_tokenizer()("hello").input_ids
    assert pool.model(pool.base()).module is model.module
    assert torch.allclose(logits(model.module), logits(base), atol=1e-5)
    generated = model.module.generate(input_ids=INPUT_IDS, max_new_tokens=3)
    assert generated.shape[0] == 2


def test_t5_lora_pool_and_fold(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["lora"], mode="lora")
    phi0 = world["phi0"]
    assert set(pool.base()) == set(phi0)
    assert len(pool.base()) == 2 * 2 * (2 + 2 * 2)  # q and v, A and B, in 2 encoder self-attn + 2x2 decoder attn layers
    for task in TASKS:
        for k, v in pool.task_vector(task).items():
            assert torch.allclose(v, world["lora_phi"][task][k] - phi0[k], atol=1e-6), k
    merged = pool.base() + ParamDict.weighted_sum([pool.task_vector(t) for t in TASKS], [0.6, 0.6])
    reference = tm.lora_model(tm.load_t5(world["base"]), targets=("q", "v"))
    tm.set_adapter_(reference, merged)
    expected = logits(reference)
    assert float((logits(pool.model(merged).module) - expected).norm() / expected.norm()) < 1e-5


def test_t5_llora_pool_folds_exactly(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["llora"], mode="llora")
    for k, v in world["llora_phi0"].items():
        assert torch.equal(pool.base()[k], v)
    merged = pool.base() + ParamDict.weighted_sum([pool.task_vector(t) for t in TASKS], [0.5, 0.5])
    reference = tm.lora_model(tm.load_t5(world["base"]), targets=("q", "v"), init_seed=3)
    linearize_lora_(reference)  # phi_0 = the init
    params = dict(reference.named_parameters())
    with torch.no_grad():
        for key, value in merged.items():
            path, ab = key.rsplit(".lora_", 1)
            params[f"{path}.model.lora_{ab[0]}.default.weight"].copy_(value)
    expected = logits(reference)
    got = logits(pool.model(merged).module)
    assert float((got - expected).norm() / expected.norm()) < 1e-5
