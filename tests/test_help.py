"""``fusionbench VERB --help`` against the schemas that read the verb's words: every key is named, and a
default the help shows (``key=value``) is the schema's default."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from fusionbench.analysis import analyses
from fusionbench.cli.main import VERBS, verb_help
from fusionbench.cli.mini import MiniSchema
from fusionbench.cli.results import ResultsSchema
from fusionbench.export import MergeSchema
from fusionbench.finetune.command import FinetuneArgs
from fusionbench.profiling.measure import ProfileSchema
from fusionbench.runner import RunSchema
from fusionbench.sweep.protocol import SweepSchema

SCHEMAS: dict[str, list[type]] = {
    "run": [RunSchema], "merge": [MergeSchema], "sweep": [SweepSchema], "results": [ResultsSchema], "profile": [ProfileSchema], "finetune": [FinetuneArgs],
    "mini": [MiniSchema], "analyze": [analyses.CosineSchema, analyses.DisentanglementSchema, analyses.ScalingSchema, analyses.InterferenceSchema],
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
