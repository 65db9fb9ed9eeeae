"""The leaderboard: entries from real dummy runs and sweeps, its schema, build / validate / publish."""

from __future__ import annotations

import copy
import json
import re
import statistics
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from fusionbench import leaderboard as lb
from fusionbench.cli.main import main
from fusionbench.engine.report import benchmark_family
from fusionbench.taskpools.dummy import DummyTaskPool, DummyTaskPoolConfig
from fusionbench.utils.dummy_world import DUMMY_TASKS, teacher

ROOT = Path(__file__).resolve().parents[1]
BOARD_DIR = ROOT / "leaderboard"


def cli(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str, str]:
    code = main(list(words))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two runs and two sweeps on the dummy pool, produced by the project's own commands."""
    root = tmp_path_factory.mktemp("sources")
    store = root / "store.sqlite"
    commands = [
        ["run", "method=task_arithmetic", "modelpool=dummy", f"output_dir={root / 'runs' / 'ta'}"],
        ["run", "method=ties", "modelpool=dummy", f"output_dir={root / 'runs' / 'ties'}"],
        ["sweep", "method=task_arithmetic", "modelpool=dummy", "subsets=all", "grid.scaling_factor=[0.3,0.5]", f"store={store}", f"output_dir={root / 'sweeps' / 'ta_all'}"],
        ["sweep", "method=simple_average", "modelpool=dummy", "subsets=pairs", f"store={store}", f"output_dir={root / 'sweeps' / 'avg_pairs'}"],
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUSIONBENCH_HOME", str(root / "home"))
        for words in commands:
            assert main(words) == 0, words
    yield root


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def task_arithmetic_accuracy(task: str, scaling: float, tasks: list[str]) -> float:
    """Independent expectation: accuracy of theta_0 + scaling * sum of task vectors on the dummy test split."""
    base = teacher(None, 0)
    merged = {k: base[k] + scaling * sum(teacher(t, 0)[k] - base[k] for t in tasks) for k in base}
    x, y = DummyTaskPool(DummyTaskPoolConfig(type="dummy", name="dummy"))._data(task, "test")
    return float(((x @ merged["weight"].T + merged["bias"]).argmax(-1) == y).float().mean())


# ------------------------------------------------------------------ schema
def test_schema_is_a_valid_json_schema() -> None:
    schema = load_json(BOARD_DIR / "schema.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == lb.LEADERBOARD_SCHEMA
    assert schema["$defs"]["entry"]["properties"]["schema"]["const"] == lb.ENTRY_SCHEMA


def test_report_entry_carries_the_run(sources: Path) -> None:
    report = load_json(sources / "runs" / "ta" / "report.json")
    [entry] = lb.entries_from_file(sources / "runs" / "ta")
    assert lb.problem(entry) is None
    assert entry["benchmark"] == {
        "family": "dummy", "checkpoint_family": "local", "mode": "full", "modelpool": "dummy", "taskpool": "dummy", "tasks": DUMMY_TASKS,
        "split": "test", "limit": None, "protocol": "single_run",
    }
    assert entry["method"] == {"name": "task_arithmetic", "version": "1", "reference": report["method"]["reference"], "parameters": {"scaling_factor": 0.3}}
    for task in DUMMY_TASKS:
        row = entry["tasks"][task]
        assert row["score"] == pytest.approx(task_arithmetic_accuracy(task, 0.3, DUMMY_TASKS))
        assert row["n"] == 512 and row["stderr"] == pytest.approx((row["score"] * (1 - row["score"]) / 512) ** 0.5)
        assert row["normalized"] == pytest.approx(row["score"])  # dummy fine-tuned accuracy is 1
    assert entry["average"]["normalized"] == pytest.approx(statistics.fmean(entry["tasks"][t]["normalized"] for t in DUMMY_TASKS))
    assert set(entry["cost"]) == {"merge_seconds", "eval_seconds", "peak_memory_bytes"}
    prov = entry["provenance"]
    assert prov["source"] == "run_report" and prov["config_hash"] == report["provenance"]["config_hash"]
    assert {"python", "torch"} <= set(prov["packages"])


def test_sweep_entry_carries_the_protocol(sources: Path) -> None:
    summary = load_json(sources / "sweeps" / "ta_all" / "summary.json")
    [entry] = lb.entries_from_file(sources / "sweeps" / "ta_all" / "summary.json")
    assert lb.problem(entry) is None
    bench = entry["benchmark"]
    assert (bench["protocol"], bench["subsets"], bench["selection_split"], bench["split"]) == ("subset_sweep", "all", "validation", "test")
    assert entry["method"]["grid"] == {"scaling_factor": [0.3, 0.5]}
    assert entry["method"]["parameters"] == {}  # the only parameter was searched
    # 2^4 - 4 - 1 = 11 subsets; sizes 2, 3, 4 hold 6, 4 and 1 of them
    assert entry["sweep"]["subsets"] == 11
    assert {k: v["n"] for k, v in entry["sweep"]["by_size"].items()} == {"2": 6, "3": 4, "4": 1}
    means = [r["mean_normalized"] for r in summary["subsets"]]
    assert entry["sweep"]["table1"]["mean"] == pytest.approx(statistics.fmean(means))
    assert entry["sweep"]["table1"]["std"] == pytest.approx(statistics.pstdev(means))
    # per-task scores are those of the full task set, merged with the point selected for it
    full = next(r for r in summary["subsets"] if len(r["tasks"]) == 4)
    for task in DUMMY_TASKS:
        expected = task_arithmetic_accuracy(task, full["best"]["scaling_factor"], DUMMY_TASKS)
        assert entry["tasks"][task]["score"] == pytest.approx(expected)
        assert entry["tasks"][task]["metric"] == "accuracy"
    assert entry["sweep"]["by_size"]["4"]["mean"] == pytest.approx(entry["average"]["normalized"])
    assert set(entry["cost"]) == {"wall_seconds", "evaluations", "computed"}


def test_sweep_without_the_full_set_has_no_task_rows(sources: Path) -> None:
    [entry] = lb.entries_from_file(sources / "sweeps" / "avg_pairs")
    assert lb.problem(entry) is None
    assert entry["tasks"] == {} and entry["average"]["normalized"] is None
    assert entry["sweep"]["subsets"] == 6 and list(entry["sweep"]["by_size"]) == ["2"]
    assert entry["method"]["grid"] == {}


def test_sweep_provenance_hash_ignores_where_a_sweep_ran(sources: Path, tmp_path: Path) -> None:
    words = ["sweep", "method=task_arithmetic", "modelpool=dummy", "subsets=all", "grid.scaling_factor=[0.3,0.5]"]
    assert main([*words, f"store={tmp_path / 'other.sqlite'}", f"output_dir={tmp_path / 'again'}"]) == 0
    first = load_json(sources / "sweeps" / "ta_all" / "summary.json")["provenance"]
    again = load_json(tmp_path / "again" / "summary.json")["provenance"]
    assert re.fullmatch(r"[0-9a-f]{64}", again["config_hash"]) and again["config_hash"] == first["config_hash"]
    assert main([*words[:-1], "grid.scaling_factor=[0.4]", f"store={tmp_path / 'other.sqlite'}", f"output_dir={tmp_path / 'changed'}"]) == 0
    assert load_json(tmp_path / "changed" / "summary.json")["provenance"]["config_hash"] != first["config_hash"]


def test_benchmark_family() -> None:
    assert benchmark_family({"name": "clip_llora", "variant": "clip-vit-base-patch16"}) == "clip-vit-base-patch16"
    assert benchmark_family({"name": "mini_t5_lora"}) == "mini_t5"
    assert benchmark_family({"name": "my-pool-full", "variant": ""}) == "my-pool"
    assert benchmark_family({"name": "dummy"}) == "dummy"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e["tasks"]["alpha"].update(stderr=-1.0), r"at tasks\.alpha\.stderr: -1\.0 is less than the minimum of 0"),
        (lambda e: e["tasks"]["alpha"].update(score=float("nan")), r"at tasks\.alpha\.score: not a finite number"),
        (lambda e: e.pop("provenance"), r"'provenance' is a required property"),
        (lambda e: e["benchmark"].update(mode="half"), r"at benchmark\.mode: 'half' is not one of"),
        (lambda e: e["benchmark"].update(subsets="all"), r"at benchmark"),
        (lambda e: e["method"].update(grid={"k": [0.1]}), r"should not be valid"),
        (lambda e: e.update(tasks={}), r"at tasks: \{\} should be non-empty"),
        (lambda e: e["provenance"].update(config_hash="abc"), r"at provenance\.config_hash: 'abc' does not match"),
    ],
)
def test_invalid_entries_are_named(sources: Path, change: Any, message: str) -> None:
    [entry] = lb.entries_from_file(sources / "runs" / "ta")
    change(entry)
    why = lb.problem(entry)
    assert why is not None and re.search(message, why), why


# ----------------------------------------------------------------- commands
def test_build_validate_publish_round_trip(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    board_file = tmp_path / "leaderboard.json"
    code, out, err = cli(capsys, "leaderboard", "build", str(sources / "runs"), str(sources / "sweeps"), f"out={board_file}")
    assert code == 0, err
    assert out.strip() == f"4 entries written to {board_file}"
    board = load_json(board_file)
    jsonschema.validate(board, load_json(BOARD_DIR / "schema.json"))
    assert sorted((e["method"]["name"], e["benchmark"]["protocol"]) for e in board["entries"]) == [
        ("simple_average", "subset_sweep"), ("task_arithmetic", "single_run"), ("task_arithmetic", "subset_sweep"), ("ties", "single_run"),
    ]
    code, out, _ = cli(capsys, "leaderboard", "validate", str(board_file))
    assert code == 0 and "valid leaderboard (fusionbench.leaderboard/1) with 4 entries" in out

    # publishing something already there is refused and changes nothing
    before = board_file.read_bytes()
    code, _, err = cli(capsys, "leaderboard", "publish", str(sources / "sweeps" / "ta_all"), f"out={board_file}")
    assert code == 2 and err.count("\n") == 1
    assert "task_arithmetic 1 on dummy (subset_sweep) duplicates an entry of" in err and "nothing was published" in err
    assert board_file.read_bytes() == before

    # a new run (other parameters) is added; existing entries stay as they were
    new_run = tmp_path / "ta05"
    assert cli(capsys, "run", "method=task_arithmetic", "modelpool=dummy", "method.scaling_factor=0.5", f"output_dir={new_run}")[0] == 0
    code, out, _ = cli(capsys, "leaderboard", "publish", str(new_run / "report.json"), f"out={board_file}")
    assert code == 0 and out.strip() == f"published 1 entry into {board_file} (5 in all)"
    after = load_json(board_file)
    assert after["entries"][:4] == board["entries"]
    assert after["entries"][4]["method"]["parameters"] == {"scaling_factor": 0.5}
    assert lb.problem(after, "leaderboard") is None


def test_publish_is_all_or_nothing(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    board_file = tmp_path / "leaderboard.json"
    assert cli(capsys, "leaderboard", "publish", str(sources / "runs" / "ta"), f"out={board_file}")[0] == 0  # created
    before = board_file.read_bytes()
    [bad] = lb.entries_from_file(sources / "runs" / "ties")
    bad["tasks"]["beta"]["n"] = 0
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad))
    code, _, err = cli(capsys, "leaderboard", "publish", str(sources / "sweeps" / "ta_all"), str(bad_file), f"out={board_file}")
    assert code == 2 and re.search(r"bad\.json: entry 1 \(ties 2 on dummy \(single_run\)\) is invalid, at tasks\.beta\.n: 0 is less than the minimum of 1", err), err
    assert board_file.read_bytes() == before
    # the same new entry twice in one call is a duplicate too
    code, _, err = cli(capsys, "leaderboard", "publish", str(sources / "runs" / "ties"), str(sources / "runs" / "ties" / "report.json"), f"out={board_file}")
    assert code == 2 and "duplicates an entry of an earlier file given" in err
    assert board_file.read_bytes() == before


def test_publish_entry_files_and_whole_leaderboards(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [entry] = lb.entries_from_file(sources / "runs" / "ties")
    entry_file = tmp_path / "entry.json"
    entry_file.write_text(json.dumps(entry))
    code, out, _ = cli(capsys, "leaderboard", "validate", str(entry_file))
    assert code == 0 and "valid entry (fusionbench.leaderboard-entry/1): ties 2 on dummy (single_run)" in out
    other = tmp_path / "other.json"
    assert cli(capsys, "leaderboard", "build", str(sources / "sweeps"), f"out={other}")[0] == 0
    board_file = tmp_path / "leaderboard.json"
    code, out, _ = cli(capsys, "leaderboard", "publish", str(entry_file), str(other), f"out={board_file}")
    assert code == 0 and "published 3 entries" in out


def test_build_keeps_the_newest_of_duplicates(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = load_json(sources / "runs" / "ta" / "report.json")
    for name, date in (("old", "2024-01-01T00:00:00+00:00"), ("new", "2025-01-01T00:00:00+00:00")):
        copy_ = copy.deepcopy(report)
        copy_["provenance"]["date"] = date
        (tmp_path / "in" / name).mkdir(parents=True)
        (tmp_path / "in" / name / "report.json").write_text(json.dumps(copy_))
    out_file = tmp_path / "board.json"
    code, out, _ = cli(capsys, "leaderboard", "build", str(tmp_path / "in"), f"out={out_file}")
    assert code == 0 and "1 entries written" in out and "(1 older duplicates left out)" in out
    assert load_json(out_file)["entries"][0]["provenance"]["date"] == "2025-01-01T00:00:00+00:00"


def test_validate_refuses_a_leaderboard_with_duplicates(sources: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [entry] = lb.entries_from_file(sources / "runs" / "ta")
    path = tmp_path / "twice.json"
    path.write_text(json.dumps({"schema": lb.LEADERBOARD_SCHEMA, "updated": lb.now(), "entries": [entry, entry]}))
    code, _, err = cli(capsys, "leaderboard", "validate", str(path))
    assert code == 2 and "task_arithmetic 1 on dummy (single_run) appears twice" in err


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["leaderboard"], r"leaderboard what\? Choose one of: build, publish, validate"),
        (["leaderboard", "publsh"], r"Did you mean 'publish'\?"),
        (["leaderboard", "validate"], r"leaderboard validate needs at least one FILE"),
        (["leaderboard", "publish", "x.json", "outt=y.json"], r"unknown key 'outt'\. Did you mean 'out'\?"),
        (["leaderboard", "validate", "missing.json"], r"missing\.json: no such file"),
        (["leaderboard", "publish", "missing_dir"], r"missing_dir: no such file or directory"),
        (["leaderboard", "build", "nowhere"], r"nowhere: no such file or directory"),
        (["leaderboard", "publish", "REPORT", "out=no_folder/board.json"], r"folder 'no_folder' does not exist"),
        (["leaderboard", "validate", "REPORT"], r"is a fusionbench\.report/1 file, not a leaderboard entry; publish converts it"),
        (["leaderboard", "validate", "NOTJSON"], r"is not JSON"),
        (["leaderboard", "publish", "OLDSUMMARY"], r"sweep summary has no provenance \(written by an older FusionBench\); re-run the sweep"),
        (["leaderboard", "validate", "FOREIGN"], r"unknown schema 'something/1'"),
    ],
)
def test_bad_input_is_one_clear_line(words: list[str], message: str, sources: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notjson.json").write_text("{nope")
    (tmp_path / "foreign.json").write_text(json.dumps({"schema": "something/1"}))
    old = load_json(sources / "sweeps" / "ta_all" / "summary.json")
    del old["provenance"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    files = {"REPORT": str(sources / "runs" / "ta" / "report.json"), "NOTJSON": "notjson.json", "OLDSUMMARY": "old.json", "FOREIGN": "foreign.json"}
    code, _, err = cli(capsys, *(files.get(w, w) for w in words))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err


# ------------------------------------------------------------ shipped files
def test_shipped_leaderboard_is_valid() -> None:
    board = lb.load(BOARD_DIR / "leaderboard.json")
    assert board["entries"], "leaderboard/leaderboard.json should hold the results produced by leaderboard/populate.sh"
    assert lb.validate(BOARD_DIR / "leaderboard.json").endswith(f"with {len(board['entries'])} entries")  # and no duplicates


def test_page_is_static_and_builds_its_dom_from_text() -> None:
    html = (BOARD_DIR / "index.html").read_text()
    script = (BOARD_DIR / "leaderboard.js").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "no external resources"
    assert "script-src 'self'" in html  # CSP: only leaderboard.js runs, never an injected inline script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "fetch(\"leaderboard.json\"" in script

