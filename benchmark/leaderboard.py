"""The leaderboard: entries made from run reports and sweep summaries, validated, merged, published.

An entry (schema ``fusionbench.leaderboard-entry/1``) is one method on one benchmark (model
family, fine-tuning mode, pool, task pool, split, protocol). A run report gives a
``single_run`` entry; a sweep summary gives a ``subset_sweep`` entry with the per-size
aggregates of the L-LoRA paper's protocol. ``leaderboard/leaderboard.json`` (schema
``fusionbench.leaderboard/1``, JSON Schema in ``leaderboard/schema.json``) holds the entries;
``leaderboard/index.html`` renders them, one table per benchmark (never two checkpoint families in one
table), with the published numbers of that benchmark as unranked "published" rows. Two entries with the same benchmark, method name,
version, parameters and grid are duplicates.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Mapping

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from fusionbench.api.errors import FusionBenchError
from fusionbench.engine.report import AVERAGED, Report, mean
from fusionbench.engine.results import REPORT as REPORT_SCHEMA
from fusionbench.engine.results import SWEEP as SUMMARY_SCHEMA
from fusionbench.engine.results import MethodInfo, Provenance, result_problem
from fusionbench.engine.summary import Summary
from fusionbench.utils.cache import content_hash
from fusionbench.utils.jsonio import write_json_atomic
from fusionbench.utils.paths import user_path

LEADERBOARD_SCHEMA = "fusionbench.leaderboard/1"
ENTRY_SCHEMA = "fusionbench.leaderboard-entry/1"
DEFAULT_FILE = "leaderboard/leaderboard.json"
SOURCE_NAMES = ("report.json", "summary.json")
_TASK_FIELDS = ("metric", "score", "n", "stderr", "normalized", "finetuned", "pretrained")


class LeaderboardError(FusionBenchError):
    """A leaderboard, entry or source file is missing, malformed or a duplicate."""


@dataclass
class LeaderboardArgs:
    """key=value options of ``fusionbench leaderboard``."""

    out: str = DEFAULT_FILE  # the leaderboard file built or published into


# ------------------------------------------------------------------ schemas
@cache
def schema() -> dict[str, Any]:
    """The leaderboard JSON Schema (shipped as package data; ``leaderboard/schema.json`` links to it)."""
    return json.loads((files("fusionbench") / "schemas" / "leaderboard.schema.json").read_text())


@cache
def _validator(part: str) -> Draft202012Validator:
    doc = schema()
    return Draft202012Validator(doc if part == "leaderboard" else {"$ref": f"#/$defs/{part}", "$defs": doc["$defs"]})


def _where(error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return f"at {path}: " if path else ""


def _nonfinite(value: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinity in ``value`` (JSON has none), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(top level)"
    if isinstance(value, dict):
        items: list[tuple[Any, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        items = []
    for key, item in items:
        found = _nonfinite(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def problem(data: Any, part: str = "entry") -> str | None:
    """One line saying why ``data`` is not a valid ``part`` ("entry" or "leaderboard"), or None when it is."""
    error = best_match(_validator(part).iter_errors(data))
    if error is not None:
        return _where(error) + error.message
    bad = _nonfinite(data)
    return f"at {bad}: not a finite number (NaN or infinity)" if bad else None


def describe(entry: Mapping[str, Any]) -> str:
    """``method version on pool (protocol)``, for messages."""
    b, m = entry.get("benchmark", {}), entry.get("method", {})
    return f"{m.get('name', '?')} {m.get('version', '?')} on {b.get('modelpool', '?')} ({b.get('protocol', '?')})"


def entry_key(entry: Mapping[str, Any]) -> str:
    """Identity of an entry: benchmark + method name + version + parameters (+ grid)."""
    benchmark = {**entry["benchmark"], "tasks": sorted(entry["benchmark"]["tasks"])}
    method = entry["method"]
    return content_hash(benchmark, method["name"], method["version"], method["parameters"], method.get("grid"))


# -------------------------------------------------------------- conversion
def _provenance(source: str, prov: Provenance) -> dict[str, Any]:
    return {"source": source, "packages": prov.packages, "git_revision": prov.git_revision, "device": prov.device,
            "date": prov.date, "seed": prov.seed, "config_hash": prov.config_hash}


def _method(method: MethodInfo) -> dict[str, Any]:
    return {"name": method.name, "version": method.version, "reference": method.reference, "parameters": method.parameters}


def _task(metric: str, score: float, n: int, stderr: float, normalized: float | None, finetuned: float, pretrained: float) -> dict[str, Any]:
    """An entry's row of one task (the order of _TASK_FIELDS)."""
    return dict(zip(_TASK_FIELDS, (metric, score, n, stderr, normalized, finetuned, pretrained)))


def entry_from_report(report: Report) -> dict[str, Any]:
    """A ``single_run`` entry from a run report (schema fusionbench.report/1)."""
    average = report.average
    return {
        "schema": ENTRY_SCHEMA,
        "benchmark": {
            "family": report.modelpool.benchmark,
            "checkpoint_family": report.modelpool.family,
            "mode": report.modelpool.mode,
            "modelpool": report.modelpool.name,
            "taskpool": report.taskpool.name,
            "tasks": list(report.tasks),
            "split": report.split,
            "limit": report.taskpool.limit,
            "protocol": "single_run",
        },
        "method": _method(report.method),
        "tasks": {t: _task(r.metric, r.score, r.n, r.stderr, r.normalized, r.finetuned, r.pretrained) for t, r in report.tasks.items()},
        "average": {"score": average.score, "normalized": average.normalized, "finetuned": average.finetuned, "pretrained": average.pretrained},
        "cost": asdict(report.cost),
        "provenance": _provenance("run_report", report.provenance),
    }


def entry_from_summary(summary: Summary) -> dict[str, Any]:
    """A ``subset_sweep`` entry from a sweep summary (schema fusionbench.sweep/1).

    ``tasks`` holds the per-task scores of the full task set when the sweep included it.
    """
    full = summary.full
    rows = {
        t: _task(s.metric, s.score, s.n, s.stderr, s.normalized, summary.finetuned[t], summary.pretrained[t])
        for t, s in (full.scores.items() if full else ())
    }
    grid: dict[str, list[Any]] = {}
    for point in summary.grid:
        for name, value in point.items():
            if value not in grid.setdefault(name, []):
                grid[name].append(value)
    return {
        "schema": ENTRY_SCHEMA,
        "benchmark": {
            "family": summary.modelpool.benchmark,
            "checkpoint_family": summary.modelpool.family,
            "mode": summary.modelpool.mode,
            "modelpool": summary.modelpool.name,
            "taskpool": summary.taskpool.name,
            "tasks": list(summary.finetuned),
            "split": summary.splits.report,
            "limit": summary.taskpool.limit,
            "protocol": "subset_sweep",
            "subsets": summary.subsets_spec,
            "selection_split": summary.splits.selection,
        },
        "method": {**_method(summary.method), "grid": grid},
        "tasks": rows,
        "average": {key: mean([row[key] for row in rows.values()]) for key in AVERAGED},
        "sweep": {"subsets": len(summary.subsets), "table1": None if summary.table1 is None else asdict(summary.table1),
                  "by_size": {size: asdict(stats) for size, stats in summary.by_size.items()}},
        "cost": {"wall_seconds": summary.wall_seconds, "evaluations": summary.counts.evaluations, "computed": summary.counts.computed},
        "provenance": _provenance("sweep_summary", summary.provenance),
    }


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise LeaderboardError(f"{path}: cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LeaderboardError(f"{path}: is not JSON ({exc})") from None


def _source_file(path: Path) -> Path:
    """A file as given, or the report.json / summary.json inside a run or sweep directory."""
    if path.is_dir():
        inside = [path / name for name in SOURCE_NAMES if (path / name).is_file()]
        if not inside:
            raise LeaderboardError(f"{path}: directory holds no report.json or summary.json; give a run or sweep output directory or a JSON file")
        return inside[0]
    if not path.is_file():
        raise LeaderboardError(f"{path}: no such file or directory")
    return path


def _check_current(path: Path, data: dict[str, Any], what: str) -> None:
    """A LeaderboardError naming the fix for a result an older FusionBench wrote (no provenance, no modelpool.benchmark)."""
    method, pool = data.get("method"), data.get("modelpool")
    missing = None if "provenance" in data and isinstance(method, dict) and "reference" in method else "provenance"
    missing = missing or (None if isinstance(pool, dict) and "benchmark" in pool else "modelpool.benchmark")
    if missing:
        again = "re-run the sweep, it resumes from its store" if what == "sweep summary" else "re-run it"
        raise LeaderboardError(f"{path}: {what} has no {missing} (written by an older FusionBench); {again}")


def entries_from_file(path: str | Path) -> list[dict[str, Any]]:
    """Entries in a file or run / sweep directory: a run report, a sweep summary, an entry or a leaderboard.

    Entries are returned as found (not validated); reports and summaries are converted.
    """
    path = _source_file(user_path(path))
    data = _read_json(path)
    kind = data.get("schema") if isinstance(data, dict) else None
    if kind == ENTRY_SCHEMA:
        return [data]
    if kind == LEADERBOARD_SCHEMA:
        if not isinstance(data.get("entries"), list):
            raise LeaderboardError(f"{path}: leaderboard has no list of entries")
        return list(data["entries"])
    if kind in (REPORT_SCHEMA, SUMMARY_SCHEMA):
        _check_current(path, data, "run report" if kind == REPORT_SCHEMA else "sweep summary")
    if kind == REPORT_SCHEMA:
        problem = result_problem(data, REPORT_SCHEMA)
        if problem is not None:
            raise LeaderboardError(f"{path}: invalid run report, {problem}")
        return [entry_from_report(Report.from_dict(data))]
    if kind == SUMMARY_SCHEMA:
        problem = result_problem(data, SUMMARY_SCHEMA)
        if problem is not None:
            raise LeaderboardError(f"{path}: invalid sweep summary, {problem}")
        return [entry_from_summary(Summary.from_dict(data))]
    known = ", ".join((ENTRY_SCHEMA, LEADERBOARD_SCHEMA, REPORT_SCHEMA, SUMMARY_SCHEMA))
    raise LeaderboardError(f"{path}: unknown schema {kind!r}; expected one of {known}")


def find_sources(paths: list[str]) -> list[Path]:
    """Run reports and sweep summaries: files as given; directories searched recursively."""
    found: list[Path] = []
    for given in paths:
        path = user_path(given)
        if path.is_dir():
            hits = sorted(p for name in SOURCE_NAMES for p in path.rglob(name))
            if not hits:
                raise LeaderboardError(f"{path}: no report.json or summary.json found under this directory")
            found.extend(hits)
        elif path.is_file():
            found.append(path)
        else:
            raise LeaderboardError(f"{path}: no such file or directory")
    return found


# ------------------------------------------------------------- leaderboards
def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def load(path: str | Path) -> dict[str, Any]:
    """A valid leaderboard file (LeaderboardError otherwise)."""
    path = user_path(path)
    if not path.is_file():
        raise LeaderboardError(f"{path}: no such leaderboard file")
    data = _read_json(path)
    why = problem(data, "leaderboard")
    if why:
        raise LeaderboardError(f"{path}: not a valid leaderboard, {why}")
    return data


@cache
def published_sets() -> list[dict[str, Any]]:
    """The published numbers shipped in ``fusionbench/data/published.json`` (per backbone, checkpoint family, mode
    and task pool, each row with its source): the page shows them unranked beside the measured entries."""
    return list(json.loads((files("fusionbench") / "data" / "published.json").read_text())["sets"])


def save(path: str | Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Validate and atomically write a leaderboard holding ``entries`` and the published numbers."""
    path = user_path(path)
    if not path.parent.is_dir():
        raise LeaderboardError(f"{path}: folder {str(path.parent)!r} does not exist; run from the repository root or give out=PATH")
    board = {"schema": LEADERBOARD_SCHEMA, "updated": now(), "entries": entries, "published": published_sets()}
    why = problem(board, "leaderboard")
    if why:
        raise LeaderboardError(f"refusing to write an invalid leaderboard to {path}: {why}")
    write_json_atomic(path, board)
    return board


def _checked(entries: list[dict[str, Any]], origin: str) -> None:
    for i, entry in enumerate(entries):
        why = problem(entry)
        if why:
            raise LeaderboardError(f"{origin}: entry {i + 1} ({describe(entry)}) is invalid, {why}")


def build(paths: list[str], out: str | Path) -> tuple[dict[str, Any], int]:
    """Rebuild a leaderboard from run reports and sweep summaries; returns it and how many older duplicates were dropped."""
    latest: dict[str, dict[str, Any]] = {}
    found = 0
    for source in find_sources(paths):
        entries = entries_from_file(source)
        _checked(entries, str(source))
        found += len(entries)
        for entry in entries:
            key = entry_key(entry)
            if key not in latest or entry["provenance"]["date"] > latest[key]["provenance"]["date"]:
                latest[key] = entry
    ordered = sorted(latest.values(), key=lambda e: (e["benchmark"]["checkpoint_family"], e["benchmark"]["family"], e["benchmark"]["mode"], e["benchmark"]["modelpool"], e["benchmark"]["protocol"], e["method"]["name"]))
    board = save(out, ordered)
    return board, found - len(ordered)


def publish(paths: list[str], into: str | Path) -> tuple[int, int]:
    """Add the entries of ``paths`` to the leaderboard ``into``, all or nothing; returns (added, total).

    Refuses schema-invalid entries and duplicates (of an existing entry or of each other);
    existing entries are kept as they are. A missing leaderboard file is created.
    """
    into = user_path(into)
    existing = load(into)["entries"] if into.exists() else []
    old_keys = {entry_key(e) for e in existing}
    new_keys: set[str] = set()
    new: list[dict[str, Any]] = []
    for given in paths:
        entries = entries_from_file(given)
        _checked(entries, given)
        for entry in entries:
            key = entry_key(entry)
            if key in old_keys or key in new_keys:
                where = into if key in old_keys else "an earlier file given"
                raise LeaderboardError(
                    f"{given}: {describe(entry)} duplicates an entry of {where} (same benchmark, method, version and parameters); nothing was published"
                )
            new_keys.add(key)
            new.append(entry)
    if not new:
        raise LeaderboardError("publish needs at least one entry; give report.json / summary.json files, run or sweep directories, or entry files")
    save(into, existing + new)
    return len(new), len(existing) + len(new)


def validate(path: str | Path) -> str:
    """Check a leaderboard or entry file; returns a one-line verdict (LeaderboardError when invalid)."""
    path = user_path(path)
    if not path.is_file():
        raise LeaderboardError(f"{path}: no such file")
    data = _read_json(path)
    kind = data.get("schema") if isinstance(data, dict) else None
    if kind == LEADERBOARD_SCHEMA:
        board = load(path)
        seen: set[str] = set()
        for entry in board["entries"]:
            key = entry_key(entry)
            if key in seen:
                raise LeaderboardError(f"{path}: {describe(entry)} appears twice (same benchmark, method, version and parameters)")
            seen.add(key)
        return f"{path}: valid leaderboard ({LEADERBOARD_SCHEMA}) with {len(board['entries'])} entries"
    if kind == ENTRY_SCHEMA:
        _checked([data], str(path))
        return f"{path}: valid entry ({ENTRY_SCHEMA}): {describe(data)}"
    if kind in (REPORT_SCHEMA, SUMMARY_SCHEMA):
        raise LeaderboardError(f"{path}: is a {kind} file, not a leaderboard entry; publish converts it: fusionbench leaderboard publish {path}")
    raise LeaderboardError(f"{path}: unknown schema {kind!r}; expected {LEADERBOARD_SCHEMA} or {ENTRY_SCHEMA}")
