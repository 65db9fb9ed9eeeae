"""Every bad input of a model pool stops with one clear message (what, why, how to fix)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import tiny_models as tm
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from fusionbench.api.errors import CheckpointError, ConfigError, ParamMismatchError
from fusionbench.modelpools.clip import CLIPModelPool


def make_pool(base: Any, models: dict[str, Any], **extra: Any) -> CLIPModelPool:
    cfg = OmegaConf.merge(
        OmegaConf.structured(CLIPModelPool.Config),
        {"type": "clip", "name": "bad", "base": str(base), "models": {t: str(p) for t, p in models.items()}, **extra},
    )
    return CLIPModelPool(cfg)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    w = {"root": root, "base": tm.save_tiny_clip(root / "base")}
    clip = tm.load_clip(w["base"])
    tm.perturb_(clip.vision_model, seed=1)
    clip.vision_model.save_pretrained(root / "full")
    w["full"] = root / "full"
    for name, r, targets, init_seed in (("lora", 4, ("q_proj", "v_proj"), 42), ("lora_r2", 2, ("q_proj", "v_proj"), 42),
                                        ("lora_q", 4, ("q_proj",), 42), ("lora_seed1", 4, ("q_proj", "v_proj"), 1)):
        peft_model = tm.lora_model(tm.load_clip(w["base"]).vision_model, r=r, targets=targets, init_seed=init_seed)
        phi0 = tm.adapter_state(peft_model)
        tm.perturb_(peft_model, seed=2, scale=0.3, only=["lora_"])
        peft_model.save_pretrained(root / name)
        w[name] = root / name
        if name in ("lora", "lora_seed1"):
            w[f"l{name}"] = tm.save_own_llora(peft_model, root / f"l{name}", phi0)
        if name == "lora":
            w["published"] = tm.save_fusionbench_llora(
                tm.lora_model(tm.load_clip(w["base"]).vision_model), root / "published", phi0
            )
    return w


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------ missing / unreadable
def test_missing_checkpoint(world: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint of task 'svhn' '.*nowhere' does not exist; set modelpool.models.svhn"):
        make_pool(world["base"], {"svhn": tmp_path / "nowhere"})


def test_unreadable_checkpoint(world: dict[str, Path], tmp_path: Path) -> None:
    bad = copy_dir(world["full"], tmp_path / "bad")
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="unreadable"):
        make_pool(world["base"], {"svhn": bad})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="holds no weights file"):
        make_pool(world["base"], {"svhn": empty})
    lora = copy_dir(world["lora"], tmp_path / "lora")
    (lora / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable"):
        make_pool(world["base"], {"svhn": lora}, mode="lora")
    (lora / "adapter_config.json").unlink()
    with pytest.raises(CheckpointError, match="adapter_config.json.*does not exist"):
        make_pool(world["base"], {"svhn": lora}, mode="lora")


# -------------------------------------------------------------------- keys and shapes
def _rewrite(src: Path, dst: Path, edit: Any, keep_config: bool = True) -> Path:
    dst.mkdir()
    state = load_file(str(src / "model.safetensors"))
    edit(state)
    save_file(state, str(dst / "model.safetensors"))
    if keep_config:
        shutil.copy(src / "config.json", dst / "config.json")
    return dst


def test_keys_or_shapes_that_do_not_match_the_base(world: dict[str, Path], tmp_path: Path) -> None:
    missing = _rewrite(world["full"], tmp_path / "missing", lambda s: s.pop("encoder.layers.1.mlp.fc2.bias"))
    with pytest.raises(ParamMismatchError, match=r"lacks 1 parameter\(s\) of the base model, first: encoder.layers.1.mlp.fc2.bias"):
        make_pool(world["base"], {"dtd": missing})
    extra = _rewrite(world["full"], tmp_path / "extra", lambda s: s.update({"encoder.layers.1.mlp.extra": torch.zeros(2)}))
    with pytest.raises(ParamMismatchError, match=r"has 1 parameter\(s\) the base model lacks, first: encoder.layers.1.mlp.extra"):
        make_pool(world["base"], {"dtd": extra})

    def reshape(state: dict[str, torch.Tensor]) -> None:
        state["encoder.layers.0.mlp.fc1.weight"] = torch.zeros(65, 32)

    shaped = _rewrite(world["full"], tmp_path / "shaped", reshape, keep_config=False)
    with pytest.raises(ParamMismatchError, match=r"first encoder.layers.0.mlp.fc1.weight: \(65, 32\) vs base \(64, 32\)"):
        make_pool(world["base"], {"dtd": shaped})


def test_pickle_only_checkpoint_is_refused_but_a_weights_only_one_loads(world: dict[str, Path], tmp_path: Path) -> None:
    clip = tm.load_clip(world["base"])
    torch.save(clip.vision_model, tmp_path / "module.pt")  # a pickled nn.Module: needs arbitrary code to load
    with pytest.raises(CheckpointError, match="pickle that needs arbitrary code.*refused"):
        make_pool(world["base"], {"mnist": tmp_path / "module.pt"})
    state = load_file(str(world["full"] / "model.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "state.pt")
    pool = make_pool(world["base"], {"mnist": tmp_path / "state.pt"})
    assert torch.equal(pool.finetuned("mnist")["vision_model.embeddings.class_embedding"], state["embeddings.class_embedding"])


class _RunsCode:
    """Pickles as a call of os.system: loading it with plain torch.load would run a shell command."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo this must never run",))


def test_a_pickle_that_would_run_code_is_refused_as_such(world: dict[str, Path], tmp_path: Path) -> None:
    torch.save({"state_dict": _RunsCode()}, tmp_path / "runs_code.pt")  # torch's refusal names it: "unsupported GLOBAL posix.system"
    with pytest.raises(CheckpointError, match="pickle that needs arbitrary code.*refused"):
        make_pool(world["base"], {"mnist": tmp_path / "runs_code.pt"})


def test_a_pool_whose_mode_does_not_match_its_checkpoints_says_so(world: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match=r"holds a full model \(config.json\), not a LoRA / L-LoRA adapter.*modelpool.mode=full"):
        make_pool(world["base"], {"a": world["full"]}, mode="lora")
    with pytest.raises(CheckpointError, match=r"holds a LoRA / L-LoRA adapter \(adapter_config.json\), not a full model.*mode=lora or llora"):
        make_pool(world["base"], {"a": world["lora"]})


# ------------------------------------------------------------------------ adapters
def test_lora_ranks_or_targets_that_differ_between_tasks(world: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match=r"task 'b' has r=2 but task 'a' has r=4"):
        make_pool(world["base"], {"a": world["lora"], "b": world["lora_r2"]}, mode="lora")
    with pytest.raises(CheckpointError, match=r"task 'b' has target_modules=\['q_proj'\] but task 'a' has target_modules=\['q_proj', 'v_proj'\]"):
        make_pool(world["base"], {"a": world["lora"], "b": world["lora_q"]}, mode="lora")


def test_llora_checkpoint_without_phi0(world: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="plain LoRA adapter without its L-LoRA init phi_0"):
        make_pool(world["base"], {"a": world["llora"], "b": world["lora"]}, mode="llora")
    ours = copy_dir(world["llora"], tmp_path / "ours")
    (ours / "adapter_init.safetensors").unlink()
    with pytest.raises(CheckpointError, match="L-LoRA adapter without its init phi_0 \\(adapter_init.safetensors is missing\\)"):
        make_pool(world["base"], {"a": ours}, mode="llora")
    published = copy_dir(world["published"], tmp_path / "published")
    file = published / "linearized_adapter_model.safetensors"
    state = {k: v for k, v in load_file(str(file)).items() if "params0_values" not in k or "q_proj" not in k}
    save_file(state, str(file))
    with pytest.raises(CheckpointError, match=r"stores 0 of its 2 phi_0 tensors \(params0_values\)"):
        make_pool(world["base"], {"a": published}, mode="llora")


def test_llora_adapters_must_share_one_init_and_lora_mode_refuses_llora(world: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match="start from different inits phi_0"):
        make_pool(world["base"], {"a": world["llora"], "b": world["llora_seed1"]}, mode="llora")
    with pytest.raises(CheckpointError, match="is an L-LoRA adapter; load it with modelpool.mode=llora"):
        make_pool(world["base"], {"a": world["llora"]}, mode="lora")


def test_mixed_base_models(world: dict[str, Path], tmp_path: Path) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, image_size=32, patch_size=16)
    CLIPVisionModel(config).save_pretrained(tmp_path / "patch16")
    with pytest.raises(CheckpointError, match=r"is built on another base model \(patch_size=16, base has 8\); mixed base models"):
        make_pool(world["base"], {"a": world["full"], "b": tmp_path / "patch16"})
    for task, base_name in (("a", "openai/clip-vit-base-patch16"), ("b", "openai/clip-vit-base-patch32")):
        copy_dir(world["lora"], tmp_path / task)
        cfg = json.loads((tmp_path / task / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = base_name
        (tmp_path / task / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="mixed base models in one pool: task 'b' was fine-tuned from 'openai/clip-vit-base-patch32'"):
        make_pool(world["base"], {"a": tmp_path / "a", "b": tmp_path / "b"}, mode="lora")


def test_adapter_that_does_not_fit_the_base_layers(world: dict[str, Path], tmp_path: Path) -> None:
    bad = copy_dir(world["lora"], tmp_path / "bad")
    file = bad / "adapter_model.safetensors"
    state = load_file(str(file))
    key = "base_model.model.encoder.layers.0.self_attn.q_proj.lora_A.weight"
    state[key] = torch.zeros(4, 48)
    save_file(state, str(file), metadata={"format": "pt"})
    with pytest.raises(ParamMismatchError, match=r"q_proj.lora_A.weight \(4, 48\) / lora_B \(32, 4\) do not fit the base layer's weight \(32, 32\)"):
        make_pool(world["base"], {"a": bad}, mode="lora")


# ----------------------------------------------------------------------- hub and config
def test_unreachable_hub_stops_before_any_weight_is_loaded(world: dict[str, Path], tmp_path: Path) -> None:
    garbage_base = tmp_path / "garbage-base"  # would fail to load: the hub check must come first
    garbage_base.mkdir()
    with pytest.raises(CheckpointError) as info:
        make_pool(garbage_base, {"sun397": world["full"], "dtd": "tanganke/clip-vit-base-patch16_dtd", "svhn": "tanganke/x_svhn"})
    message = str(info.value)
    assert "\n" not in message
    assert "checkpoint of task 'dtd' 'tanganke/clip-vit-base-patch16_dtd'" in message
    assert "Hugging Face hub is unreachable (HF_HUB_OFFLINE is set)" in message
    assert "(1 more entries of this pool are missing too)" in message
    assert "modelpool.models.dtd=/path/to/local/dir" in message and "modelpool=mini_clip_full" in message


def test_unreachable_hub_probe(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(CheckpointError, match=r"'openai/clip-vit-base-patch16' is not a local path.*hub is unreachable \(cannot connect"):
        make_pool("openai/clip-vit-base-patch16", {"a": world["full"]})


def test_hub_id_found_in_the_local_cache_needs_no_hub(world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny--clip-base"
    shutil.copytree(world["base"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    pool = make_pool("tiny/clip-base", {"a": world["full"]})
    assert pool.identity()["base"] == f"tiny/clip-base@{commit}"


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"mode": "partial"}, "modelpool.mode='partial' is not valid; choose one of full, lora, llora"),
        ({"merge_space": "delta"}, "merge_space=delta applies to mode=lora or llora (this pool has mode=full"),
        ({"mode": "lora", "merge_space": "weights"}, "merge_space='weights' is not valid"),
        ({"dtype": "float64"}, "modelpool.dtype='float64' is not valid"),
    ],
)
def test_config_errors(world: dict[str, Path], extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_pool(world["base"], {"a": world["full"]}, **extra)
    with pytest.raises(ConfigError, match="lists no models"):
        make_pool(world["base"], {})


def test_base_that_is_not_clip(world: dict[str, Path], tmp_path: Path) -> None:
    base = tm.save_tiny_t5(tmp_path / "t5")
    with pytest.raises(CheckpointError, match="is a 't5' model, not a CLIP model"):
        make_pool(base, {"a": world["full"]})
