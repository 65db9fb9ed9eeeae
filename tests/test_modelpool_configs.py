"""Shipped pool configs compose and resolve; a tmp YAML pool runs end to end through `fusionbench run`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import tiny_models as tm
from omegaconf import OmegaConf

from fusionbench.api.errors import CheckpointError
from fusionbench.api.plugins import MODELPOOLS
from fusionbench.cli.main import main
from fusionbench.config.compose import compose

CLIP_TASKS = ["sun397", "stanford-cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]
GLUE_TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"]


@dataclasses.dataclass
class Top:
    modelpool: Any = None


def pool_config(*words: str) -> Any:
    return compose(list(words), Top, groups=("modelpool",)).modelpool


@pytest.mark.parametrize("mode, suffix", [("full", ""), ("lora", "_lora-16"), ("llora", "_l-lora-16")])
def test_shipped_clip_configs(mode: str, suffix: str) -> None:
    cfg = pool_config(f"modelpool=clip_{mode}")
    assert (cfg.type, cfg.mode, cfg.taskpool, cfg.base) == ("clip", mode, "clip_ta8", "openai/clip-vit-base-patch16")
    assert list(cfg.models) == CLIP_TASKS
    assert cfg.models["stanford-cars"] == f"tanganke/clip-vit-base-patch16_stanford-cars{suffix}"
    b32 = pool_config(f"modelpool=clip_{mode}", "modelpool.variant=clip-vit-base-patch32")
    assert b32.base == "openai/clip-vit-base-patch32" and b32.models["dtd"] == f"tanganke/clip-vit-base-patch32_dtd{suffix}"


@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_shipped_flan_t5_configs(mode: str, isolated_home: Path) -> None:
    cfg = pool_config(f"modelpool=flan_t5_{mode}")
    assert (cfg.type, cfg.mode, cfg.taskpool, cfg.base) == ("t5", mode, "glue8", "google/flan-t5-base")
    assert list(cfg.models) == GLUE_TASKS
    expected = {
        "full": "tanganke/flan-t5-base_glue-rte",
        "lora": "tanganke/flan-t5-base_glue-rte_lora-16",
        "llora": f"{isolated_home}/checkpoints/flan-t5-base_glue-rte_l-lora-16",
    }[mode]
    assert cfg.models.rte == expected


def test_shipped_pool_offline_stops_with_one_message() -> None:
    cfg = pool_config("modelpool=clip_llora")
    with pytest.raises(CheckpointError, match=r"base model 'openai/clip-vit-base-patch16' .* hub is unreachable .*mini_clip_llora"):
        MODELPOOLS.get("clip")(cfg)
    cfg = pool_config("modelpool=flan_t5_llora")
    with pytest.raises(CheckpointError, match=r"checkpoint of task 'cola' '.*flan-t5-base_glue-cola_l-lora-16' does not exist"):
        MODELPOOLS.get("t5")(cfg)


def test_yaml_pool_runs_end_to_end(tmp_path: Path) -> None:
    """fusionbench run method=task_arithmetic modelpool=<tiny L-LoRA CLIP yaml> taskpool=<tiny image tasks yaml>."""
    pytest.importorskip("fusionbench.taskpools.vision")
    from tiny_data import random_images, save_image_dataset

    base = tm.save_tiny_clip(tmp_path / "base")
    models = {}
    for i, task in enumerate(["shapes", "colours"]):
        peft_model = tm.lora_model(tm.load_clip(base).vision_model)
        phi0 = tm.adapter_state(peft_model)
        tm.perturb_(peft_model, seed=i, scale=0.3, only=["lora_"])
        models[task] = str(tm.save_own_llora(peft_model, tmp_path / f"llora-{task}", phi0))
    pool_yaml = tmp_path / "tiny_clip_llora.yaml"
    OmegaConf.save(OmegaConf.create({"type": "clip", "mode": "llora", "base": str(base), "models": models}), pool_yaml)
    classes = {"shapes": ["circle", "square", "triangle"], "colours": ["red", "green"]}
    definitions = {}
    for i, (task, names) in enumerate(classes.items()):
        splits = {s: (random_images(6, seed=10 * i + k), [j % len(names) for j in range(6)]) for k, s in enumerate(["train", "test"])}
        dataset = save_image_dataset(tmp_path / f"data-{task}", splits, names)
        definitions[task] = {"dataset": str(dataset), "classnames": names, "templates": ["a photo of a {c}."]}
    task_yaml = tmp_path / "tiny_tasks.yaml"
    OmegaConf.save(OmegaConf.create({"type": "clip_vision", "catalog": False, "definitions": definitions}), task_yaml)
    out = tmp_path / "run"
    code = main(["run", "method=task_arithmetic", f"modelpool={pool_yaml}", f"taskpool={task_yaml}", f"output_dir={out}", "device=cpu"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["tasks"]) == {"shapes", "colours"}
    assert report["modelpool"]["mode"] == "llora" and report["modelpool"]["name"] == "tiny_clip_llora"
    assert all(0.0 <= row["score"] <= 1.0 and row["n"] == 6 for row in report["tasks"].values())
