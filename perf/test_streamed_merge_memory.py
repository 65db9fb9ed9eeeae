"""Peak memory of ``fusionbench merge ... stream=true`` over a full CLIP pool of eight safetensors checkpoints.

The user-reachable streamed path: the CLI composes the config, builds the pool (a ``CLIPModel`` base
directory whose vision tower is ViT-L/14-sized, and eight fine-tuned vision towers, 1.1 GiB each, so that the
import floor of torch and transformers, about 0.9 GiB, does not dominate the ratio) and writes the merged model
folder with ``ModelPool.save_streamed``. Peak memory is the CLI process's peak
RSS (``run_measured``, a fresh process, one torch thread); the floor of a process that only imports what
the command imports is measured beside it. One checkpoint is one task's safetensors file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from bench_helpers import BYTES, peak_rss
from omegaconf import OmegaConf

from fusionbench.api.params import ParamDict
from fusionbench.profiling.measure import run_measured

TASKS = ["sun397", "stanford-cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]  # the clip_ta8 task pool's
IMPORTS = "import fusionbench.cli.main, fusionbench.export, fusionbench.modelpools.clip, transformers; from transformers import CLIPModel"


def clip_base(folder: Path) -> None:
    """A ``CLIPModel`` directory (weights, processor, tokenizer) with a ViT-L/14 vision tower and a tiny text tower."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from fusionbench.mini.tokenization import train_clip_tokenizer

    tokenizer = train_clip_tokenizer(["a photo of a cat"], vocab_size=600)
    config = CLIPConfig(
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                       "patch_size": 14, "image_size": 224},
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": len(tokenizer), "max_position_embeddings": 32, "bos_token_id": 0, "eos_token_id": 1},
        projection_dim=768,
    )
    CLIPModel(config).save_pretrained(str(folder))
    CLIPImageProcessor().save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


@pytest.fixture(scope="module")
def pool_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("streamed-pool")
    clip_base(folder / "base")
    base = ParamDict.load(folder / "base" / "model.safetensors")
    tower = [name for name in base if name.startswith("vision_model.") or name == "visual_projection.weight"]
    g = torch.Generator().manual_seed(0)
    models = {}
    for task in TASKS:
        (folder / task).mkdir()
        ParamDict({name: base[name] + 0.001 * torch.randn(base[name].shape, generator=g) for name in tower}).save(folder / task / "model.safetensors")
        models[task] = str(folder / task)
    BYTES["full-pool-checkpoint"] = (folder / TASKS[0] / "model.safetensors").stat().st_size
    path = folder / "pool.yaml"
    OmegaConf.save({"type": "clip", "mode": "full", "base": str(folder / "base"), "taskpool": "clip_ta8", "models": models}, path)
    return path


def test_import_floor_of_the_merge_command() -> None:
    done = run_measured([sys.executable, "-c", IMPORTS])
    assert done.returncode == 0, done.stderr
    BYTES["rss:merge-floor"] = done.peak_rss_bytes


@pytest.mark.benchmark(group="merge memory: fusionbench merge stream=true, 8 ViT-L/14 CLIP checkpoints, fresh process")
def test_fusionbench_merge_stream_peak_memory(benchmark: Any, pool_yaml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cli = str(Path(sys.executable).parent / "fusionbench")
    command = [cli, "merge", "method=task_arithmetic", f"modelpool={pool_yaml}", f"out={tmp_path / 'merged'}", "stream=true"]
    peak_rss(benchmark, command, "rss:merge-stream")
    benchmark.extra_info["checkpoint_mib"] = BYTES["full-pool-checkpoint"] / 2**20
    assert os.path.isfile(tmp_path / "merged" / "model.safetensors")
