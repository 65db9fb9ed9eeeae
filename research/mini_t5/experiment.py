"""One design of the mini text world, measured end to end (issue 16, the T5 half).

    python research/mini_t5/experiment.py '{"name": "t29", "seed": 3, "frozen": ["shared.", "encoder.block.0."]}'
    python research/mini_t5/experiment.py '{"name": "t37", "pretrain_steps": 2000, "frozen": ["shared.", "decoder.block.0."],
                                            "readout": {"cola": {"acceptable": "fine"}}}'

Builds a text world with the product's generators (``fusionbench.mini.text_data``) and
pretraining loop, with the design's changes patched in (designs t0-t15 ran at commit
c512aba, before per-task domains and gold pretraining targets moved into the product, with
options ``lexicon`` and ``p_gold`` defaulting to the old shared lexicon and 0.0; designs t16 on
ran on format 6, whose per-task domains and ``p_gold`` 0.5 are the product's); fine-tunes the
base on each of the seven tasks in full mode through the product's ``finetune`` (two pinned
worker processes); then measures what issue 16 asks: pretrained and fine-tuned test scores, gain recovered =
(merged - pretrained) / (fine-tuned - pretrained) averaged over tasks, for task arithmetic
over all seven tasks (lambda picked on validation) and over the 21 pairs, the simple
average, each vector's own gain at lambda 0.3 / 0.5, and what one vector at lambda 1 costs
the other six tasks. Writes ``research/mini_t5/results/<name>.json``.
``readout`` ({task: {label word: other word}}) sets the product's ``text_data.READOUT_WORDS``
(default here: none), ``readout_nouns`` and ``readout_share`` its ``READOUT_PEOPLE`` and
``READOUT_SHARE``: the pretraining prompts that name one of the task's first ``readout_nouns``
people answer with the other word with probability ``readout_share``, drawn from the product's
stream (designs t37-t49 ran at commit bccc0af, which drew it from the harness's own generator
and took ``readout_nouns`` 0 for every prompt).
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from concurrent.futures import as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from fusionbench.finetune import FinetuneOptions, finetune
from fusionbench.mini import bases, build, pools, text_data, text_world
from fusionbench.mini.build_steps import StepTimer, progress_bar
from fusionbench.utils.numerics import pinned_pool

DEFAULTS: dict[str, Any] = dict(
    name="t0", seed=0, d_model=64, d_ff=256, layers=2, pretrain_steps=700, pretrain_lr=2e-3, denoise=0.25,
    p_gold=0.5, prompt_share=1.0, world_from=None, train_examples=8000,
    finetune_lr=3e-4, finetune_steps=450, frozen=[], lambdas=[round(0.05 * i, 2) for i in range(1, 21)],
    readout={}, readout_share=1.0, readout_nouns=0,
)  # fmt: skip
ROOT = Path("/tmp/t5r")
RESULTS = Path(__file__).parent / "results"


def _patch(cfg: dict[str, Any]) -> None:
    """Apply the design's changes to the product modules (this process only)."""
    base_config = bases.t5_config

    def config(tokenizer: Any) -> Any:
        c = base_config(tokenizer)
        c.d_model, c.d_ff, c.num_layers, c.num_decoder_layers = cfg["d_model"], cfg["d_ff"], cfg["layers"], cfg["layers"]
        c.d_kv = cfg["d_model"] // c.num_heads
        return c

    bases.t5_config = config  # type: ignore[assignment]
    schedule = bases.TrainSchedule
    bases.TrainSchedule = lambda steps, batch, lr: schedule(steps, batch, lr=cfg["pretrain_lr"])  # type: ignore[assignment,misc]
    text_world.DENOISING_SHARE = 1.0 - cfg["prompt_share"] * (1.0 - cfg["denoise"])
    text_data.GOLD_SHARE = cfg["p_gold"]
    if cfg["readout"] and not cfg["readout_nouns"]:
        sys.exit("readout words in every prompt (readout_nouns 0: designs t37-t43) ran at commit bccc0af")
    text_data.READOUT_WORDS = cfg["readout"]  # {} (the default here): no readout words, as before format 9
    text_data.READOUT_PEOPLE, text_data.READOUT_SHARE = cfg["readout_nouns"], cfg["readout_share"]


def build_world(cfg: dict[str, Any], world: Path) -> dict[str, Any]:
    if (world / "manifest.json").is_file():
        return json.loads((world / "manifest.json").read_text())
    _patch(cfg)
    size = build.WorldSize(cfg["train_examples"], 300, 500, 4000, cfg["pretrain_steps"], 64)
    tmp = world.with_name(world.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with progress_bar(False, None) as progress:
        results = build._fill_text(tmp, size, cfg["seed"], True, progress, StepTimer())  # True: train the base in the build
    (tmp / "manifest.json").write_text(json.dumps(results, indent=1))
    (tmp / "definitions.yaml").write_text(yaml.safe_dump(pools.definitions("text", tmp), sort_keys=False))
    tmp.rename(world)
    return results


def finetune_job(world: Path, task: str, mode: str, recipe: Any, out: Path) -> str:
    """One fine-tune of the world's T5 base, as the pools' workers run it (seed 0, one thread)."""
    taskpool = pools._taskpool("text", world)
    finetune(str(world / "t5"), task, mode, taskpool, recipe, out, FinetuneOptions(seed=0, device="cpu", save_every=0, progress=False, threads=1))
    return task


def finetune_all(cfg: dict[str, Any], world: Path, out: Path) -> None:
    recipe = replace(pools.mini_recipe("text", "full"), lr=cfg["finetune_lr"], steps=cfg["finetune_steps"], frozen=list(cfg["frozen"]))
    todo = [t for t in text_data.TEXT_TASKS if not (out / t).is_dir()]
    with pinned_pool(2) as pool:
        for done in as_completed([pool.submit(finetune_job, world, t, "full", recipe, out / t) for t in todo]):
            print("fine-tuned", done.result(), flush=True)


class Evaluator:
    """Scores of merged state dicts on the world's validation / test splits."""

    def __init__(self, world: Path, pools_dir: Path) -> None:
        import datasets
        from safetensors.torch import load_file
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        self.model = T5ForConditionalGeneration.from_pretrained(world / "t5").eval()
        self.tokenizer = AutoTokenizer.from_pretrained(world / "t5")
        self.base = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.tasks = list(text_data.TEXT_TASKS)
        self.vectors = {}
        for t in self.tasks:
            tuned = load_file(str(pools_dir / t / "model.safetensors"))
            self.vectors[t] = {k: tuned[k] - self.base[k] for k in tuned if k in self.base}
        self.data = {t: {s: [dict(r) for r in datasets.load_from_disk(str(world / "data" / t))[s]] for s in ("validation", "test")} for t in self.tasks}

    def scores(self, coefficients: dict[str, float], tasks: list[str], split: str) -> dict[str, float]:
        state = {k: v.clone() for k, v in self.base.items()}
        for t, c in coefficients.items():
            for k, d in self.vectors[t].items():
                state[k] += c * d
        self.model.load_state_dict(state, strict=False)
        return {t: bases.t5_score(self.model, self.tokenizer, text_data.TEXT_TASKS[t], self.data[t][split])["value"] for t in tasks}

    def tuned_ta(self, tasks: list[str], lambdas: list[float]) -> tuple[float, dict[str, float], list[float]]:
        curve = [float(np.mean(list(self.scores({t: lam for t in tasks}, tasks, "validation").values()))) for lam in lambdas]
        best = lambdas[int(np.argmax(curve))]
        return best, self.scores({t: best for t in tasks}, tasks, "test"), curve


def gain(scores: dict[str, float], pre: dict[str, float], ft: dict[str, float]) -> float:
    return float(np.mean([(scores[t] - pre[t]) / max(ft[t] - pre[t], 1e-9) for t in scores]))


def main(cfg: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    start = time.time()
    world = ROOT / cfg["name"] / "world"
    if cfg.get("world_from") and not world.exists():  # the same base, other fine-tunes
        world.parent.mkdir(parents=True, exist_ok=True)
        world.symlink_to((ROOT / cfg["world_from"] / "world").resolve())
    manifest = build_world(cfg, world)
    print("pretrained", {t: s["value"] for t, s in manifest["pretrained"].items()}, flush=True)
    finetune_all(cfg, world, world.parent / "full")
    ev = Evaluator(world, world.parent / "full")
    tasks = ev.tasks
    pre = ev.scores({}, tasks, "test")
    ft = {t: ev.scores({t: 1.0}, [t], "test")[t] for t in tasks}
    own = {lam: {t: ev.scores({t: lam}, [t], "test")[t] for t in tasks} for lam in (0.3, 0.5)}
    cost = {}
    for t in tasks:
        others = [u for u in tasks if u != t]
        s = ev.scores({t: 1.0}, others, "test")
        cost[t] = float(np.mean([s[u] - pre[u] for u in others]))
    lam, ta, curve = ev.tuned_ta(tasks, cfg["lambdas"])
    sa = ev.scores({t: 1 / len(tasks) for t in tasks}, tasks, "test")
    pair_gains = []
    for a, b in itertools.combinations(tasks, 2):
        _, s, _ = ev.tuned_ta([a, b], [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0])
        pair_gains.append(gain(s, pre, ft))
    out = {
        "config": cfg, "pretrained": pre, "finetuned": ft,
        "pre_mean": 100 * np.mean(list(pre.values())), "ft_mean": 100 * np.mean(list(ft.values())),
        "min_gain": 100 * min(ft[t] - pre[t] for t in tasks),
        "own_gain": {str(k): gain(v, pre, ft) for k, v in own.items()},
        "cost_at_1": cost, "mean_cost_at_1": 100 * float(np.mean(list(cost.values()))),
        "ta": {"lambda": lam, "scores": ta, "gain": gain(ta, pre, ft), "val_curve": dict(zip(map(str, cfg["lambdas"]), curve))},
        "sa": {"scores": sa, "gain": gain(sa, pre, ft)},
        "pairs_ta_gain": float(np.mean(pair_gains)),
        "seconds": round(time.time() - start),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{cfg['name']}.json").write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps({k: out[k] for k in ("pre_mean", "ft_mean", "min_gain", "own_gain", "mean_cost_at_1", "pairs_ta_gain", "seconds")}, default=float))
    print("TA", lam, round(out["ta"]["gain"], 3), "SA", round(out["sa"]["gain"], 3))
    print("pre", pre, "\nft", ft, "\nTA", ta)


if __name__ == "__main__":
    main({**DEFAULTS, **json.loads(sys.argv[1])})
