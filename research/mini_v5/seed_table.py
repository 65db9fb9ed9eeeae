"""One recipe's seven-task merges over several fine-tuning seeds (issue 16).

    python research/mini_v5/seed_table.py [--variant V] <run home> <run home> ...

Each run home is what ``research/mini_t5/adapters.py`` writes (``<home>/sweeps/<method>/<pool>/
<method>/full/summary.json``). A sweep under ``<home>/sweeps_<variant>/`` instead (another grid,
say) is a variant of its method: with ``--variant <variant>`` it stands in for the method.
Prints each method's seven-task gain recovered per run, its mean and standard deviation over
the runs, the Spearman correlation with the published TA8 ranking per run, and that of the means.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
from product_table import PUBLISHED_TA8_B32, row  # noqa: E402


def seven_task_gains(home: Path, variant: str | None) -> dict[str, float]:
    """Method -> seven-task gain recovered under ``home``: its ``sweeps`` summaries, replaced by ``sweeps_<variant>``'s."""
    gains = {}
    for folder in ["sweeps"] + ([f"sweeps_{variant}"] if variant else []):
        rows = [row(p) for p in sorted((home / folder).glob("**/full/summary.json"))]
        gains.update({r["method"]: r["gain"] for r in rows if r["subsets"] == "seven"})
    return gains


def spearman(gains: dict[str, float]) -> float:
    """Spearman correlation of the methods' gains with their published TA8 accuracy."""
    names = [n for n in PUBLISHED_TA8_B32 if n in gains]
    return float(spearmanr([gains[n] for n in names], [PUBLISHED_TA8_B32[n] for n in names]).statistic)


def main(args: list[str]) -> None:
    variant = args[1] if args[:1] == ["--variant"] else None
    homes = args[2:] if variant else args
    runs = {Path(h).name: seven_task_gains(Path(h), variant) for h in homes}
    methods = [m for m in PUBLISHED_TA8_B32 if all(m in gains for gains in runs.values())]
    print("| method | " + " | ".join(runs) + " | mean | sd |")
    print("|---|" + "---|" * (len(runs) + 2))
    means = {}
    for m in methods:
        values = [gains[m] for gains in runs.values()]
        means[m] = float(np.mean(values))
        cells = " | ".join(f"{v:.2f}" for v in values)
        print(f"| {m} | {cells} | {means[m]:.3f} | {np.std(values, ddof=1) if len(values) > 1 else 0:.3f} |")
    cells = " | ".join(f"{spearman({m: g[m] for m in methods}):.2f}" for g in runs.values())
    print(f"| Spearman | {cells} | {spearman(means):.2f} (of the means) | |")


if __name__ == "__main__":
    main(sys.argv[1:])
