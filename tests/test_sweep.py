"""The sweep protocol, its store and its executors, on a world with closed-form scores."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import fields
from math import comb
from pathlib import Path

import pytest

from fusionbench.api.errors import ConfigError
from fusionbench.cli.main import main
from fusionbench.engine.store import ResultKey, ResultStore
from fusionbench.sweep.plan import enumerate_subsets

WORLD = Path(__file__).with_name("scalar_world.py")
POOL_YAML = "type: scalar\ntaskpool: scalar_tasks\n"
TASKPOOL_YAML = "type: scalar\n"
CONSTANTS = {"alpha": 1.0, "beta": 2.0, "gamma": 3.0, "delta": 4.0}
GRID = [0.1, 0.2, 0.3]


@pytest.fixture
def world(tmp_path: Path) -> list[str]:
    (tmp_path / "scalar_pool.yaml").write_text(POOL_YAML)
    (tmp_path / "scalar_tasks.yaml").write_text(TASKPOOL_YAML)
    return [
        f"plugins=[{WORLD}]", "method=task_arithmetic", f"modelpool={tmp_path / 'scalar_pool.yaml'}",
        f"taskpool={tmp_path / 'scalar_tasks.yaml'}", f"grid.scaling_factor=[{','.join(map(str, GRID))}]",
    ]


def sweep(capsys: pytest.CaptureFixture[str], words: list[str], store: Path, out: Path, *extra: str) -> dict:
    code = main(["sweep", *words, f"store={store}", f"output_dir={out}", *extra])
    _, err = capsys.readouterr()
    assert code == 0, err
    return json.loads((out / "summary.json").read_text())


def store_rows(path: Path) -> set[tuple]:
    with ResultStore(path) as store:
        return {(r.key, r.method, json.dumps(r.params, sort_keys=True), tuple(r.subset), r.task, r.split, r.value) for r in store.rows()}


@pytest.mark.parametrize(("n", "spec", "count"), [(7, "all", 120), (7, "pairs", 21), (7, "full", 1), (7, "size=3", 35), (4, "all", 11), (8, "all", 247)])
def test_subset_enumeration_counts(n: int, spec: str, count: int) -> None:
    tasks = [f"t{i}" for i in range(n)]
    subsets = enumerate_subsets(tasks, spec)
    assert len(subsets) == count == len(set(subsets))
    if spec == "all":
        assert count == 2**n - n - 1 and sum(comb(n, k) for k in range(2, n + 1)) == count


@pytest.mark.parametrize("spec", ["size=5", "size=1", "some", "size=x"])
def test_bad_subset_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match="subsets="):
        enumerate_subsets(["a", "b", "c", "d"], spec)


def test_selection_uses_validation_only_and_normalisation_by_hand(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = sweep(capsys, world, tmp_path / "s.sqlite", tmp_path / "out")
    assert len(summary["subsets"]) == 11
    for row in summary["subsets"]:
        # validation (1 - x/10) prefers the smallest lambda although test (x/10) prefers the largest
        assert row["best"] == {"scaling_factor": min(GRID)}
        x = min(GRID) * sum(CONSTANTS[t] for t in row["tasks"])
        for task, score in row["scores"].items():
            assert score["score"] == pytest.approx(x / 10)
            assert score["normalized"] == pytest.approx((x / 10) / (CONSTANTS[task] / 10))
        expected = sum(x / CONSTANTS[t] for t in row["tasks"]) / len(row["tasks"])
        assert row["mean_normalized"] == pytest.approx(expected)
    assert summary["finetuned"] == pytest.approx({t: c / 10 for t, c in CONSTANTS.items()})
    assert summary["pretrained"] == pytest.approx({t: 0.0 for t in CONSTANTS})
    pair_means = [r["mean_normalized"] for r in summary["subsets"] if len(r["tasks"]) == 2]
    mean = sum(pair_means) / len(pair_means)
    std = (sum((v - mean) ** 2 for v in pair_means) / len(pair_means)) ** 0.5
    assert summary["by_size"]["2"] == pytest.approx({"mean": mean, "std": std, "n": 6})
    with ResultStore(tmp_path / "s.sqlite") as store:
        test_rows = [r for r in store.rows(split="test", method="task_arithmetic")]
    assert {r.params["scaling_factor"] for r in test_rows} == {min(GRID)}  # test never saw the other points
    assert (tmp_path / "out" / "by_size.png").stat().st_size > 0 and (tmp_path / "out" / "pairs.png").is_file()


def test_rerun_computes_nothing(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = sweep(capsys, world, tmp_path / "s.sqlite", tmp_path / "a", "subsets=pairs")
    second = sweep(capsys, world, tmp_path / "s.sqlite", tmp_path / "b", "subsets=pairs")
    assert first["counts"]["computed"] == first["counts"]["evaluations"] == 8 + 6 * 3 + 6
    assert second["counts"] == {"evaluations": 32, "computed": 0, "cached": 32}
    assert first["subsets"] == second["subsets"]


def test_a_sweep_after_a_run_evaluates_no_reference_model_again(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_home: Path) -> None:
    from fusionbench.api.plugins import TASKPOOLS

    run_words = [w for w in world if not w.startswith("grid.")] + ["method.scaling_factor=0.1", f"output_dir={tmp_path / 'run'}"]
    assert main(["run", *run_words]) == 0, capsys.readouterr().err
    plugin = sys.modules[TASKPOOLS.get("scalar").__module__]  # the loaded plugin file counts its evaluations
    after_run = plugin._EVALUATIONS
    assert len(list((isolated_home / "cache" / "reference-scores").glob("*.json"))) == 8  # fine-tuned and pretrained, four tasks
    summary = sweep(capsys, world, tmp_path / "s.sqlite", tmp_path / "out", "subsets=pairs")
    assert plugin._EVALUATIONS - after_run == 6 * 3 + 6  # grid points on validation, then the selected points on test
    assert summary["counts"] == {"evaluations": 8 + 6 * 3 + 6, "computed": 6 * 3 + 6, "cached": 8}


def test_resume_after_a_killed_process_gives_exactly_the_expected_rows(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.sqlite"
    env = {**os.environ, "FUSIONBENCH_TEST_CRASH_AFTER": "13"}
    killed = subprocess.run(
        [sys.executable, "-m", "fusionbench.cli", "sweep", *world, f"store={store}", f"output_dir={tmp_path / 'k'}", "subsets=pairs"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == 17, killed.stderr
    with ResultStore(store) as s:
        assert s.count() == 5 * 2  # the 8 reference scores went to the shared reference cache; then 5 two-task evaluations
    resumed = sweep(capsys, world, store, tmp_path / "r", "subsets=pairs")
    assert resumed["counts"]["computed"] == 32 - 13
    fresh_store = tmp_path / "fresh.sqlite"
    sweep(capsys, world, fresh_store, tmp_path / "f", "subsets=pairs")
    resumed_rows = {r[:-1] + (r[-1],) for r in store_rows(store)}
    assert len(resumed_rows) == 6 * 3 * 2 + 6 * 2
    assert {r[0] for r in resumed_rows} == {r[0] for r in store_rows(fresh_store)}  # same keys, none duplicated
    assert resumed_rows == store_rows(fresh_store)


def test_local_processes_and_ray_give_identical_stores(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    sweep(capsys, world, tmp_path / "local.sqlite", tmp_path / "l", "subsets=pairs")
    sweep(capsys, world, tmp_path / "procs.sqlite", tmp_path / "p", "subsets=pairs", "workers=2")
    sweep(capsys, world, tmp_path / "ray.sqlite", tmp_path / "r", "subsets=pairs", "executor=ray", "ray.actors=2")
    local = store_rows(tmp_path / "local.sqlite")
    assert len(local) == 6 * 3 * 2 + 6 * 2  # rows: validation grid, test (references live in the shared reference cache)
    assert local == store_rows(tmp_path / "procs.sqlite") == store_rows(tmp_path / "ray.sqlite")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["subsets=size=9"], r"asks for 9 tasks but the pool has 4"),
        (["grid.scaling_factor=[]"], r"grid\.scaling_factor must be a non-empty list"),
        (["grid.scaling=[1]"], r"has no parameter 'scaling'\. Did you mean 'scaling_factor'\?"),
        (["grid.scaling_factor=[20]"], r"out of range"),
        (["executor=spark"], r"executor='spark' is not valid"),
        (["executor=ray", "ray.address=127.0.0.1:9"], r"Ray cluster at '127\.0\.0\.1:9' cannot be reached"),
    ],
)
def test_bad_sweep_input(extra: list[str], message: str, world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if "executor=ray" in extra:
        pytest.importorskip("ray")
    code = main(["sweep", *world, f"store={tmp_path / 's.sqlite'}", f"output_dir={tmp_path / 'o'}", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "o").exists()


def test_foreign_files_are_refused_and_left_untouched(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text_file = tmp_path / "notes.sqlite"
    text_file.write_text("my precious notes\n")
    other_db = tmp_path / "other.sqlite"
    with sqlite3.connect(other_db) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    before = other_db.read_bytes()
    for path, message in ((text_file, "is not an SQLite database"), (other_db, "database of another program")):
        code = main(["sweep", *world, f"store={path}", f"output_dir={tmp_path / 'o'}", "subsets=full"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "left untouched" in err
    assert text_file.read_text() == "my precious notes\n" and other_db.read_bytes() == before


def test_a_second_sweep_on_a_store_in_use_is_refused(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.sqlite"
    with ResultStore(path, writer=True):
        code = main(["sweep", *world, f"store={path}", f"output_dir={tmp_path / 'o'}", "subsets=full"])
        err = capsys.readouterr().err
    assert code == 2 and "is in use by another sweep" in err
    summary = sweep(capsys, world, path, tmp_path / "o2", "subsets=full")  # free again afterwards, not corrupted
    assert summary["counts"]["computed"] == summary["counts"]["evaluations"]


def test_results_export_and_compare(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "s.sqlite"
    sweep(capsys, world, store, tmp_path / "ta", "subsets=pairs")
    sweep(capsys, [w for w in world if not w.startswith(("method=", "grid."))] + ["method=simple_average"], store, tmp_path / "sa", "subsets=pairs")
    assert main(["results", f"store={store}", "format=json", "method=simple_average", "split=test", f"out={tmp_path / 'r.json'}"]) == 0
    rows = json.loads((tmp_path / "r.json").read_text())
    assert len(rows) == 12 and all(r["method"] == "simple_average" for r in rows)
    # simple average on a pair: x = (c_a + c_b) / 2, scored x / 10
    for r in rows:
        assert r["value"] == pytest.approx(sum(CONSTANTS[t] for t in r["subset"]) / 2 / 10)
    assert main(["results", f"store={store}", "format=csv", "task=alpha", "split=test", f"out={tmp_path / 'r.csv'}"]) == 0
    assert (tmp_path / "r.csv").read_text().count("\n") == 1 + 3 + 3  # header, 3 pairs x 2 methods (references live in the reference cache)
    capsys.readouterr()
    assert main(["results", "compare", f"summaries=[{tmp_path / 'ta'},{tmp_path / 'sa'}]"]) == 0
    out = capsys.readouterr().out
    assert "task_arithmetic" in out and "simple_average" in out and "Table 1 layout" in out


def test_results_exports_the_store_table_as_it_holds_it(world: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The typed rows leave the files on disk as they were: one JSON object (or CSV line) per row of the
    ``results`` table, its columns in the table's order, the JSON-text columns decoded (CSV: JSON text)."""
    store = tmp_path / "s.sqlite"
    sweep(capsys, world, store, tmp_path / "ta", "subsets=pairs")
    db = sqlite3.connect(store)
    columns = [c[1] for c in db.execute("PRAGMA table_info(results)")]
    raw = db.execute("SELECT * FROM results WHERE split='test' ORDER BY created, key").fetchall()
    db.close()
    decoded = ("params", "pool_identity", "taskpool_identity", "subset")
    expected = [{c: json.loads(v) if c in decoded else v for c, v in zip(columns, values)} for values in raw]
    assert main(["results", f"store={store}", "format=json", "split=test", f"out={tmp_path / 'r.json'}"]) == 0
    assert (tmp_path / "r.json").read_text() == json.dumps(expected, indent=2)
    assert main(["results", f"store={store}", "format=csv", "split=test", f"out={tmp_path / 'r.csv'}"]) == 0
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == ",".join(columns) and len(lines) == 1 + len(raw) == 1 + 6 * 2  # 6 pairs x 2 tasks
    first = next(csv.DictReader(lines))
    assert {c: json.loads(first[c]) for c in decoded} == {c: expected[0][c] for c in decoded}
    assert first["key"] == expected[0]["key"] and float(first["value"]) == expected[0]["value"]
    with ResultStore(store) as opened:  # a typed row is its key's fields: they hash to the stored key
        assert all(ResultKey(**{f.name: getattr(r, f.name) for f in fields(ResultKey)}).digest() == r.key for r in opened.rows())
