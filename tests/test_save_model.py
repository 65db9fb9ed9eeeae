"""Saved merged models (``fusionbench merge``, ``run save_model=``) load with plain transformers / peft and predict as
the in-process merged model does; streamed merges equal in-memory ones; the model card parses; the folder appears
whole or not at all."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from mini_helpers import reduced_configs
from omegaconf import OmegaConf
from safetensors.torch import load_file

from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.plugins import METHODS
from fusionbench.cli.main import main, verb_help
from fusionbench.config.compose import compose
from fusionbench.engine.build import build
from fusionbench.engine.merge import checked_merge
from fusionbench.runner import RunSchema

TASKS = ["shape", "digit"]

# Zero-shot CLIP predictions from the saved folder with transformers / peft only: the class heads come from the
# saved (or base) text tower and tokenizer, the pixels from the saved (or base) image processor.
RELOAD = r"""
import json, sys
import numpy as np, torch, torch.nn.functional as F
from PIL import Image
from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

saved, base, kind, data_file, out_file = sys.argv[1:]
clip = CLIPModel.from_pretrained(saved if kind == "dense" else base).eval()
if kind == "adapter":
    from peft import PeftModel
    clip.vision_model = PeftModel.from_pretrained(clip.vision_model, saved).eval()
processor, tokenizer = CLIPImageProcessor.from_pretrained(saved if kind == "dense" else base), AutoTokenizer.from_pretrained(saved if kind == "dense" else base)
data, logits = torch.load(data_file, weights_only=True), {}
with torch.no_grad():
    for task, item in data.items():
        per_template = []
        for prompts in item["prompts"]:
            tok = tokenizer(prompts, padding=True, truncation=True, max_length=clip.config.text_config.max_position_embeddings, return_tensors="pt")
            text = clip.text_projection(clip.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output)
            per_template.append(F.normalize(text.float(), dim=-1))
        head = F.normalize(torch.stack(per_template).mean(0), dim=-1)
        pixels = processor(images=[Image.fromarray(a.numpy()) for a in item["images"]], return_tensors="pt")["pixel_values"]
        image = clip.visual_projection(clip.vision_model(pixel_values=pixels).pooler_output)
        logits[task] = (clip.logit_scale.exp() * F.normalize(image.float(), dim=-1) @ head.T).tolist()
assert not [m for m in sys.modules if m.split(".")[0] == "fusionbench"], "the reload imported fusionbench"
json.dump(logits, open(out_file, "w"))
"""


def in_process(pool_yaml: Path, extra: list[str]) -> tuple[ModelPool, Any, ParamDict, Any]:
    """The pool (restricted to TASKS), its task pool, task arithmetic's merge and the resident merged model."""
    cfg = compose(["method=task_arithmetic", f"modelpool={pool_yaml}", "taskpool.limit=24", *extra], RunSchema)
    pool, taskpool, method = build(cfg, "cpu")
    pool = pool.subset(TASKS)
    merged = checked_merge(method, pool)
    return pool, taskpool, merged, pool.model(merged)


def reload_logits(tmp_path: Path, saved: Path, base: str, kind: str, taskpool: Any) -> dict[str, torch.Tensor]:
    """Zero-shot logits of the saved model on each task's first test images, computed in a process without fusionbench."""
    data = {}
    for task in TASKS:
        d, batch = taskpool.definition(task), next(taskpool.batches(task, "test", 24))
        data[task] = {"prompts": [[t.format(c=c) for c in d.classnames] for t in d.templates], "images": [torch.from_numpy(np.asarray(im.convert("RGB")).copy()) for im in batch.images]}
    torch.save(data, tmp_path / "data.pt")
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, str(saved), base, kind, str(tmp_path / "data.pt"), str(tmp_path / "logits.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {t: torch.tensor(v) for t, v in json.loads((tmp_path / "logits.json").read_text()).items()}


def front_matter(folder: Path) -> dict[str, Any]:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])  # type: ignore[no-any-return]


CASES = {  # name: (pool mode, pool words, merge words, expected format, how the subprocess loads it)
    "full": ("full", [], [], "dense", "dense"),
    "full streamed": ("full", [], ["stream=true"], "dense", "dense"),
    "lora adapter space": ("lora", [], [], "adapter", "adapter"),
    "lora delta space": ("lora", ["modelpool.merge_space=delta"], [], "dense", "dense"),
    "llora folded": ("llora", [], [], "dense", "dense"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_saved_model_reloads_without_fusionbench_and_predicts_as_merged(case: str, mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mode, extra, merge_words, expected_format, kind = CASES[case]
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, f"mini_clip_{mode}", "mini_vision7")
    out = tmp_path / "merged"
    assert main(["merge", "method=task_arithmetic", f"modelpool={pool_yaml}", f"tasks={','.join(TASKS)}", f"out={out}", *extra, *merge_words]) == 0
    pool, taskpool, _, model = in_process(pool_yaml, extra)
    base = str(pool.config.base)
    logits = reload_logits(tmp_path, out, base, kind, taskpool)
    for task in TASKS:
        batch = next(taskpool.batches(task, "test", 24))
        with torch.no_grad():
            ours = taskpool.logits(model, batch.pixel_values(model), task)
        torch.testing.assert_close(logits[task], ours, rtol=1e-4, atol=1e-4)
        assert torch.equal(logits[task].argmax(-1), ours.argmax(-1)), task
    card = front_matter(out)
    assert card["base_model"] == base and card["tags"] == ["merge", "fusionbench"] and card["save_format"] == expected_format
    assert card["method"]["name"] == "task_arithmetic" and card["parameters"] == {"scaling_factor": 0.3}
    assert card["pool"]["tasks"] == TASKS and card["checkpoints"] == {t: str(pool.config.models[t]) for t in TASKS}
    assert "scores" not in card and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
@pytest.mark.parametrize("method", ["simple_average", "task_arithmetic"])
def test_streamed_merge_of_full_checkpoints_equals_the_in_memory_merge(method: str, mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, "mini_clip_full", "mini_vision7")
    words = ["merge", f"method={method}", f"modelpool={pool_yaml}", "tasks=shape,colour,digit"]
    assert main([*words, f"out={tmp_path / 'streamed'}", "stream=true"]) == 0
    assert main([*words, f"out={tmp_path / 'in_memory'}"]) == 0
    streamed, in_memory = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("streamed", "in_memory"))
    assert streamed.keys() == in_memory.keys()
    assert all(torch.equal(streamed[key], in_memory[key]) for key in streamed)
    base = load_file(str(Path(str(OmegaConf.load(pool_yaml).base)) / "model.safetensors"))
    assert not torch.equal(streamed["vision_model.post_layernorm.weight"], base["vision_model.post_layernorm.weight"])  # merged
    assert torch.equal(streamed["text_model.final_layer_norm.weight"], base["text_model.final_layer_norm.weight"])  # copied


@pytest.mark.slow
def test_streaming_a_pickled_checkpoint_is_refused_and_writes_nothing(mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, "mini_clip_full", "mini_vision7")
    pickled = tmp_path / "digit-pickled"
    pickled.mkdir()
    torch.save(load_file(str(Path(str(OmegaConf.load(pool_yaml).models.digit)) / "model.safetensors")), pickled / "pytorch_model.bin")
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    words = ["merge", "method=task_arithmetic", f"modelpool={pool_yaml}", f"modelpool.models.digit={pickled}", "stream=true", f"out={tmp_path / 'm'}"]
    assert main(words) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(r"checkpoint of task 'digit' .* is a torch pickle", err[0]), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_llora_adapter_is_read_back_by_an_llora_pool(mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, "mini_clip_llora", "mini_vision7")
    out = tmp_path / "adapter"
    assert main(["merge", "method=task_arithmetic", f"modelpool={pool_yaml}", f"tasks={','.join(TASKS)}", f"out={out}", "save_format=adapter"]) == 0
    pool, _, merged, _ = in_process(pool_yaml, [])
    again, _, _ = build(compose(["method=task_arithmetic", f"modelpool={pool_yaml}", f"modelpool.models.shape={out}"], RunSchema), "cpu")
    assert again.mode == "llora" and again.finetuned("shape").allclose(merged, rtol=0.0, atol=0.0)
    assert again.base().allclose(pool.base(), rtol=0.0, atol=0.0)  # the shared init phi_0 travels with the adapter
    assert front_matter(out)["library_name"] == "peft"


@pytest.mark.slow
def test_run_save_model_writes_the_scores_into_the_card(mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, "mini_clip_full", "mini_vision7")
    out, run_dir = tmp_path / "merged", tmp_path / "run"
    words = ["run", "method=simple_average", f"modelpool={pool_yaml}", "taskpool.limit=16", f"output_dir={run_dir}", f"save_model={out}"]
    assert main(words) == 0
    report = json.loads((run_dir / "report.json").read_text())
    scores = front_matter(out)["scores"]
    assert scores == {t: {"split": "test", **{k: row[k] for k in ("metric", "score", "n", "normalized")}} for t, row in report["tasks"].items()}


@pytest.mark.slow
def test_adapter_format_of_a_delta_space_merge_is_refused_before_any_work(mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, "mini_clip_lora", "mini_vision7")
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    code = main(["merge", "method=ties", f"modelpool={pool_yaml}", "modelpool.merge_space=delta", "save_format=adapter", f"out={tmp_path / 'm'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "merge_space=delta" in err[0] and "save_format=dense" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_dense_save_of_a_plain_pool_holds_the_merge_and_replaces_only_on_request(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "merged"
    assert main(["merge", "method=ties", "modelpool=dummy", "tasks=alpha,gamma", f"out={out}"]) == 0
    cfg = compose(["method=ties", "modelpool=dummy"], RunSchema)
    pool, _, method = build(cfg, "cpu")
    expected = checked_merge(method, pool.subset(["alpha", "gamma"]))
    assert ParamDict.load(out / "model.safetensors").allclose(expected, rtol=0.0, atol=0.0)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model.safetensors"]
    (out / "old.txt").write_text("from before\n")
    assert main(["merge", "method=ties", "modelpool=dummy", f"out={out}"]) == 2
    assert (out / "old.txt").exists()
    assert main(["merge", "method=ties", "modelpool=dummy", f"out={out}", "overwrite=true"]) == 0
    assert not (out / "old.txt").exists() and front_matter(out)["pool"]["tasks"] == ["alpha", "beta", "gamma", "delta"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["merged"]


def test_a_failing_save_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_then_fail(self: ModelPool, params: ParamDict, directory: Path, save_format: str) -> None:
        (directory / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ModelPool, "save", half_then_fail)
    assert main(["merge", "method=ties", "modelpool=dummy", f"out={tmp_path / 'new' / 'merged'}"]) == 1
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "keep.txt").write_text("kept\n")
    assert main(["merge", "method=ties", "modelpool=dummy", f"out={tmp_path / 'merged'}", "overwrite=true"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"] and (tmp_path / "merged" / "keep.txt").read_text() == "kept\n"


def test_merge_help_names_the_methods_that_can_stream() -> None:
    streamable = [name for name in METHODS.names() if METHODS.get(name).tensorwise]
    assert streamable and f"each tensor on its own ({', '.join(streamable)})" in " ".join(verb_help("merge").split())
