"""The fusionbench command: the plumbing run, its report, and every bad input of the foundation."""

from __future__ import annotations

import json
import os
import re
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import torch

from fusionbench.cli.main import main
from fusionbench.utils.dummy_world import teacher

README = Path(__file__).resolve().parents[1] / "README.md"


def run_cli(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str, str]:
    code = main(list(words))
    out, err = capsys.readouterr()
    return code, out, err


def report_schema() -> dict:
    return json.loads((files("fusionbench") / "schemas" / "report.schema.json").read_text())


def test_plumbing_run_writes_a_valid_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "run"
    code, out, _ = run_cli(capsys, "run", "method=task_arithmetic", "modelpool=dummy", f"output_dir={out_dir}", "method.scaling_factor=0.5")
    assert code == 0 and "report written" in out
    report = json.loads((out_dir / "report.json").read_text())
    jsonschema.validate(report, report_schema())
    assert report["method"]["parameters"] == {"scaling_factor": 0.5}
    assert set(report["tasks"]) == {"alpha", "beta", "gamma", "delta"}
    for row in report["tasks"].values():
        assert row["finetuned"] == 1.0  # the dummy fine-tuned model is its task's teacher
        assert row["normalized"] == pytest.approx(row["score"] / row["finetuned"])
        assert row["stderr"] == pytest.approx((row["score"] * (1 - row["score"]) / row["n"]) ** 0.5)
    assert (out_dir / "config.yaml").read_text().count("scaling_factor: 0.5") == 1


def test_single_task_pool_reproduces_the_finetuned_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(capsys, "run", "method=simple_average", "modelpool=dummy", "modelpool.tasks=[beta]", f"output_dir={tmp_path}")
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0 and report["tasks"]["beta"]["score"] == 1.0


def test_merged_score_is_computed_from_the_merged_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Independent check: recompute task arithmetic's accuracy on alpha by hand."""
    run_cli(capsys, "run", "method=task_arithmetic", "modelpool=dummy", f"output_dir={tmp_path}")
    report = json.loads((tmp_path / "report.json").read_text())
    base = teacher(None, 0)
    tasks = ["alpha", "beta", "gamma", "delta"]
    merged = {k: base[k] + 0.3 * sum(teacher(t, 0)[k] - base[k] for t in tasks) for k in base}
    from fusionbench.taskpools.dummy import DummyTaskPool, DummyTaskPoolConfig

    x, y = DummyTaskPool(DummyTaskPoolConfig(type="dummy", name="dummy"))._data("alpha", "test")
    expected = float(((x @ merged["weight"].T + merged["bias"]).argmax(-1) == y).float().mean())
    assert report["tasks"]["alpha"]["score"] == pytest.approx(expected)


def test_user_yaml_file_as_a_group_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = tmp_path / "my_pool.yaml"
    pool.write_text("type: dummy\ntaskpool: dummy\ntasks: [alpha, gamma]\nseed: 0\n")
    code, _, _ = run_cli(capsys, "run", "method=simple_average", f"modelpool={pool}", f"output_dir={tmp_path / 'out'}")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert code == 0 and report["modelpool"]["name"] == "my_pool" and set(report["tasks"]) == {"alpha", "gamma"}


def test_type_names_the_class_and_name_the_identity_in_every_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    method = tmp_path / "my_ties.yaml"
    method.write_text("type: ties\nk: 0.5\n")
    code, _, _ = run_cli(capsys, "run", f"method={method}", "modelpool=dummy", f"output_dir={tmp_path / 'out'}")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    config = report["provenance"]["config"]
    assert code == 0 and report["method"]["name"] == "ties" and report["method"]["parameters"]["k"] == 0.5
    assert {g: (config[g]["type"], config[g]["name"]) for g in ("method", "modelpool", "taskpool")} == {
        "method": ("ties", "my_ties"), "modelpool": ("dummy", "dummy"), "taskpool": ("dummy", "dummy")}


def test_a_method_file_naming_its_class_with_name_is_refused_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    method = tmp_path / "old.yaml"
    method.write_text("name: ties\nk: 0.5\n")
    code, _, err = run_cli(capsys, "run", f"method={method}", "modelpool=dummy", f"output_dir={tmp_path / 'out'}")
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert "has no 'type' key naming its class ('name' is the config's identity, as in every group: write type: ties)" in err, err


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["rn"], r"unknown verb 'rn'\. Did you mean 'run'\? Valid verbs: (\w+, )*list, (\w+, )*run, sweep"),
        (["run", "method=task_arithmtic", "modelpool=dummy"], r"unknown method 'task_arithmtic'\. Did you mean 'task_arithmetic'\?"),
        (["run", "method=task_arithmetic", "modelpool=dumy"], r"unknown modelpool 'dumy'\. Did you mean 'dummy'\? Valid modelpools: .*dummy"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "method.scaling=1"], r"unknown key method\.scaling .*Did you mean 'scaling_factor'\?"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "outptu_dir=x"], r"unknown key 'outptu_dir'\. Did you mean 'output_dir'\?"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "taskpool.limt=3"], r"unknown key taskpool\.limt .*Did you mean 'limit'\?"),
        (["run", "method=ties", "modelpool=dummy", "taskpool=clip_vision7", "taskpool.definitions.eurosat.colour=1"], r"unknown key taskpool\.definitions\.eurosat\.colour .*field names of taskpool\.definitions\.eurosat$"),
        (["run", "method=task_arithmetic", "modelpool"], r"argument 'modelpool' is not of the form key=value"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "method.scaling_factor=abc"], r"invalid value for method\.scaling_factor: .*'abc'"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "seed=many"], r"invalid value for seed"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "taskpool.limit=0"], r"taskpool\.limit must be a positive number"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "split=dev"], r"split='dev' is not a split"),
        (["run", "method=task_arithmetic", "modelpool=./missing.yaml"], r"modelpool config file './missing\.yaml' does not exist"),
        (["run", "method=task_arithmetic"], r"missing modelpool: name one with modelpool=OPTION"),
        (["run", "method=task_arithmetic", "modelpool=dummy", "plugins=[./no_such_plugin.py]"], r"plugin file './no_such_plugin\.py' does not exist"),
        (["list", "method"], r"list what\? Did you mean 'methods'\?"),
    ],
)
def test_bad_input_is_one_clear_line(words: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *words)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not (tmp_path / "outputs").exists()  # nothing half-written


def test_plugin_that_defines_no_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "nothing.py"
    empty.write_text("VALUE = 1\n")
    code, _, err = run_cli(capsys, "run", f"plugins=[{empty}]", "method=simple_average", "modelpool=dummy")
    assert code == 2 and "defines no method" in err


def test_two_plugins_claiming_one_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = "from fusionbench import Method\nclass M{i}(Method):\n    name = 'clash'\n    description = reference = 'x'\n    def merge(self, pool, data=None):\n        return pool.base()\n"
    paths = []
    for i in (1, 2):
        path = tmp_path / f"plugin{i}.py"
        path.write_text(source.format(i=i))
        paths.append(str(path))
    code, _, err = run_cli(capsys, "run", f"plugins=[{paths[0]},{paths[1]}]", "method=clash", "modelpool=dummy")
    assert code == 2 and "two plugins claim the method name 'clash'" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; the read-only check needs an ordinary user")
def test_unwritable_output_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run_cli(capsys, "run", "method=simple_average", "modelpool=dummy", f"output_dir={locked / 'run'}")
    assert code == 2 and "is not writable" in err


def test_output_dir_under_a_file_is_not_writable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = run_cli(capsys, "run", "method=simple_average", "modelpool=dummy", f"output_dir={blocker / 'run'}")
    assert code == 2 and "output directory" in err and "is not writable" in err


def test_help_describes_every_verb_and_group(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "run" in out and "list" in out
    code, out, _ = run_cli(capsys, "run", "--help")
    for word in ("method=M", "modelpool=P", "taskpool=T", "output_dir=PATH", "plugins=", "task_arithmetic", "dummy"):
        assert word in out


def test_list_methods_shows_references(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "list", "methods")
    assert code == 0 and "task_arithmetic" in out and "Ilharco" in out


def readme_plugin_example() -> str:
    text = README.read_text()
    block = text.split("<!-- plugin-example -->", 1)[1]
    return block.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_plugin_example_runs_and_matches_the_simple_average(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = readme_plugin_example()
    assert len(code.strip().splitlines()) <= 25
    plugin = tmp_path / "my_method.py"
    plugin.write_text(code)
    assert run_cli(capsys, "run", f"plugins=[{plugin}]", "method=scaled_mean", "modelpool=dummy", f"output_dir={tmp_path / 'a'}")[0] == 0
    assert run_cli(capsys, "run", "method=simple_average", "modelpool=dummy", f"output_dir={tmp_path / 'b'}")[0] == 0
    scaled = json.loads((tmp_path / "a" / "report.json").read_text())
    average = json.loads((tmp_path / "b" / "report.json").read_text())
    assert {t: r["score"] for t, r in scaled["tasks"].items()} == {t: r["score"] for t, r in average["tasks"].items()}


def test_reference_scores_are_cached_on_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_home: Path) -> None:
    run_cli(capsys, "run", "method=simple_average", "modelpool=dummy", f"output_dir={tmp_path / 'a'}")
    cached = sorted((isolated_home / "cache" / "reference-scores").glob("*.json"))
    assert len(cached) == 8  # fine-tuned and pretrained, four tasks
    assert torch.tensor([json.loads(p.read_text())["n"] for p in cached]).eq(512).all()
