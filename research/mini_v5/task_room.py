"""One task's image ranges changed in the shipped vision world, measured on its merges (issue 16).

    FUSIONBENCH_HOME=/tmp/v6home python research/mini_v5/task_room.py \
        '{"name": "p1", "task": "position", "novel": [0.3, 0.8], "modes": ["full", "lora", "llora"]}'

Builds, under ``/tmp/t5r/<name>``, a copy of the built vision world of ``$FUSIONBENCH_HOME`` in which
``task``'s images are drawn again from the product's generator and random streams with the
(``hard``, ``novel``) ranges given (the others keep ``vision_world.TASK_RANGES``); the other six
tasks' data and fine-tunes are linked, not copied (their streams do not depend on ``task``'s). It
fine-tunes ``task`` in each of ``modes`` with the product's recipe (``lr``, ``steps`` or ``targets``
override the adapter modes' recipe, and then all seven tasks are fine-tuned again), prints the
task's zero-shot accuracy, and sweeps task arithmetic and the simple average over all seven tasks
of each mode's pool (``product_table.py --per-task``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPModel, CLIPProcessor

from fusionbench.api.taskpool import SPLITS
from fusionbench.config.recipe import LoraSpec
from fusionbench.mini import bases, pools, vision_world
from fusionbench.mini.build import SIZES, save_vision_task, world_dir
from fusionbench.mini.build_steps import stream_rng
from fusionbench.mini.vision_tasks import VISION_TASKS
from fusionbench.utils.numerics import pinned_pool

sys.path.insert(0, str(Path(__file__).parents[1] / "mini_t5"))
from adapters import finetune_job  # noqa: E402  (the research fine-tune job, either kind)

ROOT = Path("/tmp/t5r")


def redraw(world: Path, task: str, ranges: tuple[tuple[float, float], tuple[float, float]]) -> float:
    """Write ``task``'s three splits into ``world/data/<task>`` with ``ranges``; returns the base's zero-shot test accuracy."""
    size = SIZES[("vision", False)]
    vision_world.TASK_RANGES[task] = ranges
    splits = {split: vision_world.task_split(task, size.split(split), stream_rng(0, "vision", task, split)) for split in SPLITS}
    save_vision_task(world, task, splits)
    model, processor = CLIPModel.from_pretrained(world / "clip"), CLIPProcessor.from_pretrained(world / "clip")
    images, labels = splits["test"]
    head = bases.zero_shot_head(model, processor.tokenizer, VISION_TASKS[task])
    return bases.zero_shot_accuracy(model, head, bases.pixel_values(images, processor.image_processor), torch.from_numpy(labels))


def link_finetune(finetuned: Path, out: Path, base: Path) -> None:
    """``out`` holds ``finetuned``'s files (links), its adapter config copied with the base path set to ``base``."""
    out.mkdir()
    for entry in finetuned.iterdir():
        if entry.name == "adapter_config.json":
            config = json.loads(entry.read_text())
            (out / entry.name).write_text(json.dumps({**config, "base_model_name_or_path": str(base)}, indent=2))
        else:
            (out / entry.name).symlink_to(entry)


def main(cfg: dict[str, Any]) -> None:
    source, task = world_dir("vision"), cfg["task"]
    home = ROOT / cfg["name"]
    world = home / "mini" / source.name
    (world / "data").mkdir(parents=True, exist_ok=True)
    for entry in ("clip", "manifest.json", "tasks.json", "definitions.yaml"):
        if not (world / entry).exists():
            (world / entry).symlink_to(source / entry)
    for entry in (source / "data").iterdir():
        if entry.name != task and not (world / "data" / entry.name).exists():
            (world / "data" / entry.name).symlink_to(entry)
    hard, novel = vision_world.TASK_RANGES[task]
    ranges = (tuple(cfg.get("hard", hard)), tuple(cfg.get("novel", novel)))
    if not (world / "data" / task).exists():
        print(f"{task} zero-shot {100 * redraw(world, task, ranges):.1f} with ranges {ranges}", flush=True)
    jobs = []
    for mode in cfg.get("modes", ["full", "lora", "llora"]):
        recipe = pools.mini_recipe("vision", mode)
        changed = mode != "full" and any(key in cfg for key in ("lr", "steps", "targets"))
        if changed:
            lora = LoraSpec(recipe.lora.r, recipe.lora.alpha, recipe.lora.dropout, cfg.get("targets", recipe.lora.targets))
            recipe = replace(recipe, lr=cfg.get("lr", recipe.lr), steps=cfg.get("steps", recipe.steps), lora=lora)
        out = world / "pools" / mode
        out.mkdir(parents=True, exist_ok=True)
        for other in VISION_TASKS:
            if other != task and not changed and not (out / other).exists():
                link_finetune(source / "pools" / mode / other, out / other, world / "clip")
        jobs += [(mode, t, recipe, out / t) for t in VISION_TASKS if not (out / t).exists()]
    if not (world / "pools" / "READY").exists():
        shutil.copy(source / "pools" / "READY", world / "pools" / "READY")
    with pinned_pool(2) as pool:
        for done in as_completed([pool.submit(finetune_job, "vision", world, t, mode, recipe, out) for mode, t, recipe, out in jobs]):
            print("fine-tuned", done.result(), flush=True)
    env = {**os.environ, "FUSIONBENCH_HOME": str(home)}
    for mode in cfg.get("modes", ["full", "lora", "llora"]):
        summaries = []
        for method in ("task_arithmetic", "simple_average"):
            target = home / "sweeps" / f"mini_clip_{mode}" / method / "full"
            shutil.rmtree(target, ignore_errors=True)
            subprocess.run(["fusionbench", "sweep", f"method={method}", f"modelpool=mini_clip_{mode}", "subsets=full", f"output_dir={target}"], env=env, check=True, capture_output=True)
            summaries.append(str(target / "summary.json"))
        subprocess.run([sys.executable, str(Path(__file__).with_name("product_table.py")), "--per-task", *summaries], check=True)
    print(json.dumps(cfg))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
