"""The model card (``README.md``) written beside a saved merged model, in the Hugging Face hub's conventions.

YAML front matter (``base_model``, ``tags: [merge, fusionbench]``, ``library_name: peft`` for adapters, then FusionBench's own
fields: method, version, parameters, pool, checkpoints, scores when evaluated, FusionBench version) and a
short body saying how to load the model.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf

from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool

TAGS = ["merge", "fusionbench"]


def card_fields(cfg: DictConfig, method: Method, pool: ModelPool, save_format: str, scores: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The front matter of the card of ``method``'s merge of ``pool``, written in ``save_format``.

    ``scores``, for an evaluated merge: task -> {split, metric, score, n, normalized}."""
    from fusionbench import __version__

    pool_cfg = OmegaConf.to_container(cfg.modelpool, resolve=True)
    models = pool_cfg.get("models") if isinstance(pool_cfg, dict) else None  # type: ignore[union-attr]
    fields: dict[str, Any] = {
        "base_model": str(pool_cfg.get("base") or cfg.modelpool.name),  # type: ignore[union-attr]
        "tags": list(TAGS),
        "method": {"name": method.name, "version": method.version, "reference": method.reference},
        "parameters": asdict(method.params),
        "pool": {"name": cfg.modelpool.name, "mode": pool.mode, "tasks": pool.tasks, "identity": pool.identity()},
        "checkpoints": {t: str(models[t]) for t in pool.tasks} if isinstance(models, dict) else {},
        "save_format": save_format,
        "fusionbench_version": __version__,
    }
    if save_format == "adapter":
        fields["library_name"] = "peft"
    if scores is not None:
        fields["scores"] = scores
    return json.loads(json.dumps(fields, default=str))  # plain YAML types only (tuples, paths become lists, strings)


def model_card(cfg: DictConfig, method: Method, pool: ModelPool, save_format: str, scores: Optional[dict[str, Any]] = None) -> str:
    """The card's text: front matter (``card_fields``) and a body naming the merge and how to load it."""
    fields = card_fields(cfg, method, pool, save_format, scores)
    load = (
        "`PeftModel.from_pretrained(base_model, this_folder)` (peft)" if save_format == "adapter"
        else "the base model's own loader (for a transformers model: its class's `from_pretrained(this_folder)`)"
    )
    body = [
        f"# {method.name} merge of {len(pool.tasks)} models of pool {cfg.modelpool.name}",
        "",
        f"Merged by FusionBench {fields['fusionbench_version']} with {method.name} ({method.reference}) from the "
        f"{pool.mode} fine-tuned models of {', '.join(pool.tasks)} on base `{fields['base_model']}`.",
        "",
        f"Load it with {load}.",
    ]
    if scores is not None:
        body += ["", "| task | split | metric | score | normalised |", "|---|---|---|---|---|"]
        body += [f"| {t} | {s['split']} | {s['metric']} | {s['score']:.4f} | {s['normalized']} |" for t, s in scores.items()]
    return "---\n" + yaml.safe_dump(fields, sort_keys=False) + "---\n\n" + "\n".join(body) + "\n"
