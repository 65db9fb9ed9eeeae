"""The table of every text-world design measured by ``experiment.py`` (oldest first), as Markdown.

    python research/mini_t5/table.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from experiment import DEFAULTS  # type: ignore[import-not-found]

RESULTS = Path(__file__).parent / "results"


def changes(config: dict[str, object]) -> str:
    """What the design changes from ``DEFAULTS``."""
    return ", ".join(f"{k}={v}" for k, v in config.items() if k not in ("name", "lambdas") and v != DEFAULTS.get(k)) or "product v4"


def main() -> None:
    print("| design | changes | pretrained → fine-tuned (min gain) | own gain λ 0.3 / 0.5 | one vector at λ 1: others | TA (λ) | SA | pairs TA |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(RESULTS.glob("*.json"), key=os.path.getmtime):
        d = json.loads(path.read_text())
        own = d["own_gain"]
        print(
            f"| {d['config']['name']} | {changes(d['config'])} | {d['pre_mean']:.1f} → {d['ft_mean']:.1f} (+{d['min_gain']:.1f}) "
            f"| {own['0.3']:.2f} / {own['0.5']:.2f} | {d['mean_cost_at_1']:+.1f} | {d['ta']['gain']:.2f} ({d['ta']['lambda']}) "
            f"| {d['sa']['gain']:.2f} | {d['pairs_ta_gain']:.2f} |"
        )


if __name__ == "__main__":
    main()
