"""The results FusionBench writes, each versioned by its ``schema`` (``format``) field and described by a
JSON Schema shipped in ``fusionbench/schemas``: run reports, sweep summaries, cost profiles and
fine-tune metadata. Writers check what they write (a mismatch is a bug, never written); readers
such as the leaderboard check what they read.

Each result is a dataclass (``engine.report.Report``, ``engine.summary.Summary``,
``profiling.result.Profile``, ``finetune.record.FinetuneRecord``) whose ``to_dict`` is the JSON the
schema describes and whose ``from_dict`` reads it back; the parts they share live here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from functools import cache
from importlib.resources import files
from typing import Any, Mapping, Optional, TypeVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

T = TypeVar("T")
REPORT, SWEEP, PROFILE, FINETUNE = "fusionbench.report/1", "fusionbench.sweep/1", "fusionbench.profile/1", "fusionbench.finetune/1"
SCHEMA_FILES = {REPORT: "report.schema.json", SWEEP: "sweep.schema.json", PROFILE: "profile.schema.json", FINETUNE: "finetune.schema.json"}


@cache
def schema_document(schema: str) -> dict[str, Any]:
    """The JSON Schema of a result kind (one of SCHEMA_FILES)."""
    return json.loads((files("fusionbench") / "schemas" / SCHEMA_FILES[schema]).read_text())


@cache
def _validator(schema: str) -> Draft202012Validator:
    return Draft202012Validator(schema_document(schema))


def result_problem(data: Any, schema: str) -> Optional[str]:
    """One line saying where and why ``data`` does not match ``schema``, or None when it does."""
    error = best_match(_validator(schema).iter_errors(data))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    return (f"at {where}: " if where else "") + error.message


def check_result(data: Any, schema: str) -> None:
    """Raise (an internal error: FusionBench wrote something its own schema refuses) unless ``data`` matches ``schema``."""
    problem = result_problem(data, schema)
    if problem is not None:
        raise RuntimeError(f"a {schema} result does not match its JSON Schema ({problem}); this is a bug in FusionBench")


def from_fields(cls: type[T], data: Mapping[str, Any]) -> T:
    """The dataclass ``cls`` from a JSON object holding its fields (by name)."""
    return cls(**{f.name: data[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class MethodInfo:
    """The method a result comes from: registry name, version, paper reference, parameters; ``data``: what it read."""

    name: str
    version: str
    reference: str
    parameters: dict[str, Any]
    data: Optional[dict[str, Any]] = None  # a data-based method's DataUse (split, examples_per_task, labels, test_time_adaptation)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MethodInfo:
        return cls(data["name"], data["version"], data["reference"], dict(data["parameters"]), data.get("data"))

    def to_dict(self, with_data: bool = True) -> dict[str, Any]:
        """The JSON object; ``with_data=False`` for results whose schema has no ``data`` (sweep summaries)."""
        head = {"name": self.name, "version": self.version, "reference": self.reference, "parameters": self.parameters}
        return {**head, "data": self.data} if with_data else head


@dataclass(frozen=True)
class Provenance:
    """Where a run or sweep result comes from: package versions, git revision, device, date, seed, resolved config and its hash."""

    packages: dict[str, str]
    git_revision: Optional[str]
    device: str
    date: str
    seed: int
    config: dict[str, Any]
    config_hash: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        return from_fields(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
