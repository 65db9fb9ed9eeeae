"""One LoRA / L-LoRA recipe for a mini world, measured on the product's world (issue 16).

    FUSIONBENCH_HOME=/tmp/v6home python research/mini_t5/adapters.py '{"name": "a1", "mode": "lora", "lr": 1e-3}'
    FUSIONBENCH_HOME=/tmp/v6home python research/mini_t5/adapters.py '{"name": "va1", "kind": "vision", "mode": "lora", "lr": 1e-3}'

Reuses the built world of ``kind`` (default text) in ``$FUSIONBENCH_HOME`` (its data, base and
full fine-tunes), fine-tunes the seven adapters of ``mode`` with the recipe's changes (``lr``,
``steps``, ``targets``, ``init_seed``, any other recipe field under ``recipe``; ``seed``, the
fine-tunes' data-order seed, default the product's 0; ``methods`` to sweep) through the product's pool fine-tuning job in two pinned workers, into a
world under ``/tmp/t5r/<name>`` that links everything else; then runs ``fusionbench sweep`` of
``methods`` (default task arithmetic and the simple average) on all seven tasks there and prints
their gain recovered.
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

from fusionbench.config.recipe import LoraSpec
from fusionbench.finetune import FinetuneOptions, finetune
from fusionbench.mini import pools
from fusionbench.mini.build import world_dir
from fusionbench.utils.numerics import pinned_pool

ROOT = Path("/tmp/t5r")
PREFIX = {"text": "mini_t5", "vision": "mini_clip"}


def finetune_job(kind: str, world: Path, task: str, mode: str, recipe: Any, out: Path, seed: int) -> str:
    """One fine-tune of the world's base, as the pools' workers run it (one thread; the product's seed is 0)."""
    options = FinetuneOptions(seed=seed, device="cpu", save_every=0, progress=False, threads=1)
    finetune(str(world / pools.BASE_DIR[kind]), task, mode, pools._taskpool(kind, world), recipe, out, options)
    return task


def main(cfg: dict[str, Any]) -> None:
    kind = cfg.get("kind", "text")
    source = world_dir(kind)
    home = ROOT / cfg["name"]
    world = home / "mini" / source.name
    (world / "pools").mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name != "pools" and not (world / entry.name).exists():
            (world / entry.name).symlink_to(entry)
    for entry in (source / "pools").iterdir():
        if entry.name != cfg["mode"] and not (world / "pools" / entry.name).exists():
            (world / "pools" / entry.name).symlink_to(entry)
    base = pools.mini_recipe(kind, cfg["mode"])
    lora = LoraSpec(base.lora.r, base.lora.alpha, base.lora.dropout, cfg.get("targets", base.lora.targets))
    recipe = replace(base, lr=cfg.get("lr", base.lr), steps=cfg.get("steps", base.steps), init_seed=cfg.get("init_seed", base.init_seed), lora=lora)
    recipe = replace(recipe, **cfg.get("recipe", {}))
    out = world / "pools" / cfg["mode"]
    todo = [t for t in pools.definitions(kind, world) if not (out / t).is_dir()]
    with pinned_pool(2) as pool:
        for done in as_completed([pool.submit(finetune_job, kind, world, t, cfg["mode"], recipe, out / t, cfg.get("seed", 0)) for t in todo]):
            print("fine-tuned", done.result(), flush=True)
    env = {**os.environ, "FUSIONBENCH_HOME": str(home)}
    summaries = []
    for method in cfg.get("methods", ["task_arithmetic", "simple_average"]):
        target = home / "sweeps" / method
        shutil.rmtree(target, ignore_errors=True)
        pool_name = f"{PREFIX[kind]}_{cfg['mode']}"
        subprocess.run(["fusionbench", "sweep", f"method={method}", f"modelpool={pool_name}", "subsets=full", f"output_dir={target / pool_name / method / 'full'}"], env=env, check=True, capture_output=True)
        summaries.append(str(target / pool_name / method / "full" / "summary.json"))
    subprocess.run([sys.executable, str(Path(__file__).parents[1] / "mini_v5" / "product_table.py"), *summaries], check=True)
    print(json.dumps(cfg))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
