"""The mini world's fine-tuned pools: every task in full, LoRA and L-LoRA mode, through ``finetune``.

Layout, under a built world (see ``fusionbench.mini.build``)::

    mini/vision-seed0/
        definitions.yaml           task definitions for the task pools (taskpool.catalog_file)
        pools/<mode>/<task>/       fine-tuned checkpoint, in the format the `clip` / `t5` pools load
        pools/READY                written last: the pools are complete

Each checkpoint is written by ``finetune``, in a worker process with pinned numerics
(``fusionbench.utils.numerics``: the same bits on every machine), into ``<task>.partial`` and renamed when done,
and ``READY`` is written only after all of them, so an interrupted build resumes where it
stopped and a half-built pool is never used. The shipped configs ``mini_clip_<mode>``,
``mini_t5_<mode>``, ``mini_vision7`` and ``mini_text7`` point here and say
``requires: mini_vision`` / ``mini_text``, which builds everything on first use.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fusionbench.api.modelpool import MODES
from fusionbench.api.plugins import TASKPOOLS
from fusionbench.api.taskpool import TaskPool
from fusionbench.finetune import FinetuneOptions, LoraSpec, Recipe, finetune
from fusionbench.mini.build import build_world, world_dir
from fusionbench.utils.numerics import pinned_pool

BASE_DIR = {"vision": "clip", "text": "t5"}
TASKPOOL_TYPE = {"vision": "clip_vision", "text": "glue"}
REDUCED_STEPS = 3  # optimizer steps per fine-tune in a reduced (test) world

# Full fine-tuning keeps the input embeddings and the first block(s) at the base: a model
# this shallow otherwise rebuilds its input features for each task and every task vector
# interferes with all others. Vision: patch and position embeddings, pre-norm, the first of
# three blocks (research/mini_v5: designs v30 and v32). Text: the shared token embedding (also
# the LM head) and the first decoder block (research/mini_t5: designs t11 and t29).
FROZEN_IN_FULL_FINETUNING: dict[str, tuple[str, ...]] = {
    "vision": ("embeddings.", "pre_layrnorm.", "encoder.layers.0."),
    "text": ("shared.", "decoder.block.0."),
}

# LoRA and L-LoRA adapt every linear layer that full fine-tuning trains, the same layers in both
# modes (as the L-LoRA paper's Table 1 compares them): vision, all of blocks 1 and 2; text, all
# but the first decoder block's. Adapters on every layer made the vision L-LoRA merges depend on
# the adapters' init seed (seven-task task arithmetic 0.37 / 0.33 / 0.12 over seeds 42 / 1 / 2;
# blocks 1-2: 0.54 / 0.56 / 0.55), and T5's q and v alone left both text modes under 0.4
# (research/mini_v5/README.md and research/mini_t5/README.md, "Adapters where full fine-tuning
# trains").
_CLIP_LINEAR = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")
_T5_ATTENTION, _T5_FEED_FORWARD = ("q", "k", "v", "o"), ("wi_0", "wi_1", "wo")
_T5_LINEAR = {
    "encoder": [f"layer.0.SelfAttention.{p}" for p in _T5_ATTENTION] + [f"layer.1.DenseReluDense.{p}" for p in _T5_FEED_FORWARD],
    "decoder": [f"layer.0.SelfAttention.{p}" for p in _T5_ATTENTION] + [f"layer.1.EncDecAttention.{p}" for p in _T5_ATTENTION]
    + [f"layer.2.DenseReluDense.{p}" for p in _T5_FEED_FORWARD],
}
ADAPTER_TARGETS: dict[str, list[str]] = {
    "vision": [f"layers.{block}.{layer}" for block in (1, 2) for layer in _CLIP_LINEAR],
    "text": [f"encoder.block.{block}.{layer}" for block in (0, 1) for layer in _T5_LINEAR["encoder"]]
    + [f"decoder.block.1.{layer}" for layer in _T5_LINEAR["decoder"]],
}

# Tiny-model recipes: the paper's shape (AdamW + warm-up cosine for CLIP, Adam + constant for
# T5; LoRA r 16, alpha 32, one shared init seed) at CPU scale, adapters on ADAPTER_TARGETS.
# The learning rate depends on the mode (MINI_LR): at this scale LoRA needs a larger one than
# full fine-tuning, and L-LoRA (LoRA with A held at A0) a larger one still. Of the rates that
# leave every fine-tune +20 points over the base and the fine-tunes within 2 points of their
# best mean, the one at which the seven-task merges recover the most (the eight data-free
# merges on average; for the text adapters, task arithmetic); for vision full fine-tuning,
# measured over three seeds of the fine-tunes, 7e-4, level with 5e-4 (0.620 against 0.631,
# inside the scatter) and the stronger (smallest gain +21.0 against +20.6)
# (research/mini_t5/README.md, "Full fine-tuning's rate on
# the format-10 base" for text full, "Adapters where full fine-tuning trains" for the text
# adapters; research/mini_v5/README.md, "The fine-tunes' seed" for vision full, "LoRA's rate
# on version 6" and "Adapters where full fine-tuning trains, on version 6").
MINI_RECIPES: dict[str, Recipe] = {
    "vision": Recipe(
        family="clip", name="mini_clip", optimizer="adamw", lr=1e-3, weight_decay=0.0, schedule="cosine",
        warmup_ratio=0.1, steps=300, batch_size=32, init_seed=42, lora=LoraSpec(16, 32.0, 0.0, ADAPTER_TARGETS["vision"]),
        frozen=list(FROZEN_IN_FULL_FINETUNING["vision"]),
    ),
    "text": Recipe(
        family="t5", name="mini_t5", optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant",
        warmup_ratio=0.0, steps=450, batch_size=32, init_seed=42, lora=LoraSpec(16, 32.0, 0.0, ADAPTER_TARGETS["text"]),
        frozen=list(FROZEN_IN_FULL_FINETUNING["text"]),
    ),
}
MINI_LR: dict[str, dict[str, float]] = {
    "vision": {"full": 7e-4, "lora": 1.5e-3, "llora": 5e-3},
    "text": {"full": 1.5e-4, "lora": 5e-4, "llora": 1e-3},
}


def mini_recipe(kind: str, mode: str, reduced: bool = False) -> Recipe:
    """The recipe that fine-tunes the ``kind`` world's base in ``mode``."""
    base = MINI_RECIPES[kind]
    return replace(base, name=f"{base.name}_{mode}", lr=MINI_LR[kind][mode], steps=REDUCED_STEPS if reduced else base.steps)


def definitions(kind: str, world: Path) -> dict[str, Any]:
    """Task definitions for the task pool, from the world's ``tasks.json`` (datasets relative to the world)."""
    tasks = json.loads((world / "tasks.json").read_text())
    if kind == "vision":
        return {name: {"dataset": t["dataset"], "classnames": t["classnames"], "templates": t["templates"]} for name, t in tasks.items()}
    out = {}
    for name, t in tasks["tasks"].items():
        template = t["templates"]["paper"]
        target = template["target_text"]
        out[name] = {
            "dataset": t["dataset"], "input_text": template["input_text"], "metric": t["metric"],
            **({"targets": [target[str(i)] for i in range(len(target))]} if isinstance(target, dict) else {"target_format": target}),
        }
    return out


def pools_dir(kind: str, seed: int = 0, reduced: bool = False) -> Path:
    return world_dir(kind, seed, reduced) / "pools"


def pools_ready(kind: str, seed: int = 0, reduced: bool = False) -> bool:
    return (pools_dir(kind, seed, reduced) / "READY").is_file()


def _taskpool(kind: str, world: Path) -> TaskPool:
    catalog = world / "definitions.yaml"
    config = OmegaConf.merge(
        OmegaConf.structured(TASKPOOLS.get(TASKPOOL_TYPE[kind]).Config),
        {"type": TASKPOOL_TYPE[kind], "name": f"mini_{kind}", "catalog": False, "catalog_file": str(catalog)},
    )
    return TASKPOOLS.get(TASKPOOL_TYPE[kind])(config)


_WORKER_TASKPOOL: dict[Path, TaskPool] = {}  # in a worker process (one build): the task pool, loaded once


def _finetune_job(kind: str, world: Path, mode: str, task: str, out: Path, seed: int, reduced: bool) -> str:
    """One fine-tune of the pools, in a pinned worker process (``fusionbench.utils.numerics``)."""
    if world not in _WORKER_TASKPOOL:
        _WORKER_TASKPOOL[world] = _taskpool(kind, world)
    taskpool = _WORKER_TASKPOOL[world]
    options = FinetuneOptions(seed=seed, device="cpu", save_every=0, progress=False, threads=1)
    finetune(str(world / BASE_DIR[kind]), task, mode, taskpool, mini_recipe(kind, mode, reduced), out, options)
    return f"{task} ({mode})"


def default_workers(reduced: bool) -> int:
    """Parallel fine-tunes: one per CPU core up to two (tiny models scale best one thread each)."""
    return 1 if reduced else max(1, min(2, os.cpu_count() or 1))


def build_pools(kind: str, seed: int = 0, reduced: bool = False, quiet: bool = False, workers: int | None = None) -> Path:
    """Build (or finish) the world and its 7 x 3 fine-tuned checkpoints; returns the pools folder.

    ``workers`` fine-tunes run at once in separate processes (default ``default_workers``);
    every fine-tune is seeded, so the checkpoints do not depend on it.
    """
    world = build_world(kind, seed=seed, reduced=reduced, quiet=quiet)
    root = world / "pools"
    if pools_ready(kind, seed, reduced):
        return root
    (world / "definitions.yaml").write_text(yaml.safe_dump(definitions(kind, world), sort_keys=False))
    tasks = list(definitions(kind, world))
    jobs = [(mode, task) for mode in MODES for task in tasks if not (root / mode / task).is_dir()]
    workers = default_workers(reduced) if workers is None else workers
    started = time.perf_counter()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=quiet) as progress, pinned_pool(workers) as pool:
        bar = progress.add_task(f"mini {kind}: fine-tuning", total=len(MODES) * len(tasks), completed=len(MODES) * len(tasks) - len(jobs))
        futures = [pool.submit(_finetune_job, kind, world, mode, task, root / mode / task, seed, reduced) for mode, task in jobs]
        for done in as_completed(futures):
            progress.update(bar, description=f"mini {kind}: fine-tuned {done.result()}")
            progress.advance(bar)
    recipes = {mode: asdict(mini_recipe(kind, mode, reduced)) for mode in MODES}
    (root / "READY").write_text(json.dumps({"seconds": round(time.perf_counter() - started, 2), "workers": workers, "recipes": recipes}, indent=2))
    return root

