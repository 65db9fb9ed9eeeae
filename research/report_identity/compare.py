"""Compare the reports two ``runall.py`` outputs hold, apart from timings and paths.

    python compare.py <out of revision A> <out of revision B>

Flattens each ``report.json``, drops ``cost.*``, ``provenance.*`` and every key naming seconds,
peaks or times, and replaces each output folder's path by ``<OUT>``; then counts, over the
runs both revisions completed, the keys only one side has and the values that differ, by key
pattern, and lists the runs whose differing values are anything but the method's version and
the tasks' ``definition`` hashes (which include the dataset's absolute path).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

IGNORED = re.compile(r"^\.(cost|provenance)\.|seconds|_s$|peak|time")
PATHS_AND_VERSIONS = re.compile(r"\.definition$|^\.method\.version$")


def flat(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flat(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from flat(item, f"{prefix}[{index}]")
    else:
        yield prefix, value


def report(root: Path, run: str) -> dict[str, Any] | None:
    path = root / "runs" / run / "report.json"
    if not path.exists():
        return None
    return {k: v.replace(str(root), "<OUT>") if isinstance(v, str) else v for k, v in flat(json.loads(path.read_text())) if not IGNORED.search(k)}


def pattern(key: str) -> str:
    return re.sub(r"\.tasks\.[a-z0-9_]+\.", ".tasks.*.", key)


a_root, b_root = Path(sys.argv[1]), Path(sys.argv[2])
only_a, only_b, differing = Counter(), Counter(), Counter()
missing, substantive = [], {}
for run in sorted(p.name for p in (a_root / "runs").iterdir()):
    a, b = report(a_root, run), report(b_root, run)
    if a is None or b is None:
        missing.append(run)
        continue
    only_a.update(pattern(k) for k in a.keys() - b.keys())
    only_b.update(pattern(k) for k in b.keys() - a.keys())
    changed = [(k, a[k], b[k]) for k in a.keys() & b.keys() if a[k] != b[k]]
    differing.update(pattern(k) for k, _, _ in changed)
    rest = [c for c in changed if not PATHS_AND_VERSIONS.search(pattern(c[0]))]
    if rest:
        substantive[run] = rest
print(f"runs compared: {len(list((a_root / 'runs').iterdir())) - len(missing)}; missing on one side: {missing}")
print(f"keys only in {a_root.name}: {dict(only_a)}")
print(f"keys only in {b_root.name}: {dict(only_b)}")
print(f"values that differ, by key: {dict(differing)}")
print(f"runs with other differences: {len(substantive)}")
for run, rest in substantive.items():
    print(" ", run, rest[:4])
