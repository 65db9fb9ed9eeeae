"""One rule for every verb: when a word names a file, and how a list of names is written."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from fusionbench.api.words import names_a_file, word_list
from fusionbench.cli.main import main


@pytest.mark.parametrize(("word", "is_file"), [
    ("ties", False), ("clip-vit-b16", False), ("mini_clip_llora", False),
    ("my_pool.yaml", True), ("./ties", True), ("configs/pool", True), ("~/pool", True), ("plugin.py", True),
])
def test_a_word_names_a_file_by_suffix_slash_dot_or_tilde(word: str, is_file: bool) -> None:
    assert names_a_file(word, (".yaml", ".yml", ".py")) is is_file


def test_a_list_of_names_reads_the_same_in_both_spellings() -> None:
    assert word_list("q_proj,v_proj") == word_list(OmegaConf.create({"v": ["q_proj", "v_proj"]}).v) == ["q_proj", "v_proj"]
    assert word_list("[a, b]") == ["a", "b"] and word_list(None) == [] and word_list("") == []


def test_profile_and_analyze_read_both_list_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    for words in (["profile", "paradigms=full,fulll"], ["profile", "paradigms=[full,fulll]"]):
        assert main(words) == 2
        assert "unknown paradigm 'fulll'" in capsys.readouterr().err
    for tasks in ("tasks=alpha,zeta", "tasks=[alpha,zeta]"):
        assert main(["analyze", "disentanglement", "modelpool=dummy", tasks]) == 2
        assert "pool has no task 'zeta'" in capsys.readouterr().err
