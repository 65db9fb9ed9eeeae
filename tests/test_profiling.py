"""fusionbench profile: exact parameter counts, the workloads, subprocess peak-RSS plumbing, tables and JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from fusionbench.api.errors import ConfigError
from fusionbench.cli.main import main
from fusionbench.config.compose import compose
from fusionbench.config.recipe import LoraSpec, Recipe
from fusionbench.profiling import measure as profiling
from fusionbench.profiling.workload import (
    PARADIGMS,
    Setup,
    Spec,
    Workload,
    apply_paradigm,
    build_model,
    checkpoint_bytes,
    measure,
    parameter_counts,
    preset_family,
)

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "anchors.json"


def setup(preset: str, batch_size: int, optimizer: str, lr: float, weight_decay: float, lora: LoraSpec, **lengths: int) -> Setup:
    recipe = Recipe(family=preset_family(preset), optimizer=optimizer, lr=lr, weight_decay=weight_decay, batch_size=batch_size, lora=lora)
    return Setup(preset, recipe, **lengths)


B16 = setup("clip-vit-b16", 64, "adamw", 1e-5, 0.1, LoraSpec(16, 32, 0.1, ["q_proj", "v_proj"]))
T5 = setup("flan-t5-base", 16, "adam", 1e-5, 0.0, LoraSpec(16, 32, 0.1, ["q", "v"]))
TINY_CLIP = setup("tiny-clip", 2, "adamw", 1e-3, 0.1, LoraSpec(4, 8, 0.0, ["q_proj", "v_proj"]))
TINY_T5 = setup("tiny-t5", 2, "adam", 1e-3, 0.0, LoraSpec(4, 8, 0.0, ["q", "v"]), source_length=6, target_length=3)
VIT_B16_TOWER = 86_192_640  # ViT-B/16 vision transformer (85,799,424) + visual projection (393,216)
B32 = setup("clip-vit-b32", 64, "adamw", 1e-5, 0.1, LoraSpec(16, 32, 0.1, ["q_proj", "v_proj"]))
L14 = setup("clip-vit-l14", 16, "adamw", 1e-5, 0.1, LoraSpec(16, 32, 0.1, ["q_proj", "v_proj"]))
T5_LARGE = setup("flan-t5-large", 16, "adam", 1e-5, 0.0, LoraSpec(16, 32, 0.1, ["q", "v"]))


def counts(profiled: Setup, paradigm: str, **lora: Any) -> tuple[int, int]:
    profiled = replace(profiled, recipe=replace(profiled.recipe, lora=replace(profiled.recipe.lora, **lora)))
    model, _ = apply_paradigm(*build_model(profiled, "meta", 0), paradigm, profiled)
    return parameter_counts(model)


@pytest.mark.parametrize(
    "profiled, changes, trainable",
    [  # the exact counts (L-LoRA paper, table 3)
        (B16, {}, 589_824),
        (B16, {"targets": ["q_proj"]}, 294_912),  # the paper's actual setting
        (T5, {"r": 8}, 884_736),
        (T5, {}, 1_769_472),
        (B32, {}, 589_824),  # 12 layers x 2 projections x 16 x (768 + 768)
        (L14, {}, 1_572_864),  # 24 layers x 2 projections x 16 x (1024 + 1024)
        (T5_LARGE, {}, 4_718_592),  # 72 attention blocks (24 encoder, 24 + 24 decoder) x 2 x 16 x (1024 + 1024)
        (T5_LARGE, {"r": 8}, 2_359_296),
    ],
)
def test_lora_and_llora_trainable_counts_are_exact(profiled: Setup, changes: dict[str, Any], trainable: int) -> None:
    lora, llora = counts(profiled, "lora", **changes), counts(profiled, "llora", **changes)
    assert lora[0] == llora[0] == trainable
    assert llora[1] == lora[1] + trainable  # closed-form L-LoRA stores phi_0, not a copy of W0


def test_full_and_linearized_counts_on_the_vit_b16_tower() -> None:
    full, linearized, lora = counts(B16, "full"), counts(B16, "linearized"), counts(B16, "lora")
    assert full == (85_799_424, VIT_B16_TOWER)  # the visual projection stays frozen
    assert linearized == (85_799_424, VIT_B16_TOWER + 85_799_424)  # theta_0 is stored beside theta
    assert lora == (589_824, VIT_B16_TOWER + 589_824)
    assert counts(T5, "full") == (247_577_856, 247_577_856)


def vit_layer(d: int) -> int:
    """One ViT layer of width d: q, k, v, out projections with biases, a 4d MLP with biases, two norms."""
    return 4 * (d * d + d) + (8 * d * d + 5 * d) + 2 * 2 * d


@pytest.mark.parametrize(
    "profiled, vision, projection",
    [  # class + patch (3 x P^2 x d) + position ((224/P)^2 + 1) x d embeddings, two outer norms, the layers; projection d x e
        (B32, 768 + 3 * 32 * 32 * 768 + 50 * 768 + 2 * 1536 + 12 * vit_layer(768), 768 * 512),
        (L14, 1024 + 3 * 14 * 14 * 1024 + 257 * 1024 + 2 * 2048 + 24 * vit_layer(1024), 1024 * 768),
    ],
)
def test_full_counts_on_the_new_vit_towers(profiled: Setup, vision: int, projection: int) -> None:
    assert counts(profiled, "full") == (vision, vision + projection)  # 87,456,000 and 303,179,776 trainable
    assert counts(profiled, "linearized")[1] == vision + projection + vision


def test_full_counts_on_flan_t5_large() -> None:
    assert counts(T5_LARGE, "full") == (783_150_080, 783_150_080)  # the published checkpoint's size (presets test)


def test_checkpoint_sizes_are_the_files_written(tmp_path: Path) -> None:
    sizes = {}
    for paradigm in ("lora", "llora"):
        model, root = apply_paradigm(*build_model(B16, "meta", 0), paradigm, B16)
        folder = tmp_path / paradigm
        folder.mkdir()
        sizes[paradigm] = checkpoint_bytes(root, paradigm, B16.recipe.lora, folder)
        assert sizes[paradigm] == sum(f.stat().st_size for f in folder.iterdir())
    data = 589_824 * 4
    assert data < sizes["lora"] < data + 64 * 1024  # float32 tensors plus headers and adapter_config.json
    assert 2 * data < sizes["llora"] < 2 * data + 64 * 1024  # phi_t and phi_0
    folder = tmp_path / "full"
    folder.mkdir()
    model, root = apply_paradigm(*build_model(TINY_CLIP, "meta", 0), "full", TINY_CLIP)
    assert checkpoint_bytes(root, "full", TINY_CLIP.recipe.lora, folder) > 4 * parameter_counts(model)[0]


def _perturb_adapters(module: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("profiled", [TINY_CLIP, TINY_T5], ids=["clip", "t5"])
@pytest.mark.parametrize("paradigm", ["lora", "llora"])
def test_folding_adapters_keeps_the_function(profiled: Setup, paradigm: str) -> None:
    work = Workload(profiled, paradigm, "cpu")
    _perturb_adapters(work.model)
    work.model.eval()
    with torch.no_grad():
        before = work.loss()
    assert work.fold_() == (12 if profiled is TINY_T5 else 4)  # T5: encoder self, decoder self and cross attention
    assert not any("lora" in name for name, _ in work.model.named_parameters())
    with torch.no_grad():
        assert torch.allclose(work.loss(), before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_a_train_step_updates_exactly_the_trainable_parameters(paradigm: str) -> None:
    work = Workload(TINY_CLIP, paradigm, "cpu")
    trainable = {n for n, p in work.model.named_parameters() if p.requires_grad}
    _perturb_adapters(work.model)  # B0 = 0 would leave lora_A without gradient
    before = {n: p.detach().clone() for n, p in work.model.named_parameters()}
    work.train_step()
    assert {n for n, p in work.model.named_parameters() if not torch.equal(p, before[n])} == trainable
    work.infer_step()


def test_linearized_model_equals_the_model_at_its_expansion_point() -> None:
    full, linearized = Workload(TINY_T5, "full", "cpu"), Workload(TINY_T5, "linearized", "cpu")
    full.model.eval()
    linearized.model.eval()
    with torch.no_grad():
        assert torch.allclose(full.loss(), linearized.loss(), rtol=1e-5)


def test_run_measured_reads_the_peak_rss_of_the_child() -> None:
    small = profiling.run_measured([sys.executable, "-c", "print('hi')"])
    big = profiling.run_measured([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    failing = profiling.run_measured([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
    assert small.returncode == 0 and small.stdout.strip() == "hi" and small.peak_rss_bytes > 0
    assert big.peak_rss_bytes - small.peak_rss_bytes > 290 * 2**20
    assert failing.returncode == 3 and failing.stderr == "boom"


def test_one_measurement_in_a_fresh_process() -> None:
    result = profiling.measure_in_subprocess(Spec(TINY_CLIP, "llora", "train", "cpu", steps=2, warmup=1, threads=1))
    assert len(result["step_seconds"]) == 2 and result["its"] > 0 and result["threads"] == 1
    assert result["peak_bytes"] == result["host_peak_rss_bytes"] > 100 * 2**20  # CPU: the child's peak RSS


def test_a_failed_measurement_names_the_paradigm_and_shows_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = profiling.Measured(-9, 2**30, "", "Traceback ...\nRuntimeError: boom")
    monkeypatch.setattr(profiling, "run_measured", lambda argv: failed)
    with pytest.raises(profiling.FusionBenchError, match="(?s)profiling lora \\(train\\) on cpu failed with exit status -9 \\(out of memory.*boom"):
        profiling.measure_in_subprocess(Spec(TINY_CLIP, "lora", "train", "cpu", 1, 0))


LEGACY_TINY_CLIP = {"batch_size": 2, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.1,  # the flat LoRA keys of older profile configs
                    "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "lora_targets": ["q_proj", "v_proj"], "init_seed": 42}


def tiny_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    recipe = LEGACY_TINY_CLIP
    paper = {"batch_size": 64, "table3_key": "x", "table4_key": "y",
             "table3": {"full": {"trainable": 100.0, "ckpt_mb": 4.0}, "lora_r4": {"trainable": 2.0, "ckpt_mb": 1.0}},
             "table4": {"full": {"train_its": 2.0, "infer_its": 8.0}, "lora_r4": {"train_its": 3.0, "infer_its": 7.0}}}
    OmegaConf.save(OmegaConf.create({"preset": "tiny-clip", "recipe": recipe, "paper": paper}), path)
    return path


def in_process(spec: Spec) -> dict[str, Any]:
    """measure_in_subprocess without the subprocess: fixed peak figures."""
    return {**measure(spec), "host_peak_rss_bytes": 2**30, "peak_bytes": 2**30 if spec.phase == "train" else 2**29}


def test_cli_prints_both_tables_and_writes_the_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(profiling, "measure_in_subprocess", in_process)
    monkeypatch.setattr(profiling, "rss_floor_bytes", lambda: 2**28)
    out = tmp_path / "sub" / "profile.json"
    assert main(["profile", f"model={tiny_yaml(tmp_path)}", "paradigms=full,lora", "steps=1", "warmup=0", f"output={out}"]) == 0
    printed = capsys.readouterr().out
    assert "Table 3: fine-tuning statistics" in printed and "Table 4: training and inference cost" in printed
    assert "inference it/s, adapters folded" in printed and "paper" in printed and f"profile written to {out}" in printed
    data = json.loads(out.read_text())
    assert data["schema"] == "fusionbench.profile/1" and data["model"] == "tiny"
    assert data["device"]["type"] == "cpu" and data["device"]["torch"] == torch.__version__ and data["device"]["name"]
    assert data["settings"]["paradigms"] == ["full", "lora"] and data["settings"]["batch_size"] == 2
    assert data["settings"]["recipe"]["lora"] == {"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["q_proj", "v_proj"]} and data["rss_floor_bytes"] == 2**28
    assert set(data["ours"]["lora"]) >= {"trainable", "total", "trainable_pct", "checkpoint_mib", "train_its", "train_peak_gib",
                                         "infer_its", "infer_peak_gib", "infer_folded_its", "infer_folded_peak_gib"}
    assert "infer_folded_its" not in data["ours"]["full"]
    ours, ratio = data["ours"], data["ours_ratio_to_full"]
    assert ratio["full"]["train_its"] == 1.0 and ratio["lora"]["trainable"] == ours["lora"]["trainable"] / ours["full"]["trainable"]
    assert ours["lora"]["train_peak_gib"] == 1.0 and ours["lora"]["infer_peak_gib"] == 0.5
    assert ratio["lora"]["infer_folded_its"] == ours["lora"]["infer_folded_its"] / ours["full"]["infer_its"]  # full is dense
    assert data["paper"]["table3"]["lora"] == {"trainable": 2.0, "checkpoint_mib": 1.0}
    assert data["paper"]["table4_ratio_to_full"]["lora"] == {"train_its": 1.5, "infer_its": 7.0 / 8.0}
    assert len(data["measurements"]["lora"]["train"]["step_seconds"]) == 1
    assert "(1.50x)" in printed and "(0.88x)" in printed  # the paper's ratios are printed beside ours


def test_settings_defaults_and_errors(tmp_path: Path) -> None:
    def resolve(*words: str) -> profiling.Settings:
        return profiling.resolve(compose(list(words), profiling.ProfileSchema, groups=()))[0]

    cpu = resolve("model=clip-vit-b16", "device=cpu")
    assert (cpu.setup.recipe.batch_size, cpu.steps, cpu.warmup, cpu.threads, cpu.paradigms) == (2, 3, 1, 1, PARADIGMS)
    assert cpu.setup.recipe.lora.targets == ["q_proj", "v_proj"] and cpu.setup.recipe.optimizer == "adamw"
    custom = resolve("model=flan-t5-base", "device=cpu", "batch_size=3", "lora.r=8", "lora.targets=q", "paradigms=lora,llora")
    recipe = custom.setup.recipe
    assert (recipe.batch_size, recipe.lora.r, recipe.lora.targets, custom.paradigms) == (3, 8, ["q"], ("lora", "llora"))
    assert recipe.optimizer == "adam" and recipe.family == "t5" and custom.output.name == "profile.json"
    assert custom.setup.source_length == 128 and custom.setup.target_length == 8
    with pytest.raises(ConfigError, match="unknown model 'clip-vit-b17'. Did you mean 'clip-vit-b16'"):
        resolve("model=clip-vit-b17")
    with pytest.raises(ConfigError, match="unknown paradigm 'lorra'"):
        resolve("paradigms=full,lorra", "device=cpu")
    with pytest.raises(ConfigError, match="steps=0 is not valid"):
        resolve("steps=0", "device=cpu")
    with pytest.raises(ConfigError, match="unknown key 'batchsize'"):
        resolve("batchsize=3")
    bad = tmp_path / "bad.yaml"
    OmegaConf.save(OmegaConf.create({"preset": "tiny-clip", "recipe": {"batch_size": 2, "lora_rank": 4}}), bad)
    with pytest.raises(ConfigError, match="unknown recipe key 'lora_rank' in profile config .*Did you mean 'lora.r'"):
        resolve(f"model={bad}", "device=cpu")
    OmegaConf.save(OmegaConf.create({"preset": "tiny-clip", "recipe": {**LEGACY_TINY_CLIP, "optimizer": "sgd"}}), bad)
    with pytest.raises(ConfigError, match=r"recipe 'bad' has invalid optimizer='sgd' \(choose adam or adamw\)"):
        resolve(f"model={bad}", "device=cpu")
    OmegaConf.save(OmegaConf.create({"preset": "tiny-clip", "recipe": {"lora_r": 4, "lora": {"r": 8}}}), bad)
    with pytest.raises(ConfigError, match="sets lora.r twice \\(lora_r is its old spelling\\); keep lora.r"):
        resolve(f"model={bad}", "device=cpu")


def test_profile_configs_and_fine_tuning_share_one_recipe_type(tmp_path: Path) -> None:
    """Shipped profile configs spell LoRA as recipes do (lora.r); the flat lora_r of older files is an alias."""
    for model in profiling.profile_options():
        section = profiling.model_config(model)["recipe"]
        assert "lora" in section and not any(key.startswith("lora_") for key in section), model
    legacy = tmp_path / "legacy.yaml"
    OmegaConf.save(OmegaConf.create({"preset": "tiny-clip", "recipe": LEGACY_TINY_CLIP}), legacy)
    spelled = tmp_path / "spelled.yaml"
    canonical = {k: v for k, v in LEGACY_TINY_CLIP.items() if not k.startswith("lora_")} | {"lora": {"r": 4, "alpha": 8, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}}
    OmegaConf.save(OmegaConf.create({"preset": "tiny-clip", "recipe": canonical}), spelled)
    old, new = (profiling.setup_of(profiling.model_config(str(p)), p.stem) for p in (legacy, spelled))
    assert isinstance(old.recipe, Recipe) and old.recipe.lora == new.recipe.lora == LoraSpec(4, 8, 0.0, ["q_proj", "v_proj"])
    assert replace(old.recipe, name="x") == replace(new.recipe, name="x") and old.recipe.family == "clip"


def test_shipped_profiles_carry_the_papers_figures() -> None:
    if not ANCHORS.is_file():
        pytest.skip("anchors.json is not beside this checkout")
    anchors = json.loads(ANCHORS.read_text())["llora_paper"]
    assert set(profiling.profile_options()) >= {"clip-vit-b32", "clip-vit-b16", "clip-vit-l14", "flan-t5-base", "flan-t5-large"}
    for model in ("clip-vit-b32", "clip-vit-b16", "clip-vit-l14", "flan-t5-base"):
        paper = profiling.model_config(model)["paper"]
        for table, source in (("table3", "table3_finetuning_statistics"), ("table4", "table4_training_inference_cost")):
            if f"{table}_key" in paper:
                assert paper[table] == anchors[source][paper[f"{table}_key"]]
