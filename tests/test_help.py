"""``fusionbench VERB --help`` against the schemas that read the verb's words: every key is named, a default
the help shows (``key=value``) is the schema's default, and the key lines are the ones generated from the
schemas (``fusionbench.cli.keys``), each with a meaning."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from fusionbench.analysis import analyses
from fusionbench.cli.keys import field_comments, key_lines
from fusionbench.cli.main import VERBS, verb_help
from fusionbench.cli.mini import MiniSchema
from fusionbench.cli.results import ResultsSchema
from fusionbench.config.recipe import Recipe
from fusionbench.export import MergeSchema
from fusionbench.finetune.command import FinetuneArgs
from fusionbench.leaderboard import LeaderboardArgs
from fusionbench.models.convert import ConvertArgs
from fusionbench.profiling.measure import ProfileSchema
from fusionbench.runner import RunSchema
from fusionbench.sweep.protocol import SweepSchema

SCHEMAS: dict[str, list[type]] = {
    "run": [RunSchema], "merge": [MergeSchema], "sweep": [SweepSchema], "results": [ResultsSchema], "profile": [ProfileSchema], "finetune": [FinetuneArgs, Recipe],
    "mini": [MiniSchema], "leaderboard": [LeaderboardArgs], "convert": [ConvertArgs], "analyze": [analyses.CosineSchema, analyses.DisentanglementSchema, analyses.ScalingSchema, analyses.InterferenceSchema],
}


def _default(field: dataclasses.Field) -> Any:  # type: ignore[type-arg]
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else None


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("verb", list(SCHEMAS))
def test_help_names_every_key_with_its_default(verb: str) -> None:
    text = verb_help(verb)
    for schema in SCHEMAS[verb]:
        for field in dataclasses.fields(schema):
            assert re.search(rf"(?<![\w-]){re.escape(field.name)}\b", text), f"{verb} --help does not name {field.name}"
            default = _default(field)
            if not isinstance(default, (str, int, float)) or default == "???":
                continue  # unset (None, MISSING) or a list: the help describes it in words
            for shown in (s.rstrip(",;") for s in re.findall(rf"(?<![\w.]){re.escape(field.name)}=([^\s\]]+)", text)):
                if shown.isupper() or "|" in shown or "..." in shown:
                    continue  # a placeholder (N, PATH) or the choices
                assert shown == _shown(default), f"{verb} --help shows {field.name}={shown} but the default is {default!r}"


def test_every_verb_has_help() -> None:
    for verb in VERBS:
        assert verb_help(verb).startswith("usage: fusionbench ")


GROUPS = ("method", "modelpool", "taskpool")  # described by each verb's text, with the valid options


@pytest.mark.parametrize("verb", list(SCHEMAS))
def test_help_shows_the_key_lines_generated_from_the_schemas(verb: str) -> None:
    lines = [line.strip() for line in verb_help(verb).splitlines()]
    for schema in SCHEMAS[verb]:
        for key, meaning in key_lines(schema, GROUPS):
            assert any(line.startswith(key) and line.endswith(meaning) for line in lines), f"{verb} --help lacks the line of {key}"


@pytest.mark.parametrize("verb", list(SCHEMAS))
def test_every_key_has_a_meaning_beside_its_field(verb: str) -> None:
    for schema in SCHEMAS[verb]:
        nested = [type(_default(f)) for f in dataclasses.fields(schema) if dataclasses.is_dataclass(_default(f))]
        for cls in (schema, *nested):
            missing = [f.name for f in dataclasses.fields(cls) if f.name not in GROUPS and f.name not in field_comments(cls)
                       and not dataclasses.is_dataclass(_default(f))]
            assert not missing, f"{cls.__name__}: no comment on the line of {missing} (the help shows it as the key's meaning)"


def test_a_shown_default_follows_the_schema() -> None:
    """The help is generated: changing a default changes the help, with no text to edit."""
    from fusionbench.runner import RunSchema

    field = next(f for f in dataclasses.fields(RunSchema) if f.name == "split")
    try:
        field.default = "validation"
        assert re.search(r"^\s+split=validation\s", verb_help("run"), re.M)
    finally:
        field.default = "test"
