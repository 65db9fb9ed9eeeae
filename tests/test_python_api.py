"""The Python API (``fusionbench.merge``, ``run``, ``load_pool``, ``load_taskpool``, ``load_results``, ``ParamDictPool``, ``Report``):
the docs page's examples run, and each call agrees with the command line and with hand computations."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas
import pytest
import torch

import fusionbench
from fusionbench import ParamDict, ParamDictPool
from fusionbench.api.errors import ConfigError, NonFiniteError, ParamMismatchError
from fusionbench.cli.main import main
from fusionbench.engine.report import Report

DOCS = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_docs_examples_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)
    assert (tmp_path / "outputs" / "ties-dummy" / "report.json").is_file()


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.read_text().split("## Python API", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert list(namespace["frame"]["task"]) == ["alpha", "beta", "gamma", "delta"]  # type: ignore[index]


def test_docs_name_every_function_of_the_api() -> None:
    text = DOCS.read_text()
    for name in fusionbench.LIBRARY:
        assert name in text, name


def toy_pool(mode: str = "full") -> ParamDictPool:
    g = torch.Generator().manual_seed(0)
    base = ParamDict({"w": torch.randn(4, 3, generator=g), "b": torch.randn(4, generator=g)})
    finetuned = {t: base + ParamDict({k: torch.randn(v.shape, generator=g) for k, v in base.items()}) for t in ("x", "y", "z")}
    return ParamDictPool(base=base, finetuned=finetuned, mode=mode)


def test_merge_on_a_paramdict_pool_is_the_hand_computation() -> None:
    pool = toy_pool()
    base = pool.base()
    taus = [pool.finetuned(t) - base for t in pool.tasks]
    merged = fusionbench.merge("task_arithmetic", pool, scaling_factor=0.3)
    for name in base:
        torch.testing.assert_close(merged[name], base[name] + 0.3 * sum(tau[name] for tau in taus))
    assert pool.model(merged) is merged and pool.identity()["sha256"] == toy_pool().identity()["sha256"]


def test_merge_validates_parameters_as_the_command_line_does() -> None:
    pool = toy_pool()
    with pytest.raises(ConfigError, match=r"Did you mean 'k'\?"):
        fusionbench.merge("ties", pool, kk=0.2)
    with pytest.raises(ConfigError, match=r"unknown method 'tiess'"):
        fusionbench.merge("tiess", pool)
    with pytest.raises(ConfigError, match=r"method\.k"):
        fusionbench.merge("ties", pool, k="abc")
    with pytest.raises(ConfigError, match=r"needs data"):
        fusionbench.merge("lorahub", toy_pool("lora"))
    with pytest.raises(ConfigError, match=r"data has no task 'x'"):
        fusionbench.merge("lorahub", toy_pool("lora"), data=fusionbench.load_taskpool("dummy"))


def test_paramdict_pool_refuses_what_it_cannot_hold() -> None:
    base = ParamDict({"w": torch.zeros(2)})
    with pytest.raises(ParamMismatchError, match=r"task 'a'"):
        ParamDictPool(base=base, finetuned={"a": {"w": torch.zeros(3)}})
    with pytest.raises(ConfigError, match=r"mode='dense'"):
        ParamDictPool(base=base, finetuned={"a": base}, mode="dense")
    with pytest.raises(ConfigError, match=r"at least one"):
        ParamDictPool(base=base, finetuned={})
    with pytest.raises(NonFiniteError, match=r"task 'a'"):  # checked as in `fusionbench run`
        fusionbench.merge("task_arithmetic", ParamDictPool(base=base, finetuned={"a": {"w": torch.full((2,), float("inf"))}}))


def test_run_gives_the_report_the_command_line_writes(tmp_path: Path) -> None:
    report = fusionbench.run(method="ties", modelpool="dummy", method__k=0.3, output_dir=str(tmp_path / "api"))
    assert main(["run", "method=ties", "modelpool=dummy", "method.k=0.3", f"output_dir={tmp_path / 'cli'}"]) == 0
    written = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert report.to_dict()["tasks"] == written["tasks"] and report.method.parameters["k"] == 0.3
    assert Report.from_dict(written).to_dict() == written  # report.json read back and written again, unchanged
    frame = report.to_frame()
    assert list(frame["task"]) == list(written["tasks"])
    assert list(frame["score"]) == [row["score"] for row in written["tasks"].values()]
    assert set(frame["method"]) == {"ties"} and set(frame["split"]) == {"test"}
    with pytest.raises(ConfigError, match=r"unknown key 'sed'"):
        fusionbench.run(method="ties", modelpool="dummy", sed=1)


def test_to_frame_without_pandas_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = fusionbench.run(method="simple_average", modelpool="dummy", output_dir=str(tmp_path / "run"))
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ConfigError, match=r"needs pandas.*pip install pandas"):
        report.to_frame()


def test_load_pool_and_taskpool_take_overrides_and_agree_with_run(tmp_path: Path) -> None:
    pool = fusionbench.load_pool("dummy", tasks=["alpha", "gamma"], seed=0)
    taskpool = fusionbench.load_taskpool("dummy")
    assert pool.tasks == ["alpha", "gamma"]
    scores = taskpool.evaluate(pool.model(fusionbench.merge("ties", pool)), pool.tasks, "test")
    report = fusionbench.run(method="ties", modelpool="dummy", modelpool__tasks=["alpha", "gamma"], output_dir=str(tmp_path / "r"))
    assert {t: s.value for t, s in scores.items()} == {t: row.score for t, row in report.tasks.items()}
    with pytest.raises(ConfigError, match=r"Did you mean 'seed'\?"):
        fusionbench.load_pool("dummy", sede=1)


def test_load_results_gives_the_rows_fusionbench_results_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.sqlite"
    sweep = ["sweep", "method=task_arithmetic", "modelpool=dummy", "subsets=pairs", "grid.scaling_factor=[0.3]"]
    assert main([*sweep, f"store={store}", f"output_dir={tmp_path / 'sweep'}"]) == 0
    capsys.readouterr()
    assert main(["results", f"store={store}", "split=test", "format=json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    rows = fusionbench.load_results(store=str(store), split="test")
    assert len(rows) == len(exported) > 0 and all(isinstance(row, fusionbench.StoredResult) for row in rows)
    assert [row.value for row in rows] == [row["value"] for row in exported] and [row.task for row in rows] == [row["task"] for row in exported]
    assert [row.to_dict() for row in rows] == exported
    frame = pandas.DataFrame(rows)
    assert list(frame["value"]) == [row["value"] for row in exported] and set(frame.columns) == set(exported[0])
    with pytest.raises(ConfigError, match=r"Did you mean 'method'\?"):
        fusionbench.load_results(store=str(store), metod="ties")
    with pytest.raises(ConfigError, match=r"does not exist; run a sweep first"):
        fusionbench.load_results(store=str(tmp_path / "nope.sqlite"))
