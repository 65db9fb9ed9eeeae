"""Shared fixtures: every test gets its own FUSIONBENCH_HOME so caches never leak between tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("fusionbench-home")
    monkeypatch.setenv("FUSIONBENCH_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(autouse=True)
def restore_registries() -> object:
    """Plugins registered by a test are forgotten after it."""
    from fusionbench.api.plugins import REGISTRIES

    saved = {kind: dict(reg._entries) for kind, reg in REGISTRIES.items() if reg._discovered}
    yield
    for kind, reg in REGISTRIES.items():
        if kind in saved:
            reg._entries = saved[kind]
        else:
            reg._entries, reg._discovered = {}, False


def reduced_mini_home(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh FUSIONBENCH_HOME holding the reduced mini world of ``kind`` (vision or text): about 25 CPU seconds of fine-tunes."""
    from fusionbench.mini.pools import build_pools

    home = tmp_path_factory.mktemp(f"mini-{kind}-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUSIONBENCH_HOME", str(home))
        build_pools(kind, reduced=True, quiet=True)
    return home


@pytest.fixture(scope="module")
def mini_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FUSIONBENCH_HOME holding the reduced mini vision world (built once per test module)."""
    return reduced_mini_home("vision", tmp_path_factory)


@pytest.fixture(scope="module")
def mini_text_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FUSIONBENCH_HOME holding the reduced mini text world: a tiny T5 and its seven GLUE-style tasks (once per module)."""
    return reduced_mini_home("text", tmp_path_factory)
