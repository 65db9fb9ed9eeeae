"""A reader that closes standard output early (``fusionbench list methods | head``) ends a command quietly, exit
status 141 (128 + SIGPIPE, as Unix tools end), whatever the verb prints; a broken pipe that is not standard
output is an internal error as any other."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CLOSED = 128 + signal.SIGPIPE


def start(words: list[str], stdout: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "fusionbench.cli", *words], stdout=stdout, stderr=subprocess.PIPE)


def assert_quiet(done: subprocess.Popen[bytes]) -> None:
    stderr = done.stderr.read().decode() if done.stderr else ""
    assert done.wait(timeout=300) == CLOSED, stderr[-2000:]
    assert stderr == ""  # no error: line, no traceback, no "Exception ignored" from the interpreter's last flush


@pytest.mark.parametrize(
    "words",
    [
        ["list", "methods"],
        ["--help"],
        ["results", "--help"],
        ["run", "method=simple_average", "modelpool=dummy", "output_dir=run"],  # the report table
        ["list", "taskpools"],
    ],
    ids=" ".join,
)
def test_output_closed_before_the_command_prints(words: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    command = start(words, write_end)
    os.close(write_end)
    assert_quiet(command)


def test_reader_that_closes_after_one_line(tmp_path: Path) -> None:
    """As ``| head -1``: the pipe holds one page, so the listing (about 50 kB) is still being written when the reader goes."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    command = start(["list", "methods"], write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.readline().strip()
    assert_quiet(command)


TASK_POOL = """
from fusionbench.taskpools.dummy import DummyTaskPool


class Piped(DummyTaskPool):
    name = "piped"

    def evaluate(self, model, tasks, split="test"):
        raise BrokenPipeError(32, "Broken pipe")  # as a dead worker's pipe would
"""


def test_a_broken_pipe_that_is_not_standard_output_is_an_internal_error(tmp_path: Path) -> None:
    (tmp_path / "piped.py").write_text(TASK_POOL)
    (tmp_path / "piped.yaml").write_text("type: piped\n")
    words = ["run", "method=simple_average", "modelpool=dummy", f"taskpool={tmp_path / 'piped.yaml'}", f"plugins=[{tmp_path / 'piped.py'}]"]
    command = start([*words, f"output_dir={tmp_path / 'run'}"], subprocess.PIPE)
    _, err = command.communicate(timeout=300)
    assert command.returncode == 1, err.decode()[-2000:]
    assert err.decode().startswith("error: internal error, BrokenPipeError: [Errno 32] Broken pipe") and "Traceback" not in err.decode()
