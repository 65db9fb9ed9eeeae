"""Provenance's git revision: the commit of a checkout, marked when tracked files differ from it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fusionbench.utils.provenance import git_revision

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> str:
    words = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false", *args]
    return subprocess.run(words, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def test_a_clean_checkout_gives_its_commit_and_a_changed_one_is_marked_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "pkg" / "code.py").write_text("x = 1\n")
    _git(repo, "add", "pkg/code.py")
    _git(repo, "commit", "-q", "-m", "one")
    commit = _git(repo, "rev-parse", "HEAD")
    assert git_revision(repo / "pkg") == commit
    (repo / "notes.txt").write_text("untracked")
    assert git_revision(repo / "pkg") == commit  # untracked files are not part of the code that ran
    (repo / "pkg" / "code.py").write_text("x = 2\n")
    assert git_revision(repo / "pkg") == f"{commit}-dirty"
    _git(repo, "commit", "-q", "-am", "two")
    assert git_revision(repo / "pkg") == _git(repo, "rev-parse", "HEAD") != commit


def test_a_folder_outside_any_checkout_has_no_revision(tmp_path: Path) -> None:
    assert git_revision(tmp_path) is None


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_runs_and_sweeps_name_the_code_they_started_with(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long job's results are made by the modules it loaded at its start; an edit while it works must not relabel them."""
    from fusionbench import runner
    from fusionbench.cli.main import main
    from fusionbench.sweep import protocol
    from fusionbench.utils import provenance

    edited: list[bool] = []
    monkeypatch.setattr(provenance, "git_revision", lambda tree=None: "after-an-edit" if edited else "at-start")
    work = "merge_and_evaluate" if command == "run" else "_execute"
    module = runner if command == "run" else protocol
    original = getattr(module, work)

    def work_then_edit(*args: object, **kwargs: object) -> object:  # the tree changes while the job works
        result = original(*args, **kwargs)
        edited.append(True)
        return result

    monkeypatch.setattr(module, work, work_then_edit)
    out = tmp_path / "out"
    if command == "run":
        words = ["run", "method=ties", "modelpool=dummy", f"output_dir={out}"]
    else:
        words = ["sweep", "method=task_arithmetic", "modelpool=dummy", "subsets=pairs", "grid.scaling_factor=[0.3]", f"store={tmp_path / 'r.sqlite'}", f"output_dir={out}"]
    assert main(words) == 0 and edited
    written = json.loads((out / ("report.json" if command == "run" else "summary.json")).read_text())
    assert written["provenance"]["git_revision"] == "at-start"
