"""One design of the mini vision world v5, measured end to end (issue 16).

    python research/mini_v5/experiment.py '{"name": "v5", "pretrain_steps": 2800, "finetune_lr": 3e-4}'

Pretrains a tiny ``CLIPModel`` contrastively on images of the seven domains
(``domains.py``), fine-tunes its vision tower on each task with the zero-shot head frozen
(the paper's recipe at CPU scale), and measures what issue 16 asks of a world: the base's
and the fine-tuned models' test accuracy, gain recovered = (merged - pretrained) /
(fine-tuned - pretrained) averaged over tasks, for task arithmetic on all seven tasks
(lambda picked on validation), the simple average and pairs, each vector's own gain at
lambda 0.3 and 0.5, and what one vector at lambda 1 costs the other six tasks. Writes
``research/mini_v5/results/<name>.json``; ``README.md`` tabulates the runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, str(Path(__file__).parent))
import domains  # noqa: E402

from fusionbench import ParamDictPool  # noqa: E402
from fusionbench.methods.cart import Cart, CartParams  # noqa: E402
from fusionbench.methods.iso_c import IsoC, IsoCParams  # noqa: E402
from fusionbench.methods.iso_cts import IsoCts, IsoCtsParams  # noqa: E402
from fusionbench.methods.ties import Ties, TiesParams  # noqa: E402
from fusionbench.methods.tsv import Tsv, TsvParams  # noqa: E402
from fusionbench.mini import bases, vision_world  # noqa: E402
from fusionbench.mini.tokenization import train_clip_tokenizer  # noqa: E402
from fusionbench.mini.vision_tasks import VisionTask  # noqa: E402

DEFAULTS: dict[str, Any] = dict(
    name="v0", seed=0,
    pretrain_examples=16000, pretrain_steps=700, pretrain_batch=128, pretrain_lr=2e-3, locked_text=0.3, position_std=0.2,
    pretrain_hard=(0.0, 0.5), task_hard=(0.3, 1.0), shift=False, pretrain_novel=(0.0, 0.0), task_novel=(0.0, 0.0),
    p_name=0.7, p_name_novel=None, p_wrong_novel=None, fine_share=1.0, held_out=0.0, task_name_rate=1.0, train_examples=2000,
    width=96, layers=3, text_width=64, projection=64,
    finetune_lr=1e-3, finetune_steps=300, finetune_batch=32, finetune_frozen=(), unnamed_seed=None, threads=2,
)  # fmt: skip
CAPTIONS, DOMAIN_ONLY = vision_world.CAPTION_FORMS, vision_world.DOMAIN_ONLY  # a caption names the class in one of these forms
# or a template, or names only the domain
COARSE = {  # (group name, classes) per domain: what a caption names when it does not name the class
    "shape": (("angular shape", (0, 2, 4, 5)), ("round shape", (1, 3))),
    "colour": (("warm", (0, 1, 2, 7)), ("cool", (3, 4, 5, 6))),
    "texture": (("regular", (1, 2, 3, 4)), ("irregular", (0, 5))),
    "count": (("few dots", (0, 1)), ("many dots", (2, 3, 4))),
    "position": (("top", (0, 1)), ("bottom", (2, 3))),
    "orientation": (("straight", (0, 2)), ("diagonal", (1, 3))),
    "digit": (("small", (0, 1, 2, 3, 4)), ("large", (5, 6, 7, 8, 9))),
}
COARSE_FORMS = {"shape": "a picture of an {c}.", "colour": "a {c} coloured flower.", "texture": "a {c} texture.", "count": "{c} in the sky.",
                "position": "a marker at the {c}.", "orientation": "{c} stripes.", "digit": "a house with a {c} number."}  # fmt: skip
PRETRAINING = ("seed", "pretrain_examples", "pretrain_steps", "pretrain_batch", "pretrain_lr", "locked_text", "position_std", "pretrain_hard", "pretrain_novel",
               "p_name", "p_name_novel", "p_wrong_novel", "fine_share", "held_out", "task_name_rate", "width", "layers", "text_width", "projection", "unnamed_seed")  # what the base depends on  # fmt: skip
BASES = Path("/tmp/v5/bases")  # pretrained bases, reused by designs that change only the tasks or the fine-tuning
SPLITS = {"train": None, "validation": 300, "test": 500}
TASKS = list(domains.TASKS)


def alias(task: str, k: int) -> str:
    """The common name of class ``k`` of ``task`` in pretraining captions (``task_name_rate`` < 1): a word of its
    own, so the task's label names are rare in pretraining, as a benchmark's label names are on the web."""
    return f"{task[:3]}{'abcdefghij'[k]}"


def per_task(value: Any, task: str) -> Any:
    """``value``, or its entry for ``task`` where it is given per task."""
    return value[task] if isinstance(value, dict) else value


class World:
    """Data, base and fine-tuned vision towers of one design ``v``."""

    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v
        self.tasks = {t: VisionTask(t, domains.TASKS[t], domains.TEMPLATES[t]) for t in TASKS}
        self.data: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
        self.unnamed = {}  # per task, the classes no pretraining caption names (``held_out`` of them, rounded; drawn with ``unnamed_seed``, else ``seed``)
        unnamed_seed = v["seed"] if v["unnamed_seed"] is None else v["unnamed_seed"]
        for i, t in enumerate(TASKS):
            n = len(domains.TASKS[t])
            self.unnamed[t] = set(np.random.default_rng([unnamed_seed, 4, i]).permutation(n)[: round(per_task(v["held_out"], t) * n)].tolist())
        self.processor = bases.clip_image_processor()
        for i, t in enumerate(TASKS):
            self.data[t] = {}
            for j, (split, n) in enumerate(SPLITS.items()):
                rng = np.random.default_rng([v["seed"], 1, i, j])
                labels = rng.permutation(np.arange(n or v["train_examples"]) % len(domains.TASKS[t]))
                pixels = bases.pixel_values(domains.images(t, labels, rng, tuple(per_task(v["task_hard"], t)), bool(v["shift"]), tuple(per_task(v["task_novel"], t))), self.processor)
                self.data[t][split] = (pixels, torch.tensor(labels))
        rng = np.random.default_rng([v["seed"], 2])
        self.pre_domain = rng.integers(0, len(TASKS), v["pretrain_examples"])
        self.pre_label = np.array([rng.integers(0, len(domains.TASKS[TASKS[d]])) for d in self.pre_domain])
        pre, self.pre_novel = [], []
        for d, k in zip(self.pre_domain, self.pre_label):
            hard = float(rng.uniform(*v["pretrain_hard"]))
            self.pre_novel.append(float(rng.uniform(*v["pretrain_novel"])))
            pre.append(domains.render(TASKS[d], int(k), rng, hard, False, self.pre_novel[-1]))
        self.pre_pixels = bases.pixel_values(np.stack(pre), self.processor)

    def caption(self, d: int, k: int, rng: np.random.Generator, novel: float = 0.0) -> tuple[str, tuple[int, ...]]:
        """A caption of an image of class ``k`` of domain ``d``, and the classes it is true of."""
        t = TASKS[d]
        p_name = per_task(self.v["p_name"], t)
        if self.v["p_name_novel"] is not None:  # images far from the usual range are named less often, down to p_name_novel at novel 1
            p_name += (per_task(self.v["p_name_novel"], t) - p_name) * novel
        if k in self.unnamed[t] or rng.random() >= p_name:
            return DOMAIN_ONLY[t], tuple(range(len(domains.TASKS[t])))
        if self.v["fine_share"] < 1 and rng.random() >= self.v["fine_share"]:
            group, members = next(g for g in COARSE[t] if k in g[1])
            return COARSE_FORMS[t].format(c=group), members
        if self.v["p_wrong_novel"] is not None and rng.random() < self.v["p_wrong_novel"] * novel:  # annotators misname unusual images
            k = int((k + rng.integers(1, len(domains.TASKS[t]))) % len(domains.TASKS[t]))  # another class of the task, uniformly
        forms = domains.TEMPLATES[t] + CAPTIONS[t]
        form = forms[int(rng.integers(len(forms)))]
        if rng.random() >= per_task(self.v["task_name_rate"], t):  # the class's common name, not the task's label
            return form.format(c=alias(t, k)), (int(k),)
        return form.format(c=domains.TASKS[t][k]), (int(k),)

    def captions(self, idx: np.ndarray, rng: np.random.Generator) -> tuple[list[str], torch.Tensor]:
        out = [self.caption(self.pre_domain[i], self.pre_label[i], rng, self.pre_novel[i]) for i in idx]
        dom, lab = self.pre_domain[idx], self.pre_label[idx]
        true_of = np.array([[lab[j] in classes for j in range(len(idx))] for _, classes in out])
        match = (dom[:, None] == dom[None, :]) & true_of
        return [s for s, _ in out], torch.from_numpy(match | np.eye(len(idx), dtype=bool))

    def pretrain(self) -> list[float]:
        v, rng = self.v, np.random.default_rng([self.v["seed"], 3])
        corpus = [self.caption(d, k, rng, n)[0] for d, k, n in zip(self.pre_domain[:4000], self.pre_label[:4000], self.pre_novel[:4000])]
        corpus += [f.format(c=c) for t in TASKS for f in domains.TEMPLATES[t] + CAPTIONS[t] for c in domains.TASKS[t]] + list(DOMAIN_ONLY.values())
        corpus += [f.format(c=alias(t, k)) for t in TASKS for f in CAPTIONS[t] for k in range(len(domains.TASKS[t]))]
        if v["fine_share"] < 1:
            corpus += [COARSE_FORMS[t].format(c=g) for t in TASKS for g, _ in COARSE[t]]
        self.tokenizer = tok = train_clip_tokenizer(corpus)
        text = dict(vocab_size=len(tok), hidden_size=v["text_width"], intermediate_size=4 * v["text_width"], num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=32, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
        vision = dict(hidden_size=v["width"], intermediate_size=4 * v["width"], num_hidden_layers=v["layers"], num_attention_heads=4, image_size=32, patch_size=8)
        torch.manual_seed(v["seed"])
        self.model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=v["projection"]))
        torch.nn.init.normal_(self.model.vision_model.embeddings.position_embedding.weight, std=v["position_std"])
        schedule = bases.TrainSchedule(v["pretrain_steps"], v["pretrain_batch"], lr=v["pretrain_lr"], locked_text=v["locked_text"])
        key = hashlib.sha256(json.dumps({k: v[k] for k in PRETRAINING if k in v and v[k] is not None}, sort_keys=True).encode()).hexdigest()[:16]
        cached = BASES / f"{key}.pt"
        if cached.exists():
            state = torch.load(cached, weights_only=True)
            self.model.load_state_dict(state["model"])
            losses = state["losses"].tolist()
        else:
            losses = bases.pretrain_clip(self.model, tok, self.pre_pixels, self.captions, schedule, v["seed"])
            BASES.mkdir(parents=True, exist_ok=True)
            torch.save({"model": self.model.state_dict(), "losses": torch.tensor(losses)}, cached)
        self.heads = {t: bases.zero_shot_head(self.model, tok, self.tasks[t]) for t in TASKS}
        self.names = [n for n, _ in self.model.named_parameters() if n.startswith(("vision_model", "visual_projection"))]
        self.theta0 = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in self.names}
        self.scale = float(self.model.logit_scale.exp().detach())
        return losses

    @torch.no_grad()
    def accuracy(self, params: dict[str, torch.Tensor], task: str, split: str = "test") -> float:
        for n, p in self.model.named_parameters():
            if n in params:
                p.copy_(params[n])
        x, y = self.data[task][split]
        emb = F.normalize(bases._features(self.model.get_image_features(pixel_values=x)), dim=-1)
        return float(((emb @ self.heads[task].T).argmax(-1) == y).float().mean())

    @torch.no_grad()
    def diagnose(self) -> dict[str, dict[str, float]]:
        """Per task, on the base: the largest cosine between two rows of the zero-shot head, the test
        accuracy of a ridge-regression probe on the base's image embeddings (how much of the task the
        features already hold, whatever the head), and the mean top-class probability of the base's
        zero-shot predictions on the test images it gets wrong (near-ties: close to 1 / classes)."""
        self.accuracy(self.theta0, TASKS[0])
        out: dict[str, dict[str, float]] = {}
        for t in TASKS:
            cos = self.heads[t] @ self.heads[t].T
            cos.fill_diagonal_(-1)
            (x, y), (xt, yt) = self.data[t]["train"], self.data[t]["test"]
            feats = [F.normalize(bases._features(self.model.get_image_features(pixel_values=z)), dim=-1) for z in (x, xt)]
            a = torch.cat([feats[0], torch.ones(len(x), 1)], 1)
            w = torch.linalg.solve(a.T @ a + 1e-3 * torch.eye(a.shape[1]), a.T @ F.one_hot(y).float())
            probe = float(((torch.cat([feats[1], torch.ones(len(xt), 1)], 1) @ w).argmax(-1) == yt).float().mean())
            probs = (self.scale * feats[1] @ self.heads[t].T).softmax(-1)
            wrong = probs.argmax(-1) != yt
            confidence = float(probs.max(-1).values[wrong].mean()) if bool(wrong.any()) else float("nan")
            out[t] = {"head_max_cosine": float(cos.max()), "linear_probe": probe, "top_probability_on_errors": confidence}
        for named in (True, False):  # mean cosine between head rows of classes of different tasks
            rows = [(t, self.heads[t][k]) for t in TASKS for k in range(len(domains.TASKS[t])) if (k not in self.unnamed[t]) == named]
            cosines = [float(a @ b) for i, (t, a) in enumerate(rows) for u, b in rows[i + 1 :] if t != u]
            out["across_tasks_" + ("named" if named else "unnamed")] = {"mean_cosine": float(np.mean(cosines)) if cosines else float("nan")}
        return out

    def finetune(self, task: str) -> dict[str, torch.Tensor]:
        """The vision tower fine-tuned on ``task``: AdamW, 10% warm-up then cosine, frozen zero-shot head."""
        v, m = self.v, copy.deepcopy(self.model)
        trained = [n for n in self.names if not n.startswith(tuple(v["finetune_frozen"]))]  # ``finetune_frozen``: name prefixes kept at theta0
        for n, p in m.named_parameters():
            p.requires_grad_(n in trained)
        params = [p for n, p in m.named_parameters() if n in trained]
        opt = torch.optim.AdamW(params, lr=v["finetune_lr"], weight_decay=0.0)
        steps, warm = v["finetune_steps"], max(1, v["finetune_steps"] // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm))))
        gen = torch.Generator().manual_seed(42 + TASKS.index(task))
        x, y = self.data[task]["train"]
        m.train()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (v["finetune_batch"],), generator=gen)
            emb = F.normalize(bases._features(m.get_image_features(pixel_values=x[idx])), dim=-1)
            loss = F.cross_entropy(self.scale * emb @ self.heads[task].T, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        return {n: p.detach().clone() for n, p in m.named_parameters() if n in self.names}


# Published eight-task (TA8) average accuracy, CLIP ViT-B/32, the one backbone with all seven data-free methods
# reported: simple average, task arithmetic, TIES from Yadav et al. 2023 (TIES-Merging, Table 1); TSV-M from
# Gargiulo et al. 2025; Iso-C and Iso-CTS from Marczak et al. 2025; CART from Choi et al. 2024.
PUBLISHED_TA8_B32 = {"simple_average": 65.8, "task_arithmetic": 70.1, "ties": 72.4, "cart": 84.7, "tsv": 85.9, "iso_c": 86.3, "iso_cts": 86.2}


def spearman_vs_published(gains: dict[str, float]) -> float:
    """Spearman correlation between the methods' seven-task gain recovered here and their published TA8 accuracy."""
    names = [n for n in PUBLISHED_TA8_B32 if n in gains]
    return float(spearmanr([gains[n] for n in names], [PUBLISHED_TA8_B32[n] for n in names]).statistic)


METHODS = {  # name: (method at weight 1, grid of weights of the merged task vector picked on validation)
    "ties": (lambda: Ties(TiesParams(scaling_factor=1.0)), [0.3, 0.5, 0.7, 1.0]),
    "tsv": (lambda: Tsv(TsvParams(scaling_factor=1.0)), [0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0]),
    "iso_c": (lambda: IsoC(IsoCParams(scaling_factor=1.0)), [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
    "iso_cts": (lambda: IsoCts(IsoCtsParams(scaling_factor=1.0)), [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
}


def measure(v: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    world = World(v)
    seconds = {"data": time.time() - started}
    losses = world.pretrain()
    seconds["pretrain"] = time.time() - started - seconds["data"]
    pre = {t: world.accuracy(world.theta0, t) for t in TASKS}
    tuned = {t: world.finetune(t) for t in TASKS}
    seconds["finetune"] = time.time() - started - sum(seconds.values())
    ft = {t: world.accuracy(tuned[t], t) for t in TASKS}
    tau = {t: {n: tuned[t][n] - world.theta0[n] for n in world.names} for t in TASKS}
    norm0 = math.sqrt(sum(float((p**2).sum()) for p in world.theta0.values()))

    def merged(lam: float, subset: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        return {n: world.theta0[n] + lam * sum(tau[t][n] for t in subset) for n in world.names}

    def gain(scores: dict[str, float], subset: list[str] | tuple[str, ...]) -> float:
        return float(np.mean([(scores[t] - pre[t]) / max(ft[t] - pre[t], 0.01) for t in subset]))

    def tuned_merge(subset: list[str] | tuple[str, ...], grid: list[float]) -> tuple[float, dict[str, float]]:
        lam = max(grid, key=lambda g: np.mean([world.accuracy(merged(g, subset), t, "validation") for t in subset]))
        return lam, {t: world.accuracy(merged(lam, subset), t) for t in subset}

    room = [t for t in TASKS if ft[t] - pre[t] >= 0.1]  # tasks with 10+ points between pretrained and fine-tuned
    own = {lam: gain({t: world.accuracy(merged(lam, [t]), t) for t in TASKS}, TASKS) for lam in (0.3, 0.5)}
    diagnosis = world.diagnose()
    cross = {t: {u: world.accuracy(merged(1.0, [t]), u) - pre[u] for u in TASKS if u != t} for t in TASKS}
    grid = [0.1, 1 / 7, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0]
    lam7, ta7 = tuned_merge(TASKS, grid)
    average = {t: world.accuracy(merged(1 / len(TASKS), TASKS), t) for t in TASKS}
    methods = {}
    pool = ParamDictPool(world.theta0, tuned)
    carts = {lam: Cart(CartParams(scaling_factor=lam)).merge(pool) for lam in (1.0, 1.5, 2.0, 2.5, 3.0)}  # not of the form theta0 + w d
    lam = max(carts, key=lambda g: np.mean([world.accuracy(carts[g], t, "validation") for t in TASKS]))
    test = {t: world.accuracy(carts[lam], t) for t in TASKS}
    methods["cart"] = dict(scaling_factor=lam, test=test, gain=gain(test, TASKS))
    for name, (method, weights) in METHODS.items():
        direction = {n: d - world.theta0[n] for n, d in method().merge(pool).items()}
        at = lambda w: {n: world.theta0[n] + w * direction[n] for n in world.names}  # noqa: E731
        best = max(weights, key=lambda w: np.mean([world.accuracy(at(w), t, "validation") for t in TASKS]))
        test = {t: world.accuracy(at(best), t) for t in TASKS}
        methods[name] = dict(scaling_factor=best, test=test, gain=gain(test, TASKS))
    pairs = [(a, b) for i, a in enumerate(TASKS) for b in TASKS[i + 1 :]][::3]
    pair_gain = float(np.mean([gain(tuned_merge(p, [0.3, 0.5, 0.7, 1.0])[1], p) for p in pairs]))
    return dict(
        variant=v, seconds={k: round(s, 1) for k, s in seconds.items()}, loss=(float(np.mean(losses[:20])), float(np.mean(losses[-20:]))),
        pretrained=pre, finetuned=ft, task_vector_relative_norm={t: math.sqrt(sum(float((d**2).sum()) for d in tau[t].values())) / norm0 for t in TASKS},
        own_gain=own, cross_cost_at_1=cross, mean_cross_cost_at_1=float(np.mean([c for row in cross.values() for c in row.values()])),
        task_arithmetic_7=dict(scaling_factor=lam7, test=ta7, gain=gain(ta7, TASKS)),
        simple_average_7=dict(test=average, gain=gain(average, TASKS)), pairs_task_arithmetic_gain=pair_gain, diagnosis=diagnosis, methods_7=methods,
        spearman_vs_published=spearman_vs_published({"simple_average": gain(average, TASKS), "task_arithmetic": gain(ta7, TASKS), **{n: m["gain"] for n, m in methods.items()}}),
        gain_over_tasks_with_room={n: gain(scores, room) for n, scores in (("simple_average", average), ("task_arithmetic", ta7), *((n, m["test"]) for n, m in methods.items()))},
    )  # fmt: skip


if __name__ == "__main__":
    variant = {**DEFAULTS, **(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})}
    torch.set_num_threads(variant["threads"])
    result = measure(variant)
    out = Path(__file__).parent / "results" / f"{variant['name']}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("own_gain", "mean_cross_cost_at_1", "task_arithmetic_7", "simple_average_7", "pairs_task_arithmetic_gain")}, default=str)[:2000])
