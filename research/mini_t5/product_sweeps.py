"""The product's sweeps on one design's full fine-tunes (issue 16, the T5 half).

    python research/mini_t5/product_sweeps.py t38 [method ...]

Makes ``/tmp/t5r/<name>/home`` a ``FUSIONBENCH_HOME`` whose seed-0 text world is the design's
(``experiment.py``'s world and full fine-tunes, linked), runs ``fusionbench sweep method=M
modelpool=mini_t5_full subsets=full`` for each method (default: the seven data-free methods of
issue 16's ranking) and prints ``research/mini_v5/product_table.py``'s figures, Spearman included.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path("/tmp/t5r")
METHODS = ["simple_average", "task_arithmetic", "ties", "tsv", "iso_c", "iso_cts", "cart"]


def main(name: str, methods: list[str]) -> None:
    design = ROOT / name
    world = design / "home" / "mini" / "text-seed0"
    (world / "pools").mkdir(parents=True, exist_ok=True)
    for entry in (design / "world").iterdir():
        if not (world / entry.name).exists():
            (world / entry.name).symlink_to(entry.resolve())
    if not (world / "pools" / "full").exists():
        (world / "pools" / "full").symlink_to((design / "full").resolve())
    (world / "pools" / "READY").touch()  # only the full pool is swept
    env = {**os.environ, "FUSIONBENCH_HOME": str(design / "home")}
    summaries = []
    for method in methods:
        out = design / "sweeps" / "mini_t5_full" / method / "full"
        if not (out / "summary.json").is_file():
            subprocess.run(
                ["fusionbench", "sweep", f"method={method}", "modelpool=mini_t5_full", "subsets=full", f"store={design / 'sweeps.sqlite'}", f"output_dir={out}"],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
        summaries.append(str(out / "summary.json"))
    subprocess.run([sys.executable, str(Path(__file__).parents[1] / "mini_v5" / "product_table.py"), *summaries], check=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or METHODS)
