"""DARE and TIES of an earlier revision against the working tree's, side by side with the bandwidth floor.

``python perf/before_after.py REV [block|tower] [ROUNDS]`` loads the engine's modules (``methods/philox.py``,
``kernels.py``, ``ties_kernels.py``, ``elementwise.py``, ``selection.py``, ``ties.py``, ``dare.py``: those the
revision has) as they were at git revision REV (each module's imports of one another redirected to the old copies), builds ``merge_workload``'s eight
ViT-B/16-shaped tasks and times, interleaved and fastest of ROUNDS (default 5): the floor, and
TIES (k = 0.2), DARE (p = 0.5, task arithmetic) and DARE + TIES of both revisions with their
defaults on the fine-tuned parameters (the merge functions ``Method.merge`` calls, without its
input loading and finite check, which are the same for both). It prints each as seconds and as a
ratio to the floor (wall clock, and the thread's CPU time, steadier on a shared machine),
and whether both revisions' merges are equal in every entry. One torch thread.
"""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch
from merge_workload import bandwidth_floor, random_vit_pool

from fusionbench.methods import dare, ties

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("philox", "kernels", "ties_kernels", "elementwise", "selection", "ties", "dare")  # in import order


def redirect(source: str, loaded: dict[str, types.ModuleType]) -> str:
    """``source`` with its imports of the ``loaded`` engine modules pointed at their old copies (``before_<name>``)."""
    lines = []
    for line in source.splitlines():
        if line.startswith("from fusionbench.methods import "):
            names = [n.strip() for n in line.removeprefix("from fusionbench.methods import ").split(",")]
            lines += [f"import before_{n} as {n}" for n in names if n in loaded]
            rest = [n for n in names if n not in loaded]
            line = f"from fusionbench.methods import {', '.join(rest)}" if rest else ""
        for name in loaded:
            line = line.replace(f"from fusionbench.methods.{name} import", f"from before_{name} import")
        lines.append(line)
    return "\n".join(lines)


def load_revision(revision: str) -> dict[str, types.ModuleType]:
    """The engine modules ``revision`` has, as modules named ``before_<name>`` importing one another (their compiled
    kernels compiled afresh, not cached: exec'd code has no file for Numba's cache)."""
    loaded: dict[str, types.ModuleType] = {}
    for name in MODULES:
        shown = subprocess.run(["git", "show", f"{revision}:methods/{name}.py"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode:
            continue  # not at that revision
        source = redirect(shown.stdout.replace("cache=True", "cache=False"), loaded)
        module = sys.modules[f"before_{name}"] = types.ModuleType(f"before_{name}")
        exec(compile(source, f"{revision}:methods/{name}.py", "exec"), module.__dict__)
        loaded[name] = module
    return loaded


def merges(ties_module: Any, dare_module: Any, base: Any, thetas: list[Any]) -> dict[str, Callable[[], Any]]:
    return {
        "TIES (k = 0.2)": lambda: ties_module.ties_merge(base, thetas, 0.2, 1.0, "mean", "kthvalue", finetuned=True),
        "DARE (p = 0.5)": lambda: dare_module.dare_merge(base, thetas, 0.5, 0, "task_arithmetic", 0.3, finetuned=True),
        "DARE + TIES": lambda: dare_module.dare_merge(base, thetas, 0.5, 0, "ties", 1.0, finetuned=True),
    }


def main(revision: str, scope: str = "block", rounds: int = 5) -> None:
    torch.set_num_threads(1)
    before = load_revision(revision)
    pool = random_vit_pool(scope)
    base, thetas = pool.base(), [pool.finetuned(task) for task in pool.tasks]
    old, new = merges(before["ties"], before["dare"], base, thetas), merges(ties, dare, base, thetas)
    calls: dict[str, Callable[[], Any]] = {"floor": lambda: bandwidth_floor(pool, True)}
    for name in old:
        calls[f"{name}, {revision}"], calls[f"{name}, now"] = old[name], new[name]
    equal = {name: all(torch.equal(a, b) for a, b in zip(old[name]().values(), new[name]().values())) for name in old}
    times: dict[str, list[float]] = {key: [] for key in calls}
    cpu: dict[str, list[float]] = {key: [] for key in calls}
    order = list(calls)
    for _ in range(rounds):
        for key in order:
            start, start_cpu = time.perf_counter(), time.thread_time()
            calls[key]()
            times[key].append(time.perf_counter() - start)
            cpu[key].append(time.thread_time() - start_cpu)
        order.reverse()
    floor, floor_cpu = min(times["floor"]), min(cpu["floor"])
    print(f"8 ViT-B/16 tasks ({scope}), one thread, fastest of {rounds} interleaved rounds: wall clock, and CPU time of the thread")
    for key, values in times.items():
        wall, used = min(values), min(cpu[key])
        print(f"{key:<32} {wall:8.4f} s  {wall / floor:6.2f}x the floor   CPU {used:8.4f} s  {used / floor_cpu:6.2f}x")
    for name, same in equal.items():
        print(f"{name}: {revision} and now equal in every entry: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main(sys.argv[1], *(sys.argv[2:3] or ["block"]), *[int(a) for a in sys.argv[3:4]])
