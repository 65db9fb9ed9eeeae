"""The error contract when a command is interrupted (Ctrl-C, SIGTERM) or has nothing to do: one line, the
documented exit status, nothing written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from contract_helpers import plugin, tree

from fusionbench.cli.main import main

INTERRUPT_ON_TORCH = """
import importlib.abc, os, signal, sys


class InterruptOnTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C were pressed while torch loads
        return None


sys.meta_path.insert(0, InterruptOnTorch())
"""


def _fresh_sigint() -> None:
    """SIGINT as a shell gives it to a command (default action, unblocked), whatever this test process inherited
    or its worker pools left (a blocked or ignored SIGINT is inherited across exec)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_libraries_load_is_interrupted_exit_130(tmp_path: Path) -> None:
    """Ctrl-C at the moment torch starts to load (a sitecustomize sends SIGINT then): ``interrupted``, exit 130."""
    (tmp_path / "sitecustomize.py").write_text(INTERRUPT_ON_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "fusionbench.cli", "list", "methods"], capture_output=True, text=True, env=env, timeout=120, preexec_fn=_fresh_sigint
    )
    assert done.returncode == 130, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip() == "interrupted" and "Traceback" not in done.stdout + done.stderr


def test_sigterm_ends_a_command_as_ctrl_c_does(tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``timeout`` and schedulers send SIGTERM: ``interrupted``, exit 130, nothing written."""
    monkeypatch.chdir(tmp_path)
    words = ["run", "method=broken", "modelpool=dummy", f"plugins=[{plugin(tmp_path, 'is terminated')}]"]
    before = tree(tmp_path, isolated_home)
    code = main(words)
    err = capsys.readouterr().err
    assert code == 130 and err.strip() == "interrupted" and "Traceback" not in err
    assert tree(tmp_path, isolated_home) == before


def test_mini_clean_with_nothing_to_clean_says_so(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mini", "clean"]) == 0
    assert capsys.readouterr().out.strip() == f"nothing to clean: no built mini world matches (vision, text) under {isolated_home / 'mini'}"

