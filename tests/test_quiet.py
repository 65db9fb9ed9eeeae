"""quiet_libraries: what every FusionBench process (CLI and worker) runs first."""

import subprocess
import sys

import pytest
from transformers.utils import logging as hf_logging

from fusionbench.engine import executors
from fusionbench.utils.quiet import quiet_libraries


def test_quiet_libraries_turns_transformers_progress_bars_off() -> None:
    hf_logging.enable_progress_bar()
    quiet_libraries()
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()


def test_sweep_worker_processes_start_quiet(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(executors, "ConfigWorker", lambda config, threads: object())  # the worker itself is not under test
    monkeypatch.setattr(executors, "_WORKER", None)
    hf_logging.enable_progress_bar()
    executors._init_process({}, 1)
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()


def test_torch_jvp_decomposition_notice_is_silenced() -> None:
    """Forward-mode AD (the linearized paradigm) loads torch decompositions that warn about torch.jit.script."""
    load = "import torch; from torch._decomp import decompositions_for_jvp"
    strict = [sys.executable, "-W", "error::FutureWarning", "-c"]
    if subprocess.run([*strict, load], capture_output=True).returncode == 0:
        pytest.skip("this torch version does not warn when loading its jvp decompositions")
    quiet = subprocess.run([*strict, f"from fusionbench.utils.quiet import quiet_libraries; quiet_libraries(); {load}"], capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
