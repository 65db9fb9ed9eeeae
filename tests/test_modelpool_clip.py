"""CLIP pools (transformers) on tiny models saved in the real formats: full, LoRA (adapter and delta), L-LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny_models as tm
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from fusionbench.api.params import ParamDict
from fusionbench.modelpools.clip import CLIPModelPool
from fusionbench.models.linearize import LinearizedModel

TASKS = ["sun397", "dtd", "svhn"]
PIXELS = torch.randn(3, 3, tm.IMAGE_SIZE, tm.IMAGE_SIZE, generator=torch.Generator().manual_seed(0))


def make_pool(base: Path, models: dict[str, Path], **extra: Any) -> CLIPModelPool:
    cfg = OmegaConf.merge(
        OmegaConf.structured(CLIPModelPool.Config),
        {"type": "clip", "name": "tiny", "base": str(base), "models": {t: str(p) for t, p in models.items()}, **extra},
    )
    return CLIPModelPool(cfg)


def assert_params_equal(got: ParamDict, expected: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert torch.allclose(got[k], v.float(), atol=1e-6), k


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Base, full fine-tunes in three on-disk layouts, LoRA adapters, L-LoRA adapters in two formats."""
    root = tmp_path_factory.mktemp("clip")
    base = tm.save_tiny_clip(root / "base")
    w: dict[str, Any] = {"base": base, "full": {}, "full_params": {}, "lora": {}, "lora_phi": {}, "llora": {}, "llora_phi": {}}
    for i, task in enumerate(TASKS):
        clip = tm.load_clip(base)
        tm.perturb_(clip.vision_model, seed=10 + i)
        if task == "dtd":  # a CLIPModel checkpoint whose projection was fine-tuned too
            tm.perturb_(clip.visual_projection, seed=20)
            clip.save_pretrained(root / f"full-{task}")
        elif task == "svhn":  # legacy transformers layout: vision_model.* keys plus the position_ids buffer
            state = {f"vision_model.{k}": v.contiguous() for k, v in clip.vision_model.state_dict().items()}
            state["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
            (root / f"full-{task}").mkdir()
            save_file(state, str(root / f"full-{task}" / "model.safetensors"))
        else:  # CLIPVisionModel.save_pretrained (projection frozen, absent)
            clip.vision_model.save_pretrained(root / f"full-{task}")
        w["full"][task] = root / f"full-{task}"
        w["full_params"][task] = tm.vision_params(clip)

        clip = tm.load_clip(base)
        peft_model = tm.lora_model(clip.vision_model)
        w["phi0"] = tm.adapter_state(peft_model)
        tm.perturb_(peft_model, seed=30 + i, scale=0.3, only=["lora_"])
        peft_model.save_pretrained(root / f"lora-{task}")
        w["lora"][task] = root / f"lora-{task}"
        w["lora_phi"][task] = tm.adapter_state(peft_model)

        clip = tm.load_clip(base)
        peft_model = tm.lora_model(clip.vision_model, init_seed=7, init_lora_weights=False)  # B0 != 0
        w["llora_phi0"] = tm.adapter_state(peft_model)
        tm.perturb_(peft_model, seed=40 + i, scale=0.3, only=["lora_"])
        w["llora_phi"][task] = tm.adapter_state(peft_model)
        if task == "dtd":
            tm.save_fusionbench_llora(peft_model, root / f"llora-{task}", w["llora_phi0"])
        else:
            tm.save_own_llora(peft_model, root / f"llora-{task}", w["llora_phi0"])
        w["llora"][task] = root / f"llora-{task}"
    return w


# ----------------------------------------------------------------------------- full
def test_full_pool_reads_every_layout_and_task_vectors_are_differences(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["full"])
    assert pool.tasks == TASKS and pool.mode == "full"
    base_params = tm.vision_params(tm.load_clip(world["base"]))
    assert_params_equal(pool.base(), base_params)
    for task in TASKS:
        assert_params_equal(pool.finetuned(task), world["full_params"][task])
        expected = {k: world["full_params"][task][k] - base_params[k] for k in base_params}
        assert_params_equal(pool.task_vector(task), expected)
    assert not torch.equal(pool.task_vector("dtd")["visual_projection.weight"], torch.zeros(16, 32))
    assert torch.equal(pool.task_vector("sun397")["visual_projection.weight"], torch.zeros(16, 32))


def test_full_model_is_resident_and_matches_the_finetuned_clip(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["full"])
    first = pool.model(pool.finetuned("dtd"))
    ft = tm.load_clip(world["full"]["dtd"])
    with torch.no_grad():
        assert torch.allclose(first.vision(PIXELS), tm.image_features(ft, PIXELS), atol=1e-5)
        merged = ParamDict.mean([pool.finetuned(t) for t in TASKS])
        second = pool.model(merged)
        assert second is first  # one resident model, updated in place
        manual = tm.load_clip(world["base"])
        manual.vision_model.load_state_dict({k[len("vision_model.") :]: v for k, v in merged.items() if k.startswith("vision_model.")})
        manual.visual_projection.weight.copy_(merged["visual_projection.weight"])
        assert torch.allclose(second.vision(PIXELS), tm.image_features(manual, PIXELS), atol=1e-5)


def test_text_side_processor_and_fingerprints_come_from_the_base(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["full"])
    model = pool.model(pool.base())
    base = tm.load_clip(world["base"])
    texts = ["a photo of a cat", "a photo of a dog"]
    tokens = tm.clip_tokenizer()(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = base.text_projection(base.text_model(**tokens).pooler_output)
    assert torch.allclose(model.encode_texts(texts), expected, atol=1e-5)
    assert model.logit_scale == pytest.approx(float(base.logit_scale.detach().exp()))
    from PIL import Image

    image = Image.new("RGB", (48, 40), (200, 10, 30))
    assert torch.allclose(model.preprocess([image]), tm.image_processor()(images=[image], return_tensors="pt")["pixel_values"])
    again = make_pool(world["base"], {"sun397": world["full"]["sun397"]}).model(pool.base())
    assert (again.text_fingerprint, again.preprocess_fingerprint) == (model.text_fingerprint, model.preprocess_fingerprint)
    identity = pool.identity()
    assert identity["mode"] == "full" and set(identity["models"]) == set(TASKS) and identity == pool.identity()


# ----------------------------------------------------------------------------- LoRA
def test_lora_pool_task_vectors_over_adapter_parameters(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["lora"], mode="lora")
    assert_params_equal(pool.base(), world["phi0"])  # phi_0 regenerated from init_seed=42, as peft initialises it
    assert pool.identity()["init"] == "seed:42"
    for task in TASKS:
        assert_params_equal(pool.finetuned(task), world["lora_phi"][task])
        assert_params_equal(pool.task_vector(task), {k: world["lora_phi"][task][k] - world["phi0"][k] for k in world["phi0"]})


def test_merged_lora_folds_into_dense_weights_like_the_unfolded_peft_model(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["lora"], mode="lora")
    merged = pool.base() + ParamDict.weighted_sum([pool.task_vector(t) for t in TASKS], [0.4] * 3)
    folded = pool.model(merged).vision
    reference_clip = tm.load_clip(world["base"])
    peft_model = tm.lora_model(reference_clip.vision_model)
    tm.set_adapter_(peft_model, merged)
    with torch.no_grad():
        assert torch.allclose(folded(PIXELS), tm.image_features(reference_clip, PIXELS), atol=1e-5)


def test_lora_delta_space_holds_per_layer_products(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["lora"], mode="lora", merge_space="delta")
    phi = world["lora_phi"]["svhn"]
    ft = pool.finetuned("svhn")
    layer = "base_model.model.encoder.layers.1.self_attn.v_proj"
    expected = (8 / 4) * phi[f"{layer}.lora_B.weight"] @ phi[f"{layer}.lora_A.weight"]
    assert torch.allclose(ft[f"{layer}.delta_weight"], expected, atol=1e-6)
    assert len(ft) == 4 and all(v.abs().sum() == 0 for v in pool.base().values())  # B0 = 0: base delta is zero
    reference_clip = tm.load_clip(world["base"])
    peft_model = tm.lora_model(reference_clip.vision_model)
    tm.set_adapter_(peft_model, phi)
    with torch.no_grad():
        assert torch.allclose(pool.model(ft).vision(PIXELS), tm.image_features(reference_clip, PIXELS), atol=1e-5)


def test_stored_lora_init_is_used(world: dict[str, Any], tmp_path: Path) -> None:
    from fusionbench.models.adapters import read_adapter, save_adapter

    models = {}
    fake_init = {k: v + 1.0 for k, v in world["phi0"].items()}
    for task in TASKS[:2]:
        ckpt = read_adapter(world["lora"][task], task)
        models[task] = save_adapter(tmp_path / task, ckpt.config, world["lora_phi"][task], fake_init, kind="lora")
    pool = make_pool(world["base"], models, mode="lora")
    assert_params_equal(pool.base(), fake_init)
    assert pool.identity()["init"] == "stored"


# --------------------------------------------------------------------------- L-LoRA
def test_llora_pool_reads_both_formats_and_shares_phi0(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["llora"], mode="llora")
    assert_params_equal(pool.base(), world["llora_phi0"])
    assert any(v.abs().sum() > 0 for k, v in pool.base().items() if "lora_B" in k)  # B0 != 0 here
    for task in TASKS:  # dtd is in FusionBench's published layout, the others in ours
        assert_params_equal(pool.finetuned(task), world["llora_phi"][task])
        assert_params_equal(pool.task_vector(task), {k: world["llora_phi"][task][k] - world["llora_phi0"][k] for k in world["llora_phi0"]})


def test_merged_llora_folds_exactly_into_dense_weights(world: dict[str, Any]) -> None:
    pool = make_pool(world["base"], world["llora"], mode="llora")
    merged = pool.base() + ParamDict.weighted_sum([pool.task_vector(t) for t in TASKS], [0.5, 0.3, 0.7])
    folded = pool.model(merged).vision
    # reference: FusionBench's recipe, every LoRA layer wrapped in a jvp linearisation around phi_0
    reference_clip = tm.load_clip(world["base"])
    peft_model = tm.lora_model(reference_clip.vision_model, init_seed=7, init_lora_weights=False)
    for path, module in list(peft_model.named_modules()):
        if type(module).__name__ == "Linear" and hasattr(module, "lora_A"):
            parent, _, child = path.rpartition(".")
            setattr(peft_model.get_submodule(parent), child, LinearizedModel(module))
    params = dict(peft_model.named_parameters())
    with torch.no_grad():
        for key, value in merged.items():
            path, ab = key.rsplit(".lora_", 1)
            params[f"{path}.model.lora_{ab[0]}.default.weight"].copy_(value)
        expected = tm.image_features(reference_clip, PIXELS)
        got = folded(PIXELS)
    assert float((got - expected).norm() / expected.norm()) < 1e-5
