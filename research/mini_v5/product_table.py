"""Issue 16's figures for the shipped mini world, from the summaries of ``fusionbench sweep``.

    python research/mini_v5/product_table.py [--per-task] <dir>/<pool>/<method>/<subsets>/summary.json ...

For each summary: the mean test score of the merged models and the gain recovered =
(merged - pretrained) / (fine-tuned - pretrained), per task, averaged over the tasks of each
subset and then over subsets; and, per pool, the Spearman correlation of the seven data-free
methods' seven-task gain recovered with their published TA8 (ViT-B/32) accuracy.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

# Published TA8 average accuracy, CLIP ViT-B/32 (sources in research/mini_v5/README.md and docs/mini.md).
PUBLISHED_TA8_B32 = {"simple_average": 65.8, "task_arithmetic": 70.1, "ties": 72.4, "cart": 84.7, "tsv": 85.9, "iso_c": 86.3, "iso_cts": 86.2}


def gain(summary: dict[str, Any], subset: dict[str, Any]) -> float:
    """Gain recovered of one subset's merged model, averaged over its tasks."""
    out = []
    for task in subset["tasks"]:
        pre, ft = summary["pretrained"][task], summary["finetuned"][task]
        out.append((subset["scores"][task]["score"] - pre) / max(ft - pre, 1e-9))
    return float(np.mean(out))


def row(path: Path) -> dict[str, Any]:
    summary = json.loads(path.read_text())
    subsets = summary["subsets"]
    kind = "seven" if len(subsets) == 1 and len(subsets[0]["tasks"]) == 7 else f"{len(subsets)} subsets"
    return {
        "pool": path.parts[-4],  # <pool>/<method>/<subsets>/summary.json
        "method": summary["method"] if isinstance(summary["method"], str) else summary["method"].get("name"),
        "subsets": kind,
        "merged": 100 * float(np.mean([s["mean_score"] for s in subsets])),
        "gain": float(np.mean([gain(summary, s) for s in subsets])),
        "best": subsets[0]["best"] if len(subsets) == 1 else None,
        "pretrained": 100 * float(np.mean(list(summary["pretrained"].values()))),
        "finetuned": 100 * float(np.mean(list(summary["finetuned"].values()))),
    }


def per_task_tables(paths: list[Path]) -> None:
    """Per pool: pretrained, fine-tuned and each method's seven-task merge, per task (test %), with its gain recovered."""
    by_pool: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        summary = json.loads(path.read_text())
        if len(summary["subsets"]) == 1 and len(summary["subsets"][0]["tasks"]) == 7:
            by_pool[path.parts[-4]].append(summary)
    for pool, summaries in by_pool.items():
        tasks = summaries[0]["subsets"][0]["tasks"]
        print(f"\n{pool}\n\n| | " + " | ".join(tasks) + " | mean | gain recovered |\n|---|" + "---|" * (len(tasks) + 2))
        for name, scores in (("pretrained", summaries[0]["pretrained"]), ("fine-tuned", summaries[0]["finetuned"])):
            print(f"| {name} | " + " | ".join(f"{100 * scores[t]:.1f}" for t in tasks) + f" | **{100 * np.mean([scores[t] for t in tasks]):.1f}** | |")
        for summary in sorted(summaries, key=lambda s: -gain(s, s["subsets"][0])):
            subset = summary["subsets"][0]
            best = ", ".join(f"{k} {v:g}" for k, v in subset["best"].items())
            label = summary["method"]["name"] + (f" ({best})" if best else "")
            cells = " | ".join(f"{100 * subset['scores'][t]['score']:.1f}" for t in tasks)
            print(f"| {label} | {cells} | **{100 * subset['mean_score']:.1f}** | {gain(summary, subset):.2f} |")


def main(paths: list[str]) -> None:
    if paths and paths[0] == "--per-task":
        per_task_tables([Path(p) for p in paths[1:]])
        return
    rows = [row(Path(p)) for p in paths]
    print("| pool | method | subsets | pretrained | fine-tuned | merged | gain recovered | selected |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pool']} | {r['method']} | {r['subsets']} | {r['pretrained']:.1f} | {r['finetuned']:.1f} | {r['merged']:.1f} | {r['gain']:.2f} | {r['best'] or ''} |")
    seven: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["subsets"] == "seven":
            seven[r["pool"]][r["method"]] = r["gain"]
    for pool, gains in seven.items():
        names = [n for n in PUBLISHED_TA8_B32 if n in gains]
        if len(names) >= 3:
            rho = spearmanr([gains[n] for n in names], [PUBLISHED_TA8_B32[n] for n in names]).statistic
            print(f"{pool}: Spearman vs published TA8 over {len(names)} methods = {rho:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
