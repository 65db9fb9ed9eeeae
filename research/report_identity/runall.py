"""Run ``fusionbench run`` for every given method on the dummy pool and the six reduced mini pools.

    PYTHONPATH=<package tree of a revision> python runall.py <revision's checkout> <out> <method,method,...>

Uses whichever ``fusionbench`` is first on ``sys.path`` (a revision's ``benchmark/`` folder linked
as ``fusionbench``, with ``methods``, ``modelpools``, ``taskpools`` and ``configs`` linked inside
it) and that revision's ``tests/mini_helpers.py``. The reduced worlds are built under
``<out>/home`` unless a world of the same format is already there; reports go to
``<out>/runs/<pool>-<method>/report.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

checkout, out = Path(sys.argv[1]), Path(sys.argv[2])
os.environ["FUSIONBENCH_HOME"] = str(out / "home")
sys.path.insert(0, str(checkout / "tests"))
from fusionbench.mini.pools import build_pools  # noqa: E402
from mini_helpers import reduced_configs  # noqa: E402

for kind in ("vision", "text"):
    build_pools(kind, reduced=True, quiet=True)
configs = out / "cfg"
configs.mkdir(parents=True, exist_ok=True)
pools = {"dummy": "dummy"}
for mode in ("full", "lora", "llora"):
    pools[f"clip_{mode}"] = str(reduced_configs(configs, f"mini_clip_{mode}", "mini_vision7"))
    pools[f"t5_{mode}"] = str(reduced_configs(configs, f"mini_t5_{mode}", "mini_text7"))
for pool_name, pool in pools.items():
    for method in sys.argv[3].split(","):
        run_dir = out / "runs" / f"{pool_name}-{method}"
        if (run_dir / "report.json").exists():
            continue
        words = [f"method={method}", f"modelpool={pool}", f"output_dir={run_dir}"] + ([] if pool_name == "dummy" else ["taskpool.limit=16"])
        cli = "import sys; from fusionbench.cli import main; sys.exit(main(sys.argv[1:]))"
        done = subprocess.run([sys.executable, "-c", cli, "run", *words], capture_output=True, text=True)
        print(pool_name, method, done.returncode, (done.stderr.strip().splitlines() or [""])[-1][:200], flush=True)
