"""Every result FusionBench writes matches its JSON Schema, and each schema refuses what it should."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from fusionbench.cli.main import main
from fusionbench.engine.report import Report, TaskRow
from fusionbench.engine.results import FINETUNE, PROFILE, REPORT, SCHEMA_FILES, SWEEP, check_result, result_problem, schema_document
from fusionbench.engine.summary import Summary
from fusionbench.profiling.result import Profile


def test_each_schema_names_its_kind() -> None:
    assert set(SCHEMA_FILES) == {REPORT, SWEEP, PROFILE, FINETUNE}
    for kind in SCHEMA_FILES:
        assert schema_document(kind)["$id"] == kind


@pytest.fixture
def written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    """A run report and a sweep summary of the dummy world, as written to disk."""
    assert main(["run", "method=ties", "modelpool=dummy", f"output_dir={tmp_path / 'run'}"]) == 0
    sweep = ["sweep", "method=task_arithmetic", "modelpool=dummy", "subsets=pairs", "grid.scaling_factor=[0.2,0.4]"]
    assert main([*sweep, f"store={tmp_path / 's.sqlite'}", f"output_dir={tmp_path / 'sweep'}"]) == 0
    capsys.readouterr()
    return {REPORT: json.loads((tmp_path / "run" / "report.json").read_text()), SWEEP: json.loads((tmp_path / "sweep" / "summary.json").read_text())}


def test_written_results_match_and_broken_ones_do_not(written: dict[str, dict]) -> None:
    report, summary = written[REPORT], written[SWEEP]
    assert result_problem(report, REPORT) is None and result_problem(summary, SWEEP) is None
    broken = copy.deepcopy(summary)
    broken["counts"]["computed"] = -1
    assert result_problem(broken, SWEEP) == "at counts.computed: -1 is less than the minimum of 0"
    broken = copy.deepcopy(summary)
    del broken["subsets"][0]["scores"]
    assert "scores" in result_problem(broken, SWEEP)  # type: ignore[operator]
    broken = copy.deepcopy(report)
    broken["modelpool"]["mode"] = "qlora"
    assert "qlora" in result_problem(broken, REPORT)  # type: ignore[operator]
    with pytest.raises(RuntimeError, match="does not match its JSON Schema .* a bug in FusionBench"):
        check_result(broken, REPORT)


def test_finetune_and_profile_schemas_refuse_what_they_should() -> None:
    assert "format" in result_problem({}, FINETUNE)  # type: ignore[operator]
    problem = result_problem({"schema": PROFILE, "model": "m", "device": {}, "settings": {"paradigms": ["bogus"], "batch_size": 1, "steps": 1, "warmup": 0, "seed": 0, "threads": 1, "recipe": {}},
                              "rss_floor_bytes": 0, "ours": {}, "ours_ratio_to_full": {}, "paper": {"source": {}}, "measurements": {}, "provenance": {"packages": {}, "git_revision": None, "date": ""}}, PROFILE)
    assert problem == "at settings.paradigms.0: 'bogus' is not one of ['full', 'linearized', 'lora', 'llora']"


def test_the_leaderboard_refuses_a_summary_its_schema_refuses(written: dict[str, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = copy.deepcopy(written[SWEEP])
    summary["table1"] = {"mean": 0.5}
    (tmp_path / "bad.json").write_text(json.dumps(summary))
    assert main(["leaderboard", "publish", str(tmp_path / "bad.json"), f"out={tmp_path / 'board.json'}"]) == 2
    assert "invalid sweep summary, at table1" in capsys.readouterr().err
    assert not (tmp_path / "board.json").exists()


def test_the_leaderboard_reads_the_benchmark_from_the_typed_field_not_the_config(written: dict[str, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``modelpool.benchmark`` is written from the resolved pool config and is the entry's family; the config in the
    provenance is a record, not read again (here it names another pool, and the entry keeps the field's value)."""
    for kind, name in ((REPORT, "report.json"), (SWEEP, "summary.json")):
        data = copy.deepcopy(written[kind])
        assert data["modelpool"]["benchmark"] == "dummy"
        data["modelpool"]["benchmark"] = "my-benchmark"
        data["provenance"]["config"]["modelpool"] = {"name": "other_pool_lora", "variant": "other"}
        (tmp_path / kind.replace("/", "_")).mkdir()
        (tmp_path / kind.replace("/", "_") / name).write_text(json.dumps(data))
        assert main(["leaderboard", "publish", str(tmp_path / kind.replace("/", "_")), f"out={tmp_path / 'board.json'}"]) == 0
    entries = json.loads((tmp_path / "board.json").read_text())["entries"]
    assert [e["benchmark"]["family"] for e in entries] == ["my-benchmark", "my-benchmark"]
    del data["modelpool"]["benchmark"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["leaderboard", "publish", str(tmp_path / "old.json"), f"out={tmp_path / 'board.json'}"]) == 2
    assert "sweep summary has no modelpool.benchmark (written by an older FusionBench)" in capsys.readouterr().err
    assert result_problem(data, SWEEP) == "at modelpool: 'benchmark' is a required property"


def test_typed_results_read_back_what_was_written(written: dict[str, dict]) -> None:
    """Report and Summary are the dataclasses of these files: from_dict then to_dict gives the file's JSON again."""
    report, summary = Report.from_dict(written[REPORT]), Summary.from_dict(written[SWEEP])
    assert report.to_dict() == written[REPORT] and summary.to_dict() == written[SWEEP]
    assert json.dumps(summary.to_dict(), indent=2) == json.dumps(written[SWEEP], indent=2)  # the same keys in the same order
    assert isinstance(report.tasks["alpha"], TaskRow) and report.average.normalized == written[REPORT]["average"]["normalized"]
    assert report.modelpool.benchmark == summary.modelpool.benchmark == "dummy" and summary.modelpool.family == "local"
    assert summary.full is None and [pair.tasks for pair in summary.pairs] == [row.tasks for row in summary.subsets]


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "docs").glob("profile-*.json")), ids=lambda p: p.name)
def test_published_profiles_read_back_as_typed_profiles(path: Path) -> None:
    """The profiles in docs/ (written before the one recipe type) are Profiles: from_dict then to_dict gives them back."""
    data = json.loads(path.read_text())
    profile = Profile.from_dict(data)
    assert result_problem(data, PROFILE) is None and profile.to_dict() == data
    assert set(profile.ours) == set(profile.settings.paradigms) and profile.paper.source == data["paper"]["source"]
