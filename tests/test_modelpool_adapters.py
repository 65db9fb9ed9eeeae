"""Adapter checkpoint formats: our L-LoRA format round-trips, stays readable by peft; FusionBench's is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny_models as tm
import torch
from peft import LoraConfig, PeftModel
from safetensors import safe_open

from fusionbench.api.errors import CheckpointError
from fusionbench.models.adapters import generate_init, normalise_key, read_adapter, save_adapter


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tm.save_tiny_clip(tmp_path_factory.mktemp("adapters") / "base")


def test_own_llora_format_round_trips_and_peft_can_read_it(base: Path, tmp_path: Path) -> None:
    peft_model = tm.lora_model(tm.load_clip(base).vision_model, init_lora_weights=False)
    phi0 = tm.adapter_state(peft_model)
    tm.perturb_(peft_model, seed=1, scale=0.3, only=["lora_"])
    phi = tm.adapter_state(peft_model)
    path = tm.save_own_llora(peft_model, tmp_path / "llora", phi0)
    assert sorted(p.name for p in path.iterdir()) == ["adapter_config.json", "adapter_init.safetensors", "adapter_model.safetensors"]
    with safe_open(str(path / "adapter_model.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt", "fusionbench.adapter": "llora", "fusionbench.format": "1"}
    ckpt = read_adapter(path, "test")
    assert (ckpt.kind, ckpt.layout, ckpt.rank, ckpt.scaling, ckpt.target_modules) == ("llora", "fusionbench", 4, 2.0, ["q_proj", "v_proj"])
    assert all(torch.equal(ckpt.phi[k], phi[k]) and torch.equal(ckpt.phi0[k], phi0[k]) for k in phi)
    # peft reads the directory as a plain LoRA adapter holding phi_t
    loaded = PeftModel.from_pretrained(tm.load_clip(base).vision_model, str(path))
    assert all(torch.equal(v, phi[k]) for k, v in tm.adapter_state(loaded).items())
    assert LoraConfig.from_pretrained(str(path)).r == 4


def test_published_llora_format_is_read(base: Path, tmp_path: Path) -> None:
    peft_model = tm.lora_model(tm.load_clip(base).vision_model)
    phi0 = tm.adapter_state(peft_model)
    tm.perturb_(peft_model, seed=2, scale=0.3, only=["lora_"])
    path = tm.save_fusionbench_llora(peft_model, tmp_path / "published", phi0)
    with safe_open(str(path / "linearized_adapter_model.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    layer = "base_model.model.encoder.layers.0.self_attn.q_proj"  # has a bias: lora_A is parameter 2, lora_B 3
    assert {f"{layer}.model.lora_A.default.weight", f"{layer}.params0_values.2", f"{layer}.params0_values.3"} <= keys
    ckpt = read_adapter(path, "test")
    assert (ckpt.kind, ckpt.layout) == ("llora", "published-llora")
    expected = tm.adapter_state(peft_model)
    assert ckpt.phi.keys() == expected.keys() == phi0.keys()
    assert all(torch.equal(ckpt.phi[k], expected[k]) and torch.equal(ckpt.phi0[k], phi0[k]) for k in phi0)


def test_plain_peft_adapter_and_unsupported_content(base: Path, tmp_path: Path) -> None:
    peft_model = tm.lora_model(tm.load_clip(base).vision_model)
    peft_model.save_pretrained(tmp_path / "plain")
    ckpt = read_adapter(tmp_path / "plain", "plain")
    assert (ckpt.kind, ckpt.layout, ckpt.phi0) == ("lora", "peft", None)
    dora = tmp_path / "plain" / "adapter_config.json"
    config = json.loads(dora.read_text())
    dora.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(CheckpointError, match="sets use_dora in adapter_config.json, which FusionBench pools do not support"):
        read_adapter(tmp_path / "plain", "task 'x'")
    with pytest.raises(CheckpointError, match="must be saved with its init phi_0"):
        save_adapter(tmp_path / "nope", config, tm.adapter_state(peft_model), kind="llora")


def test_generate_init_regenerates_peft_init_without_touching_global_rng(base: Path) -> None:
    root = tm.load_clip(base).vision_model
    expected = tm.adapter_state(tm.lora_model(tm.load_clip(base).vision_model, init_seed=5))
    config = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    got = generate_init(root, config, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    assert not any("lora" in n for n, _ in root.named_parameters())  # the root itself is left alone
    with pytest.raises(CheckpointError, match="cannot regenerate the LoRA init phi_0 for init_lora_weights='pissa'"):
        generate_init(root, {**config, "init_lora_weights": "pissa"}, seed=5)


def test_normalise_key() -> None:
    assert normalise_key("a.b.lora_A.default.weight") == "a.b.lora_A.weight"
    assert normalise_key("a.b.lora_B.weight") == "a.b.lora_B.weight"
    assert normalise_key("a.b.weight") == "a.b.weight"
