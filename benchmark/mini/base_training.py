"""Training the mini bases: ``fusionbench mini train-base vision|text``, and the tiny base of a reduced world.

Both run ``vision_world.train_base`` / ``text_world.train_base`` under pinned numerics and
write the same folder: the model (safetensors) and processor or tokenizer the `clip` / `t5`
pool loads, ``checksums.json`` and ``training.json`` (recipe, seeds, losses, numerics,
library versions, seconds). The full recipes' folders are what the package ships as
``base_vision/`` and ``base_text/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.progress import Progress
from transformers import CLIPProcessor

from fusionbench.mini import bases, shipped, text_data, text_world, vision_world
from fusionbench.mini.build_steps import WorldSize, atomic_dir, library_progress_bars_off, library_versions, loss_summary, progress_bar, stream_rng, torch_seed, write_json
from fusionbench.utils.numerics import numerics_record, run_pinned


def train_vision_into(target: Path, examples: int, steps: int, batch_size: int, seed: int, progress: Progress) -> dict[str, Any]:
    """Pretrain a vision base (``examples`` images, ``steps`` steps of ``batch_size``) and write it into ``target``;
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
    return _record(target, recipe, losses, started)


def train_text_into(target: Path, corpus: text_world.TextCorpus, steps: int, batch_size: int, seed: int, progress: Progress) -> dict[str, Any]:
    """Train the tokenizer and pretrain a text base on ``corpus`` (``steps`` steps of ``batch_size``) into ``target``;
    returns its training record."""
    started = time.perf_counter()
    bar = progress.add_task("text: pretrain T5", total=steps)
    model, tokenizer, losses = text_world.train_base(corpus, steps, batch_size, seed, lambda k: progress.advance(bar, k))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    recipe = {
        "prompts_per_task": len(next(iter(corpus.prompts.values()))), "train_examples_per_task": len(next(iter(corpus.splits.values()))["train"]),
        "steps": steps, "batch_size": batch_size, "lr": text_world.PRETRAIN_LR, "denoising_share": text_world.DENOISING_SHARE,
        "gold_share": text_data.GOLD_SHARE, "readout_words": text_data.READOUT_WORDS, "readout_people": text_data.READOUT_PEOPLE,
        "readout_share": text_data.READOUT_SHARE, "seed": seed, "init_seed": torch_seed(seed, "t5", "init"), "train_seed": torch_seed(seed, "t5", "train"),
    }  # fmt: skip
    return _record(target, recipe, losses, started)


def _record(target: Path, recipe: dict[str, Any], losses: list[float], started: float) -> dict[str, Any]:
    """Write the base's checksums and training record; returns the record with its source."""
    record = {
        "recipe": recipe, "pretrain_loss": loss_summary(losses), "numerics": numerics_record(),
        "versions": library_versions(), "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    shipped.write_checksums(target)
    write_json(target / shipped.RECORD, record)
    return {"source": "trained in this build", **record}


def _train_job(kind: str, target: Path, size: WorldSize, quiet: bool) -> None:
    with library_progress_bars_off(), progress_bar(quiet, None) as progress:
        if kind == "vision":
            train_vision_into(target, size.pretrain_examples, size.pretrain_steps, size.batch_size, 0, progress)
        else:
            corpus = text_world.generate_corpus(size.split_sizes(), size.pretrain_examples, 0, lambda k: None)
            train_text_into(target, corpus, size.pretrain_steps, size.batch_size, 0, progress)


def train_base(kind: str, out: Path, size: WorldSize, quiet: bool = False) -> dict[str, str]:
    """Train the ``kind`` base with seed 0 at ``size`` (``build.SIZES``) in a pinned process and write it to ``out``
    (atomically); returns its checksums."""
    with atomic_dir(out) as tmp:
        run_pinned(_train_job, kind, tmp, size, quiet)
    return shipped.verify(out)
