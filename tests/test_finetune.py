"""fusionbench.finetune.loop on tiny CLIP / T5 bases and tiny datasets built here (the hub is never used).

Checked against expectations computed independently of the fine-tuning code: task vectors
read back from the safetensors files, phi_0 regenerated with peft, the pools' own outputs,
the closed-form L-LoRA algebra, and uninterrupted runs for resumed ones.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny_data as td
import tiny_models as tm
import torch
from omegaconf import OmegaConf
from PIL import Image
from safetensors.torch import load_file

from fusionbench.api.errors import ConfigError, OutputError
from fusionbench.api.families import TextToTextModel
from fusionbench.api.plugins import MODELPOOLS
from fusionbench.cli.main import main
from fusionbench.config.compose import load_option, validate
from fusionbench.finetune.loop import FinetuneOptions, finetune, load_taskpool
from fusionbench.finetune.record import FinetuneRecord
from fusionbench.config.recipe import LoraSpec, Recipe, load_recipe
from fusionbench.models.linearize import LinearizedLoraLinear

COLORS = {"red": (220, 40, 40), "green": (40, 200, 40), "blue": (40, 40, 220), "yellow": (200, 200, 40)}
SHADES = {"dark": (40, 40, 40), "light": (215, 215, 215)}
WORDS = "the a film plot actor scene story music was is quite very".split()
CLIP_RECIPE = Recipe(family="clip", name="tiny_clip", lr=1e-3, warmup_ratio=0.1, steps=16, batch_size=16, lora=LoraSpec(4, 8.0, 0.0, ["q_proj", "v_proj"]))
T5_RECIPE = Recipe(family="t5", name="tiny_t5", optimizer="adam", lr=3e-3, schedule="constant", steps=16, batch_size=8, lora=LoraSpec(4, 8.0, 0.0, ["q", "v"]))
LORA_LR = 1e-2  # adapters start at B0 = 0 and move slowly at full fine-tuning's rate
PIXELS = torch.randn(4, 3, tm.IMAGE_SIZE, tm.IMAGE_SIZE, generator=torch.Generator().manual_seed(5))


def quiet(**extra: Any) -> FinetuneOptions:
    return FinetuneOptions(progress=False, threads=1, **extra)


def recipe_for(recipe: Recipe, mode: str, **changes: Any) -> Recipe:
    lr = LORA_LR if mode in ("lora", "llora") else recipe.lr
    return load_recipe(recipe, [f"lr={lr}", *(f"{k}={v}" for k, v in changes.items())])


def colour_images(palette: dict[str, tuple[int, int, int]], n: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    rng = np.random.default_rng(seed)
    colours = list(palette.values())
    labels = [i % len(colours) for i in range(n)]
    arrays = [np.clip(np.array(colours[y])[None, None] + rng.normal(0, 25, (36, 36, 3)), 0, 255).astype(np.uint8) for y in labels]
    return [Image.fromarray(a) for a in arrays], labels


def sentences(n: int, seed: int) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    rows = [" ".join(rng.choice(WORDS, size=4)) for _ in range(n)]
    labels = [i % 2 for i in range(n)]
    return {"sentence": [f"{s} good" if y else f"{s} bad" for s, y in zip(rows, labels)], "label": labels}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny CLIP and T5 bases, two image tasks, one text task, and task pool YAML files for them."""
    root = tmp_path_factory.mktemp("finetune")
    w = {"root": root, "clip": tm.save_tiny_clip(root / "clip"), "t5": tm.save_tiny_t5(root / "t5")}
    definitions = {}
    for task, palette in (("colors", COLORS), ("shades", SHADES)):
        td.save_image_dataset(root / task, {"train": colour_images(palette, 48, 0), "test": colour_images(palette, 16, 1)}, list(palette))
        definitions[task] = {"dataset": str(root / task), "classnames": list(palette), "templates": ["a {c} photo.", "{c}"]}
    w["vision"] = root / "vision.yaml"
    OmegaConf.save({"type": "clip_vision", "catalog": False, "definitions": definitions}, w["vision"])
    td.save_text_dataset(root / "reviews", {"train": sentences(48, 0), "test": sentences(16, 1)})
    w["text"] = root / "text.yaml"
    OmegaConf.save({"type": "glue", "catalog": False, "max_new_tokens": 4, "definitions": {
        "reviews": {"dataset": str(root / "reviews"), "input_text": "review: {sentence}", "targets": ["no", "yes"]}}}, w["text"])
    return w


def run(world: dict[str, Path], family: str, mode: str, out: str, task: str = "", **changes: Any) -> Any:
    options = changes.pop("options", quiet())
    recipe = recipe_for(CLIP_RECIPE if family == "clip" else T5_RECIPE, mode, **changes)
    taskpool = str(world["vision" if family == "clip" else "text"])
    task = task or ("colors" if family == "clip" else "reviews")
    return finetune(str(world[family]), task, mode, taskpool, recipe, world["root"] / out, options)


def load_pool(world: dict[str, Path], family: str, mode: str, models: dict[str, Path]) -> Any:
    """A clip / t5 pool from a YAML config, as `fusionbench run modelpool=<file>` builds it."""
    path = world["root"] / f"pool-{family}-{mode}-{len(models)}.yaml"
    OmegaConf.save({"type": family, "mode": mode, "base": str(world[family]), "models": {t: str(p) for t, p in models.items()}}, path)
    config = validate("modelpool", load_option("modelpool", str(path)), str(path), [])
    return MODELPOOLS.get(config.type)(config)


def t5_batch(world: dict[str, Path]) -> dict[str, torch.Tensor]:
    tokenizer = tm.t5_tokenizer()
    enc = tokenizer(["review: the film was good", "review: a plot bad"], padding=True, return_tensors="pt")
    labels = tokenizer(["yes", "no"], padding=True, return_tensors="pt")["input_ids"]
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "decoder_input_ids": torch.zeros_like(labels[:, :2])}


def outputs(model: Any, world: dict[str, Path]) -> torch.Tensor:
    """Image embeddings (CLIP) or logits (T5) of a fixed input."""
    with torch.no_grad():
        if hasattr(model, "vision"):
            return model.vision(PIXELS)
        return model.module(**t5_batch(world)).logits


# --------------------------------------------------------------------------------- training
@pytest.mark.parametrize("family", ["clip", "t5"])
@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_loss_decreases_in_every_mode(world: dict[str, Path], family: str, mode: str) -> None:
    result = run(world, family, mode, f"decrease-{family}-{mode}")
    assert result.complete and result.step == 16 and len(result.losses) == 16
    first, last = np.mean(result.losses[:4]), np.mean(result.losses[-4:])
    assert last < 0.7 * first, (first, last)
    log = (result.output_dir / "log.csv").read_text().splitlines()
    assert log[0] == "step,loss,lr,seconds" and len(log) == 17
    meta = json.loads((result.output_dir / "finetune.json").read_text())
    assert meta["mode"] == mode and meta["steps"] == 16 and meta["recipe"]["name"] == f"tiny_{family}"
    assert meta["code_version"]["fusionbench"] and "git_revision" in meta["code_version"]
    record = FinetuneRecord.from_dict(meta)  # finetune.json is the typed record's JSON
    assert record.to_dict() == meta and record.recipe.lora.r == 4 and record.mode == mode
    assert not (world["root"] / f"decrease-{family}-{mode}.partial").exists()


def test_warmup_cosine_schedule_is_logged(world: dict[str, Path]) -> None:
    result = run(world, "clip", "full", "schedule", steps=10, warmup_ratio=0.2)
    lrs = [float(line.split(",")[2]) for line in (result.output_dir / "log.csv").read_text().splitlines()[1:]]
    base = CLIP_RECIPE.lr
    expected = [base * (s + 1) / 2 if s < 2 else base * 0.5 * (1 + np.cos(np.pi * (s - 2) / 8)) for s in range(10)]
    assert np.allclose(lrs, expected)


def test_gradient_accumulation_matches_one_large_batch(world: dict[str, Path]) -> None:
    """Four micro-batches of 4 give the batch-of-16 gradient up to rounding: every step's loss agrees (parameters
    agree only to about 1% of an update: Adam divides rounding noise of near-zero gradients by their tiny scale)."""
    whole = run(world, "clip", "full", "accumulate-1", steps=4)
    accumulated = run(world, "clip", "full", "accumulate-4", steps=4, options=quiet(micro_batch_size=4))
    assert np.allclose(whole.losses, accumulated.losses, atol=1e-5)
    assert whole.losses[-1] < 0.5 * whole.losses[0]


def test_batch_select_equals_a_fresh_batch_of_the_rows(world: dict[str, Path]) -> None:
    """Training batches are drawn from one preprocessed split: equal to preprocessing the drawn rows afresh."""
    from fusionbench.taskpools.glue import TextBatch
    from fusionbench.taskpools.vision import ImageBatch

    index = torch.tensor([5, 0, 7, 5])
    vision, text = load_taskpool(str(world["vision"])), load_taskpool(str(world["text"]))
    clip = td.tiny_clip(["a"]).model
    images = next(vision.batches("colors", "train", 48))
    fresh = ImageBatch([images.images[i] for i in index], images.labels[index])
    picked = images.select(index, clip)
    assert torch.equal(picked.labels, fresh.labels) and torch.equal(picked.pixel_values(clip), fresh.pixel_values(clip))
    texts = next(text.batches("reviews", "train", 48))
    t5 = TextToTextModel(tm.load_t5(world["t5"]), tm.t5_tokenizer(), "characters")  # inputs and targets of many lengths
    only_no = torch.tensor([i for i, target in enumerate(texts.targets) if target == "no"][:3])
    for rows in (index, only_no):  # targets "yes" and "no", then only the shorter "no": padding columns are dropped
        fresh_text = TextBatch([texts.inputs[i] for i in rows], [texts.targets[i] for i in rows], texts.labels[rows], texts.max_input_length)
        got, expected = texts.select(rows, t5).encoded(t5), fresh_text.encoded(t5)
        assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)
    assert texts.encoded(t5)["labels"].shape[1] > expected["labels"].shape[1]


# ------------------------------------------------------------------------ pools load the outputs
def _vision_key(saved: dict[str, torch.Tensor], name: str) -> str:
    """Where a pool parameter (vision_model.X) lives in a saved vision checkpoint (X or vision_model.X)."""
    return name if name in saved else name.removeprefix("vision_model.")


@pytest.mark.parametrize("family", ["clip", "t5"])
def test_full_checkpoint_loads_in_pool_with_task_vector_theta_minus_theta0(world: dict[str, Path], family: str) -> None:
    result = run(world, family, "full", f"pool-full-{family}", steps=4)
    pool = load_pool(world, family, "full", {"task": result.output_dir})
    tuned, base = load_file(str(result.output_dir / "model.safetensors")), load_file(str(world[family] / "model.safetensors"))
    vector = pool.task_vector("task")
    assert vector.numel() > 0
    for name, value in vector.items():
        if family == "clip" and name == "visual_projection.weight":
            assert torch.equal(value, torch.zeros_like(value))  # frozen, as in the published checkpoints
        elif family == "clip":
            assert torch.allclose(value, tuned[_vision_key(tuned, name)] - base[name], atol=1e-6), name
        else:
            assert torch.allclose(value, tuned[name] - base[name], atol=1e-6), name
    assert any(float(v.abs().max()) > 0 for v in vector.values())
    assert torch.allclose(outputs(pool.model(pool.finetuned("task")), world), outputs(result.model, world), atol=1e-5)


@pytest.mark.parametrize("family", ["clip", "t5"])
@pytest.mark.parametrize("mode", ["lora", "llora"])
def test_adapter_checkpoint_loads_in_pool_with_shared_seeded_init(world: dict[str, Path], family: str, mode: str) -> None:
    result = run(world, family, mode, f"pool-{mode}-{family}", steps=4)
    pool = load_pool(world, family, mode, {"task": result.output_dir})
    phi, phi0 = load_file(str(result.output_dir / "adapter_model.safetensors")), load_file(str(result.output_dir / "adapter_init.safetensors"))
    vector = pool.task_vector("task")
    assert set(vector) == set(phi) and all(torch.allclose(vector[k], phi[k] - phi0[k]) for k in phi)
    # phi_0 is peft's init after torch.manual_seed(42), on the module the pools' adapters wrap
    base = tm.load_clip(world["clip"]).vision_model if family == "clip" else tm.load_t5(world["t5"])
    targets = ("q_proj", "v_proj") if family == "clip" else ("q", "v")
    expected = tm.adapter_state(tm.lora_model(base, r=4, alpha=8, targets=targets, init_seed=42))
    assert set(expected) == set(phi0) and all(torch.equal(expected[k], phi0[k]) for k in phi0)
    config = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and sorted(config["target_modules"]) == sorted(targets)
    assert torch.allclose(outputs(pool.model(pool.finetuned("task")), world), outputs(result.model, world), atol=1e-5)


# ------------------------------------------------------------------------------------ L-LoRA
def _lora_layers(model: Any) -> list[Any]:
    return [m for m in model.vision.modules() if isinstance(m, LinearizedLoraLinear)]


def test_llora_trains_through_the_linearised_layer(world: dict[str, Path]) -> None:
    """With B0 = 0 the L-LoRA output does not depend on A (its gradient is s B0^T ... = 0), so Adam without
    weight decay leaves A exactly at A0 and moves B; plain LoRA moves both."""
    changes = {"optimizer": "adam", "weight_decay": 0.0, "steps": 4}
    llora = run(world, "clip", "llora", "llora-a-frozen", **changes)
    lora = run(world, "clip", "lora", "lora-a-moves", **changes)
    for result, a_moves in ((llora, False), (lora, True)):
        phi, phi0 = load_file(str(result.output_dir / "adapter_model.safetensors")), load_file(str(result.output_dir / "adapter_init.safetensors"))
        a_keys = [k for k in phi if ".lora_A." in k]
        b_keys = [k for k in phi if ".lora_B." in k]
        assert all(torch.equal(phi0[k], torch.zeros_like(phi0[k])) for k in b_keys)
        assert all(not torch.equal(phi[k], phi0[k]) for k in b_keys)
        assert all(torch.equal(phi[k], phi0[k]) != a_moves for k in a_keys)


def test_llora_output_is_linear_in_the_adapter_parameters(world: dict[str, Path]) -> None:
    """Each linearised layer of the trained model: y(phi0 + a d1 + b d2) = y0 + a (y(phi0 + d1) - y0) + b (y(phi0 + d2) - y0),
    with d1, d2 the task vectors of two tasks trained from one shared init."""
    first = run(world, "clip", "llora", "linear-colors", task="colors", steps=6, init_seed=3)
    second = run(world, "clip", "llora", "linear-shades", task="shades", steps=6, init_seed=3)
    layers = _lora_layers(first.model)
    assert layers and len(layers) == len(_lora_layers(second.model))
    x = torch.randn(5, layers[0].model.in_features, generator=torch.Generator().manual_seed(1))
    for layer, other in zip(layers, _lora_layers(second.model)):
        A, B = layer.model.lora_A[layer.adapter].weight, layer.model.lora_B[layer.adapter].weight
        phi1 = (A.detach().clone(), B.detach().clone())
        phi2 = (other.model.lora_A[other.adapter].weight.detach().clone(), other.model.lora_B[other.adapter].weight.detach().clone())
        phi0 = (layer.lora_A0, layer.lora_B0)
        assert torch.equal(phi0[0], other.lora_A0) and torch.equal(phi0[1], other.lora_B0)  # one shared init
        d1, d2 = [(p[0] - phi0[0], p[1] - phi0[1]) for p in (phi1, phi2)]

        def y(a: float, b: float) -> torch.Tensor:
            with torch.no_grad():
                A.copy_(phi0[0] + a * d1[0] + b * d2[0])
                B.copy_(phi0[1] + a * d1[1] + b * d2[1])
                return layer(x)

        y0 = y(0, 0)
        for a, b in ((0.7, -1.3), (2.0, 0.5)):
            assert torch.allclose(y(a, b), y0 + a * (y(1, 0) - y0) + b * (y(0, 1) - y0), atol=1e-5)
        assert float((y(1, 0) - y0).abs().max()) > 0
        y(1, 0)  # leave the trained values in place


# ------------------------------------------------------------------------------------ resume
class Interrupted(Exception):
    pass


def _crash_at(step: int) -> Any:
    def on_step(done: int, loss: float) -> None:
        if done == step:
            raise Interrupted

    return on_step


def _tensors(folder: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(folder / name))


@pytest.mark.parametrize(("family", "mode", "weights"), [("clip", "lora", "adapter_model.safetensors"), ("t5", "full", "model.safetensors")])
def test_resume_after_interruption_gives_the_uninterrupted_result(world: dict[str, Path], family: str, mode: str, weights: str) -> None:
    """Dropout is on (LoRA dropout 0.1 for CLIP, T5's own 0.1), so the RNG state must be restored too."""
    recipe = recipe_for(CLIP_RECIPE if family == "clip" else T5_RECIPE, mode, steps=7, **{"lora.dropout": 0.1})
    taskpool = load_taskpool(str(world["vision" if family == "clip" else "text"]), [], "cpu")
    task = "colors" if family == "clip" else "reviews"

    def go(out: str, on_step: Any = None, **options: Any) -> Any:
        return finetune(str(world[family]), task, mode, taskpool, recipe, world["root"] / out, quiet(**options), on_step)

    straight = go(f"straight-{family}")
    with pytest.raises(Interrupted):
        go(f"crashed-{family}", _crash_at(5), save_every=2)
    out = world["root"] / f"crashed-{family}"
    assert not out.exists()  # nothing that looks like a finished checkpoint
    assert [p.name for p in (out.with_name(out.name + ".partial") / "checkpoints").iterdir()] == ["step-00000004"]
    resumed = go(f"crashed-{family}", save_every=2)
    stopped = go(f"stopped-{family}", max_steps_this_run=3)
    assert not stopped.complete and stopped.step == 3
    stopped = go(f"stopped-{family}", max_steps_this_run=3)
    assert not stopped.complete and stopped.step == 6
    finished = go(f"stopped-{family}")
    expected = _tensors(straight.output_dir, weights)
    for result in (resumed, finished):
        assert result.complete and result.step == 7 and result.losses == straight.losses
        got = _tensors(result.output_dir, weights)
        assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)


def test_an_interrupt_names_the_partial_run_it_leaves(world: dict[str, Path]) -> None:
    def ctrl_c_at_3(done: int, loss: float) -> None:
        if done == 3:
            raise KeyboardInterrupt

    recipe = recipe_for(CLIP_RECIPE, "lora", steps=7)
    taskpool = load_taskpool(str(world["vision"]), [], "cpu")
    out = world["root"] / "ctrl-c"
    with pytest.raises(KeyboardInterrupt, match=r"the partial run in .*ctrl-c\.partial resumes from its last checkpoint"):
        finetune(str(world["clip"]), "colors", "lora", taskpool, recipe, out, quiet(save_every=2), ctrl_c_at_3)
    assert (out.with_name("ctrl-c.partial") / "checkpoints" / "step-00000002").is_dir()


# ------------------------------------------------------------------------------- bad input
def test_unknown_task_mode_and_incompatible_recipe_or_taskpool(world: dict[str, Path]) -> None:
    out = world["root"] / "never"
    with pytest.raises(ConfigError, match=r"no task 'colours'.*Did you mean 'colors'.*Valid tasks: colors, shades"):
        finetune(str(world["clip"]), "colours", "lora", str(world["vision"]), CLIP_RECIPE, out, quiet())
    with pytest.raises(ConfigError, match=r"unknown mode 'lorra'.*Did you mean 'lora'.*Valid modes: full, llora, lora"):
        finetune(str(world["clip"]), "colors", "lorra", str(world["vision"]), CLIP_RECIPE, out, quiet())
    with pytest.raises(ConfigError, match=r"mode 'linearized' .* no model pool loads it\. Valid modes: full, llora, lora"):
        finetune(str(world["clip"]), "colors", "linearized", str(world["vision"]), CLIP_RECIPE, out, quiet())
    with pytest.raises(ConfigError, match=r"recipe 'clip_paper' is for CLIP models but model '.*t5' is a T5 model; use recipe=t5_paper"):
        finetune(str(world["t5"]), "reviews", "lora", str(world["text"]), "clip_paper", out, quiet())
    with pytest.raises(ConfigError, match=r"cannot train model '.*clip', a CLIP model; use a clip_vision task pool"):
        finetune(str(world["clip"]), "reviews", "lora", str(world["text"]), CLIP_RECIPE, out, quiet())
    with pytest.raises(ConfigError, match=r"lora.targets=\['q'\] match no layer"):
        finetune(str(world["clip"]), "colors", "lora", str(world["vision"]), load_recipe(CLIP_RECIPE, ["lora.targets=[q]"]), out, quiet())
    with pytest.raises(ConfigError, match=r"micro_batch_size=5 must be a positive divisor of batch_size=16"):
        finetune(str(world["clip"]), "colors", "lora", str(world["vision"]), CLIP_RECIPE, out, quiet(micro_batch_size=5))
    with pytest.raises(ConfigError, match=r"unknown recipe 'clip_papr'.*Did you mean 'clip_paper'"):
        load_recipe("clip_papr")
    with pytest.raises(ConfigError, match=r"unknown recipe key 'lora.rank'"):
        load_recipe("clip_paper", ["lora.rank=8"])
    with pytest.raises(ConfigError, match=r"invalid steps=0"):
        load_recipe("t5_paper", ["steps=0"])
    assert not out.exists() and not out.with_name("never.partial").exists()


def test_resume_with_another_recipe_names_the_differing_fields(world: dict[str, Path]) -> None:
    stopped = run(world, "clip", "lora", "other-recipe", options=quiet(max_steps_this_run=2))
    assert not stopped.complete
    with pytest.raises(ConfigError, match=r"other settings \(recipe.lr: 0.01 in the checkpoint, 0.02 now; recipe.steps: 16 in the checkpoint, 20 now\).*resume=false"):
        run(world, "clip", "lora", "other-recipe", lr=0.02, steps=20)
    restarted = finetune(str(world["clip"]), "colors", "lora", str(world["vision"]), recipe_for(CLIP_RECIPE, "lora", lr=0.02, steps=3),
                         world["root"] / "other-recipe", quiet(resume=False))
    assert restarted.complete and restarted.step == 3
    with pytest.raises(OutputError, match=r"already holds a finished fine-tune"):
        run(world, "clip", "lora", "other-recipe")


def test_full_disk_during_a_save_leaves_no_partial_files(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    out = world["root"] / "full-disk"
    partial = out.with_name("full-disk.partial")
    with monkeypatch.context() as patch:  # a periodic checkpoint
        patch.setattr("fusionbench.finetune.io.save_file", full_disk)
        with pytest.raises(OutputError, match=r"cannot write the checkpoint of step 2 .*no space left on device.*free disk space"):
            run(world, "clip", "lora", "full-disk", options=quiet(save_every=2))
    assert list((partial / "checkpoints").iterdir()) == [] and not out.exists()
    with monkeypatch.context() as patch:  # the final checkpoint
        patch.setattr("fusionbench.models.adapters.save_tensors", full_disk)
        with pytest.raises(OutputError, match=r"cannot write the fine-tuned checkpoint .*no space left on device"):
            run(world, "clip", "lora", "full-disk", steps=3)
    assert not out.exists() and not list(world["root"].glob(".full-disk*"))
    assert run(world, "clip", "lora", "full-disk", steps=3).complete


# --------------------------------------------------------------------------------------- CLI
def test_cli_trains_with_recipe_file_and_overrides(world: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    recipe_file = world["root"] / "my_recipe.yaml"
    OmegaConf.save({"family": "clip", "lr": 0.01, "steps": 50, "batch_size": 8, "lora": {"r": 4, "alpha": 8, "targets": ["q_proj"]}}, recipe_file)
    out = world["root"] / "cli"
    words = [f"model={world['clip']}", "task=shades", "mode=llora", f"taskpool={world['vision']}", f"recipe={recipe_file}",
             "steps=3", "lora.r=2", "taskpool.limit=20", f"output_dir={out}", "progress=false", "threads=1", "eval_split=test"]
    assert main(["finetune", *words]) == 0
    assert str(out) in capsys.readouterr().out
    meta = json.loads((out / "finetune.json").read_text())
    assert meta["recipe"]["name"] == "my_recipe" and meta["recipe"]["steps"] == 3 and meta["recipe"]["lora"]["r"] == 2
    assert meta["eval"]["split"] == "test" and meta["eval"]["n"] == 16 and meta["taskpool"]["limit"] == 20
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 2
    assert main(["finetune", f"model={world['clip']}", "task=shades", "mode=lora", "stpes=3"]) == 2
    assert "unknown key 'stpes'. Did you mean 'steps'?" in capsys.readouterr().err
    assert main(["finetune", "--help"]) == 0 and "recipe=clip_paper" in capsys.readouterr().out
