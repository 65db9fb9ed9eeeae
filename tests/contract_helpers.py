"""What the error-contract tests share: a plugin method that misbehaves on request, the commands they start
from, and a listing of the files a command may not change."""

from __future__ import annotations

import os
from pathlib import Path

PLUGIN = """
import os
import signal
import sys
import torch
from fusionbench import Method, ParamDict


class Broken(Method):
    name = "broken"
    description = "a plugin method that misbehaves in the way its file says"
    reference = "test"

    def merge(self, pool, data=None):
        base = pool.base()
        return {behaviour}
"""
BEHAVIOURS = {
    "raises": "(_ for _ in ()).throw(RuntimeError('boom from plugin'))",
    "none": "None",
    "dict": "dict(base)",
    "nan": "base * float('nan')",
    "int64": "ParamDict({k: v.to(torch.int64) for k, v in base.items()})",
    "renamed": "ParamDict({k + '_x': v for k, v in base.items()})",
    "exits": "sys.exit(3)",
    "is terminated": "os.kill(os.getpid(), signal.SIGTERM)",
}
RUN = ["run", "method=ties", "modelpool=dummy"]
MERGE = ["merge", "method=ties", "modelpool=dummy"]
SWEEP = ["sweep", "method=task_arithmetic", "modelpool=dummy", "subsets=pairs", "grid.scaling_factor=[0.3]"]


def plugin(tmp: Path, behaviour: str) -> str:
    path = tmp / f"broken_{behaviour}.py"
    path.write_text(PLUGIN.format(behaviour=BEHAVIOURS[behaviour]))
    return str(path)


def tree(*roots: Path) -> dict[str, int]:
    """Every file and folder under ``roots`` with its size (folders: -1), but the content-addressed cache.

    The cache (``$FUSIONBENCH_HOME/cache``) holds only complete, reusable results written atomically
    (reference scores computed before a later step failed), so it may grow."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != Path(root, "cache")]
            for name in dirnames:
                out[os.path.join(dirpath, name)] = -1
            for name in filenames:
                path = os.path.join(dirpath, name)
                out[path] = os.path.getsize(path)
    return out
