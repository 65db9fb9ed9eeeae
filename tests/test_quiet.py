"""quiet_libraries: what every FusionBench process (CLI and worker) runs first."""

from transformers.utils import logging as hf_logging

from fusionbench import executors
from fusionbench.quiet import quiet_libraries


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
