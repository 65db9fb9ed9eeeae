"""The error contract, input by input: every bad input is one ``error:`` line, exit status 2,
no traceback, and nothing written (reliability issues: each case is named after its class)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

import pytest

from fusionbench.cli.main import main

PLUGIN = """
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
}
RUN = ["run", "method=ties", "modelpool=dummy"]
SWEEP = ["sweep", "method=task_arithmetic", "modelpool=dummy", "subsets=pairs", "grid.scaling_factor=[0.3]"]


def plugin(tmp: Path, behaviour: str) -> str:
    path = tmp / f"broken_{behaviour}.py"
    path.write_text(PLUGIN.format(behaviour=BEHAVIOURS[behaviour]))
    return str(path)


Case = Callable[[Path], list[str]]
CASES: dict[str, Case] = {
    # words and lists
    "unknown verb": lambda t: ["rnu"],
    "word without =": lambda t: [*RUN, "seed"],
    "word starting with =": lambda t: [*RUN, "=3"],
    "unknown top-level key": lambda t: [*RUN, "sed=1"],
    "missing method": lambda t: ["run", "modelpool=dummy"],
    "unknown method": lambda t: ["run", "method=tiess", "modelpool=dummy"],
    "unknown pool": lambda t: ["run", "method=ties", "modelpool=dumy"],
    "empty method": lambda t: ["run", "method=", "modelpool=dummy"],
    "unknown method key": lambda t: [*RUN, "method.kk=0.2"],
    "ill-typed method value": lambda t: [*RUN, "method.k=abc"],
    "broken list (plugins)": lambda t: [*RUN, "plugins=[a.py"],
    "broken list (value)": lambda t: ["run", "method=task_arithmetic", "modelpool=dummy", "method.scaling_factor=[0.1,"],
    "control character in a value": lambda t: [*RUN, "method.k=0.2\x07"],
    "unresolvable interpolation": lambda t: [*RUN, "method.k=${oc.env:FUSIONBENCH_NO_SUCH_VARIABLE}"],
    "very long value": lambda t: [*RUN, "method.k=" + "9" * 60000],
    # numbers
    "NaN parameter": lambda t: [*RUN, "method.k=nan"],
    "infinite parameter": lambda t: [*RUN, "method.k=inf"],
    "parameter out of range": lambda t: [*RUN, "method.k=2"],
    "seed beyond 64 bits": lambda t: [*RUN, "seed=999999999999999999999"],
    "negative seed": lambda t: [*RUN, "seed=-1"],
    "zero limit": lambda t: [*RUN, "taskpool.limit=0"],
    "zero examples": lambda t: [*RUN, "taskpool.examples=0"],
    "zero batch size": lambda t: [*RUN, "taskpool.batch_size=0"],
    "negative batch size": lambda t: [*RUN, "taskpool.batch_size=-1"],
    "duplicate pool tasks": lambda t: [*RUN, "modelpool.tasks=[alpha,alpha]"],
    "duplicate task pool tasks": lambda t: [*RUN, "taskpool.tasks=[alpha,alpha]"],
    "unknown split": lambda t: [*RUN, "split=bogus"],
    "unknown device": lambda t: [*RUN, "device=tpu"],
    "sweep on a foreign SQLite file": lambda t: [*SWEEP, f"store={t / 'foreign.sqlite'}"],
    # files
    "output under a file": lambda t: [*RUN, f"output_dir={t / 'a_file'}/run"],
    "missing pool file": lambda t: ["run", "method=ties", f"modelpool={t / 'nope.yaml'}"],
    "pool file that is a folder": lambda t: ["run", "method=ties", f"modelpool={t}/"],
    "pool file that is not YAML": lambda t: ["run", "method=ties", f"modelpool={t / 'garbage.yaml'}"],
    "pool file that is a list": lambda t: ["run", "method=ties", f"modelpool={t / 'list.yaml'}"],
    "missing plugin": lambda t: [*RUN, f"plugins=[{t / 'nope.py'}]"],
    "plugin that is not Python": lambda t: [*RUN, f"plugins=[{t / 'garbage.yaml'}]"],
    "plugin with a syntax error": lambda t: [*RUN, f"plugins=[{t / 'syntax.py'}]"],
    # plugins that misbehave
    **{f"plugin merge {b}": (lambda b: lambda t: ["run", "method=broken", "modelpool=dummy", f"plugins=[{plugin(t, b)}]"])(b) for b in BEHAVIOURS},
    "sweep with a plugin that raises": lambda t: ["sweep", "method=broken", "modelpool=dummy", "subsets=pairs", f"plugins=[{plugin(t, 'raises')}]", f"store={t / 'new.sqlite'}"],
    # sweep
    "sweep subset size too large": lambda t: [*SWEEP, "subsets=size=9"],
    "sweep unknown subsets": lambda t: [*SWEEP, "subsets=trios"],
    "sweep empty grid": lambda t: [*SWEEP, "grid.scaling_factor=[]"],
    "sweep non-numeric grid": lambda t: [*SWEEP, "grid.scaling_factor=[a,b]"],
    "sweep NaN in grid": lambda t: [*SWEEP, "grid.scaling_factor=[nan]"],
    "sweep unknown grid key": lambda t: [*SWEEP, "grid.scale=[0.1]"],
    "sweep zero workers": lambda t: [*SWEEP, "workers=0"],
    "sweep negative threads": lambda t: [*SWEEP, "threads=-1"],
    "sweep unknown executor": lambda t: [*SWEEP, "executor=slurm"],
    "sweep zero ray actors": lambda t: [*SWEEP, "executor=ray", "ray.actors=0"],
    "sweep negative ray cpus": lambda t: [*SWEEP, "executor=ray", "ray.cpus_per_actor=-1"],
    "sweep store under a file": lambda t: [*SWEEP, f"store={t / 'a_file'}/s.sqlite"],
    "sweep store that is not SQLite": lambda t: [*SWEEP, f"store={t / 'garbage.yaml'}"],
    # results
    "results missing store": lambda t: ["results", f"store={t / 'nope.sqlite'}"],
    "results unknown format": lambda t: ["results", "format=xml"],
    "results unknown split": lambda t: ["results", "split=bogus"],
    "results compare without summaries": lambda t: ["results", "compare"],
    "results compare of garbage": lambda t: ["results", "compare", f"summaries=[{t / 'garbage.yaml'}]"],
    "results compare of a missing summary": lambda t: ["results", "compare", f"summaries=[{t / 'nope'}]"],
    # list, leaderboard, analyze, profile, finetune, mini
    "list what": lambda t: ["list", "method"],
    "list two words": lambda t: ["list", "methods", "extra"],
    "leaderboard unknown action": lambda t: ["leaderboard", "bogus"],
    "leaderboard validate missing file": lambda t: ["leaderboard", "validate", str(t / "nope.json")],
    "leaderboard validate garbage": lambda t: ["leaderboard", "validate", str(t / "garbage.yaml")],
    "analyze unknown analysis": lambda t: ["analyze", "cosines"],
    "analyze without a pool": lambda t: ["analyze", "cosine"],
    "analyze scaling NaN lambda": lambda t: ["analyze", "scaling", "modelpool=dummy", "lambdas=[nan]"],
    "analyze interference bad split": lambda t: ["analyze", "interference", "modelpool=dummy", "split=bogus"],
    "profile unknown model": lambda t: ["profile", "model=clip-vit-b99"],
    "profile unknown paradigm": lambda t: ["profile", "model=clip-vit-b16", "paradigms=fulll"],
    "finetune unknown mode": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=fulll"],
    "finetune missing model": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full"],
    "mini unknown action": lambda t: ["mini", "bulid"],
    "mini unknown world": lambda t: ["mini", "build", "audio"],
}


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


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "garbage.yaml").write_text("{[: not yaml\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "syntax.py").write_text("def (:\n")
    sqlite3.connect(tmp_path / "foreign.sqlite").executescript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(name: str, workdir: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = CASES[name](workdir)
    capsys.readouterr()
    before = tree(workdir, isolated_home)
    code = main(words)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in out + err
    assert len(lines[0]) <= 2100
    assert tree(workdir, isolated_home) == before


def test_enough_named_cases() -> None:
    assert len(CASES) >= 75
