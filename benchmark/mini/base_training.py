"""Training the mini vision base: ``fusionbench mini train-base vision``, and the tiny base of a reduced world.

Both run ``vision_world.train_base`` under pinned numerics and write the same folder: the
``CLIPModel`` (safetensors) and ``CLIPProcessor`` the `clip` pool loads, ``checksums.json``
and ``training.json`` (recipe, seeds, losses, numerics, library versions, seconds). The
full recipe's folder is what the package ships as ``base_vision/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.progress import Progress
from transformers import CLIPProcessor

from fusionbench.mini import bases, shipped, vision_world
from fusionbench.mini.build_steps import atomic_dir, library_progress_bars_off, library_versions, loss_summary, progress_bar, stream_rng, torch_seed, write_json
from fusionbench.utils.numerics import numerics_record, run_pinned


def train_into(target: Path, examples: int, steps: int, batch_size: int, seed: int, progress: Progress) -> dict[str, Any]:
    """Pretrain a base (``examples`` images, ``steps`` steps of ``batch_size``) and write it into ``target``;
    returns its training record."""
    started = time.perf_counter()
    bar = progress.add_task("vision: pretrain CLIP", total=steps)
    init, train = torch_seed(seed, "clip", "init"), torch_seed(seed, "clip", "train")
    model, tokenizer, losses = vision_world.train_base(
        examples, steps, batch_size, stream_rng(seed, "vision", "pretrain"), init, train, lambda k: progress.advance(bar, k)
    )
    model.save_pretrained(target)
    CLIPProcessor(image_processor=bases.clip_image_processor(), tokenizer=tokenizer).save_pretrained(target)
    recipe = {"examples": examples, "steps": steps, "batch_size": batch_size, "lr": vision_world.PRETRAIN_LR,
              "locked_text": vision_world.LOCKED_TEXT, "seed": seed, "init_seed": init, "train_seed": train}  # fmt: skip
    record = {
        "recipe": recipe, "pretrain_loss": loss_summary(losses), "numerics": numerics_record(),
        "versions": library_versions(), "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    shipped.write_checksums(target)
    write_json(target / shipped.RECORD, record)
    return {"source": "trained in this build", **record}


def _train_job(target: Path, examples: int, steps: int, batch_size: int, quiet: bool) -> None:
    with library_progress_bars_off(), progress_bar(quiet, None) as progress:
        train_into(target, examples, steps, batch_size, 0, progress)


def train_vision_base(out: Path, examples: int, steps: int, batch_size: int, quiet: bool = False) -> dict[str, str]:
    """Train the vision base with seed 0 in a pinned process and write it to ``out`` (atomically); returns its checksums."""
    with atomic_dir(out) as tmp:
        run_pinned(_train_job, tmp, examples, steps, batch_size, quiet)
    return shipped.verify(out)
