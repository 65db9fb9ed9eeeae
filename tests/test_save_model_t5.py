"""Saved merges of Flan-T5 pools (tiny models in the real formats): the dense model and the peft adapter reload with
plain transformers / peft and give the in-process merged model's logits; a streamed merge equals the in-memory one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tiny_models as tm
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

import fusionbench
from fusionbench.api.plugins import METHODS
from fusionbench.engine.merge import tensor_merge
from fusionbench.modelpools.t5 import FlanT5ModelPool

INPUT_IDS = [[5, 9, 12, 7, 1], [8, 8, 20, 1, 0]]
DECODER_IDS = [[0, 14, 6], [0, 3, 9]]

RELOAD = r"""
import json, sys
import torch
from transformers import AutoTokenizer, T5ForConditionalGeneration

saved, base, kind, out_file = sys.argv[1:]
model = T5ForConditionalGeneration.from_pretrained(saved if kind == "dense" else base).eval()
if kind == "adapter":
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, saved).eval()
tokens = AutoTokenizer.from_pretrained(saved if kind == "dense" else base)("a b c").input_ids
with torch.no_grad():
    logits = model(input_ids=torch.tensor(%s), decoder_input_ids=torch.tensor(%s)).logits
assert not [m for m in sys.modules if m.split(".")[0] == "fusionbench"], "the reload imported fusionbench"
json.dump({"logits": logits.tolist(), "tokens": tokens}, open(out_file, "w"))
""" % (INPUT_IDS, DECODER_IDS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("t5-save")
    base = tm.save_tiny_t5(root / "base")
    full, lora = {}, {}
    for i, task in enumerate(("cola", "rte")):
        model = tm.load_t5(base)
        tm.perturb_(model, seed=i + 1)
        model.save_pretrained(root / f"full-{task}")
        full[task] = root / f"full-{task}"
        peft_model = tm.lora_model(tm.load_t5(base), targets=("q", "v"))
        tm.perturb_(peft_model, seed=10 + i, scale=0.3, only=["lora_"])
        peft_model.save_pretrained(root / f"lora-{task}")
        lora[task] = root / f"lora-{task}"
    return {"base": base, "full": full, "lora": lora}


def make_pool(world: dict[str, Any], mode: str) -> FlanT5ModelPool:
    models = {t: str(p) for t, p in world[mode].items()}
    cfg = OmegaConf.merge(OmegaConf.structured(FlanT5ModelPool.Config), {"type": "t5", "name": "tiny-t5", "mode": mode, "base": str(world["base"]), "models": models})
    return FlanT5ModelPool(cfg)


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_saved_t5_reloads_without_fusionbench_and_gives_the_merged_logits(mode: str, world: dict[str, Any], tmp_path: Path) -> None:
    pool = make_pool(world, mode)
    merged = fusionbench.merge("task_arithmetic", pool, scaling_factor=0.5)
    save_format = pool.save_format("auto")
    assert save_format == ("dense" if mode == "full" else "adapter")
    out = tmp_path / "merged"
    out.mkdir()
    pool.save(merged, out, save_format)
    with torch.no_grad():
        ours = pool.model(merged).module(input_ids=torch.tensor(INPUT_IDS), decoder_input_ids=torch.tensor(DECODER_IDS)).logits
    done = subprocess.run([sys.executable, "-c", RELOAD, str(out), str(world["base"]), save_format, str(tmp_path / "out.json")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    torch.testing.assert_close(torch.tensor(result["logits"]), ours, rtol=1e-4, atol=1e-4)
    assert result["tokens"] == tm.t5_tokenizer()("a b c").input_ids


def test_streamed_t5_merge_equals_the_in_memory_save(world: dict[str, Any], tmp_path: Path) -> None:
    pool = make_pool(world, "full")
    method = METHODS.get("task_arithmetic")()
    (tmp_path / "streamed").mkdir()
    (tmp_path / "in_memory").mkdir()
    pool.save_streamed(tensor_merge(method, pool), tmp_path / "streamed")
    pool.save(fusionbench.merge("task_arithmetic", pool), tmp_path / "in_memory", "dense")
    streamed, in_memory = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("streamed", "in_memory"))
    assert streamed.keys() == in_memory.keys() and all(torch.equal(streamed[k], in_memory[k]) for k in streamed)
