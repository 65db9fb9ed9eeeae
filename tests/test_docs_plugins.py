"""The compass world of docs/modelpools.md and docs/taskpools.md runs as documented, with no edit to the core.

The pages' marked blocks are written to files and their command is run; scores are checked against the
geometry the pages derive (a classifier alpha degrees from a task's direction scores 1 - alpha / 180 on
evenly spaced points of the circle), and the world is found only through plugins=[...] or entry points.
"""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import torch
import yaml

from fusionbench.api.families import ModelFamily
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.plugins import MODELPOOLS, TASKPOOLS
from fusionbench.api.taskpool import TaskPool
from fusionbench.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = (ROOT / "docs" / "modelpools.md", ROOT / "docs" / "taskpools.md")
BLOCK = re.compile(r"<!-- plugin-example: (\S+) -->\n```\w+\n(.*?)```", re.S)
CORE = ("benchmark", "methods", "modelpools", "taskpools", "configs")
WORLD = ("compass_pool.py", "compass_pool.yaml", "compass_tasks.py", "compass_tasks.yaml")


def documented_blocks() -> dict[str, str]:
    """Marked block name (a file name, ``command`` or ``pyproject.toml``) -> its text, from both pages."""
    blocks: dict[str, str] = {}
    for page in PAGES:
        for name, text in BLOCK.findall(page.read_text()):
            assert name not in blocks, f"{name} is marked twice"
            blocks[name] = text
    return blocks


def write_world(folder: Path) -> list[str]:
    """Write the four documented files into ``folder``; the documented command's words after ``fusionbench``."""
    blocks = documented_blocks()
    for name in WORLD:
        (folder / name).write_text(blocks[name])
    words = shlex.split(blocks["command"])
    assert words[:2] == ["fusionbench", "run"]
    return words[1:]


def expected_accuracy(weights: list[float], degrees: float) -> float:
    """1 - alpha / 180, alpha the angle between the classifier ``weights`` and the task's direction."""
    alpha = math.degrees(abs(math.atan2(weights[1], weights[0]) - math.radians(degrees))) % 360
    return 1 - min(alpha, 360 - alpha) / 180


def hand_scores(folder: Path, merged: list[float]) -> dict[str, tuple[float, float, float]]:
    """task -> (score of ``merged``, fine-tuned, pretrained) from the documented YAML files."""
    pool = yaml.safe_load((folder / "compass_pool.yaml").read_text())
    angles = yaml.safe_load((folder / "compass_tasks.yaml").read_text())["angles"]
    assert pool["base"] == [0.0, 0.0]  # a zero classifier predicts class 0 everywhere: half the points are class 0
    return {t: (expected_accuracy(merged, angles[t]), expected_accuracy(w, angles[t]), 0.5) for t, w in pool["models"].items()}


def report_scores(path: Path) -> dict[str, tuple[float, float, float]]:
    report = json.loads(path.read_text())
    return {t: (r["score"], r["finetuned"], r["pretrained"]) for t, r in report["tasks"].items()}


def assert_scores(path: Path, expected: dict[str, tuple[float, float, float]]) -> None:
    found = report_scores(path)
    assert found.keys() == expected.keys()
    for task, values in expected.items():
        assert found[task] == pytest.approx(values, abs=1e-12), task


def test_documented_command_scores_as_derived_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    words = write_world(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert "compass" not in MODELPOOLS and "compass" not in TASKPOOLS  # neither built in nor an entry point
    code = main(words)
    out, err = capsys.readouterr()
    assert code == 0, err
    reports = list(tmp_path.glob("outputs/*-simple_average-compass_pool/report.json"))
    assert len(reports) == 1 and "0.7500" in out
    pool = yaml.safe_load((tmp_path / "compass_pool.yaml").read_text())
    average = torch.tensor(list(pool["models"].values())).mean(0).tolist()  # (0.5, 0.5): 45 degrees from east and north
    assert_scores(reports[0], hand_scores(tmp_path, average))
    assert report_scores(reports[0])["east"] == (0.75, 1.0, 0.5)
    assert MODELPOOLS.source("compass") == "plugin ./compass_pool.py" and TASKPOOLS.source("compass") == "plugin ./compass_tasks.py"


@pytest.mark.parametrize("method", ["task_arithmetic", "regmean"])
def test_task_arithmetic_and_regmean_keep_the_average_direction(
    method: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    words = [w if not w.startswith("method=") else f"method={method}" for w in write_world(tmp_path)]
    monkeypatch.chdir(tmp_path)
    assert main([*words, "output_dir=out"]) == 0, capsys.readouterr().err
    # lambda * (w_east + w_north), and RegMean's equal Gram matrices (every task sees the same points): 45 degrees
    assert_scores(tmp_path / "out" / "report.json", hand_scores(tmp_path, [1.0, 1.0]))


def test_task_pool_identity_keys_the_reference_score_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    words = write_world(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main([*words, "output_dir=a"]) == 0
    assert main([*words, "output_dir=b", "taskpool.angles.east=180"]) == 0, capsys.readouterr().err
    flipped = report_scores(tmp_path / "b" / "report.json")
    assert flipped["east"] == (0.25, 0.0, 0.5)  # the east teacher is now 180 degrees off: scored again, not read from the cache
    assert flipped["north"] == report_scores(tmp_path / "a" / "report.json")["north"]


def test_the_core_does_not_know_the_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    words = write_world(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main([w for w in words if not w.startswith("plugins=")]) == 2
    assert "unknown modelpool 'compass'" in capsys.readouterr().err
    for name in ("compass_pool.py", "compass_tasks.py"):
        for node in ast.walk(ast.parse((tmp_path / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fusionbench"):
                assert node.module == "fusionbench" or node.module.startswith("fusionbench.api"), (name, node.module)
    core_files = [p for folder in CORE for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".yaml", ".json")]
    assert core_files and not [p for p in core_files if re.search(r"Compass(Pool|Tasks)|compass_(pool|tasks|world)", p.read_text(errors="replace"))]


def test_documented_entry_points_register_the_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    words = [w for w in write_world(tmp_path) if not w.startswith("plugins=")]
    site = tmp_path / "site"
    groups = tomllib.loads(documented_blocks()["pyproject.toml"])["project"]["entry-points"]
    for target in (t for group in groups.values() for t in group.values()):
        module = site / (target.split(":")[0].replace(".", "/") + ".py")
        module.parent.mkdir(parents=True, exist_ok=True)
        (module.parent / "__init__.py").touch()
        module.write_text((tmp_path / {"pool": "compass_pool.py", "tasks": "compass_tasks.py"}[module.stem]).read_text())
    info = site / "compass_world-0.1.dist-info"  # what installing the package leaves on the path
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: compass-world\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items()) for group, entries in groups.items()
    ))
    monkeypatch.syspath_prepend(str(site))
    for registry in (MODELPOOLS, TASKPOOLS):  # discovered afresh, as in a new process
        monkeypatch.setattr(registry, "_entries", {})
        monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.chdir(tmp_path)
    assert main([*words, "output_dir=out"]) == 0, capsys.readouterr().err
    assert MODELPOOLS.source("compass") == TASKPOOLS.source("compass") == "entry point of compass-world"
    assert_scores(tmp_path / "out" / "report.json", hand_scores(tmp_path, [0.5, 0.5]))


@pytest.mark.parametrize(("page", "cls"), [(PAGES[0], ModelPool), (PAGES[1], TaskPool)])
def test_contract_tables_name_the_abstract_methods(page: Path, cls: type) -> None:
    table = page.read_text().split(f"<!-- contract: {cls.__name__} -->\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)(?:\(.*?\))?` \| (required|optional) \|", table, re.M)
    assert {name for name, kind in rows if kind == "required"} == set(cls.__abstractmethods__)
    assert all(hasattr(cls, name) and name not in cls.__abstractmethods__ for name, kind in rows if kind == "optional")


def test_family_attributes_are_all_documented() -> None:
    listed = PAGES[0].read_text().split("<!-- contract: ModelFamily -->\n", 1)[1].split("\n\n", 1)[0]
    names = set(re.findall(r"`(\w+)`", listed))
    assert set(ModelFamily.__annotations__) <= names
