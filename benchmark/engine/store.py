"""SQLite result store: one row per (merged model, task, split), keyed by a content hash.

The key hashes everything that determines a result (method + version + parameters, pool
identity, task pool identity with its limit, subset, task, split, seed), so re-running a
sweep computes only what is missing. Rows of one evaluation are written in one
transaction with ``INSERT OR IGNORE``: a crash loses at most the evaluation in flight and
never duplicates a row. WAL journaling keeps readers unblocked; an advisory lock file
keeps two sweeps from writing one store at the same time.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Optional

from fusionbench.api.errors import ConfigError, FusionBenchError, choices_text, did_you_mean
from fusionbench.utils.cache import content_hash, home
from fusionbench.utils.paths import check_writable, user_path

STORE_SCHEMA = "fusionbench.store/1"
_SQLITE_MAGIC = b"SQLite format 3\x00"

_CREATE = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    method_version TEXT NOT NULL,
    params TEXT NOT NULL,
    pool TEXT NOT NULL,
    pool_identity TEXT NOT NULL,
    taskpool TEXT NOT NULL,
    taskpool_identity TEXT NOT NULL,
    subset TEXT NOT NULL,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    seed INTEGER NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    n INTEGER NOT NULL,
    stderr REAL NOT NULL,
    seconds REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_method ON results (method, pool, taskpool);
"""
_JSON_COLUMNS = ("params", "pool_identity", "taskpool_identity", "subset")  # stored as JSON text


class StoreError(FusionBenchError):
    """The store file is unreadable, foreign, or in use by another sweep."""


@dataclass(frozen=True)
class ResultKey:
    """Everything that determines one stored result."""

    method: str
    method_version: str
    params: dict[str, Any]
    pool: str
    pool_identity: dict[str, Any]
    taskpool: str
    taskpool_identity: dict[str, Any]
    subset: tuple[str, ...]
    task: str
    split: str
    seed: int

    def digest(self) -> str:
        fields = asdict(self)
        del fields["pool"], fields["taskpool"]  # display names; identities decide
        return content_hash(fields)


@dataclass(frozen=True)
class Result:
    key: ResultKey
    metric: str
    value: float
    n: int
    stderr: float
    seconds: float


@dataclass(frozen=True)
class StoredResult(ResultKey):
    """One row of the store, as ``fusionbench results`` exports it and ``fusionbench.load_results`` returns it:
    the fields that determine a result, then what was measured.

    ``to_dict`` is one object of ``results format=json`` (the store's columns in their order);
    ``pandas.DataFrame(rows)`` makes a table of a list of them.
    """

    key: str  # the row's key: ResultKey.digest() of the fields above, when it was written
    metric: str
    value: float
    n: int
    stderr: float
    seconds: float
    created: float  # when the row was written (seconds since the epoch)

    def digest(self) -> str:
        return self.key

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        return {"key": row.pop("key"), **row, "subset": list(self.subset)}


class ResultStore:
    """An open store. Use as a context manager; ``writer=True`` takes the sweep lock."""

    def __init__(self, path: str | Path, writer: bool = False) -> None:
        self.path = user_path(path)
        self.writer = writer
        self._lock_file: Optional[io.TextIOWrapper] = None
        self._check_file()
        if writer:
            self._take_lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self._init_schema()  # before any PRAGMA: a foreign database must stay byte-identical
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.DatabaseError, StoreError, OSError) as exc:
            self._release_lock()
            if hasattr(self, "db"):
                self.db.close()
            self.remove_created()
            if isinstance(exc, StoreError):
                raise
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise StoreError(f"store {str(self.path)!r} cannot be opened as a FusionBench store ({reason}); choose another with store=PATH") from None

    # ---------------------------------------------------------------- guards
    def _check_file(self) -> None:
        if self.path.is_dir():
            raise StoreError(f"store {str(self.path)!r} is a folder; give the path of an SQLite file with store=PATH")
        if not self.path.exists():
            return
        try:
            with self.path.open("rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            raise StoreError(f"store {str(self.path)!r} is unreadable ({exc.strerror}); fix its permissions or choose store=PATH") from None
        if head and head != _SQLITE_MAGIC:
            raise StoreError(f"store {str(self.path)!r} is not an SQLite database; it was left untouched; choose another with store=PATH")

    def _init_schema(self) -> None:
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"store {str(self.path)!r} is an SQLite database of another program (tables: {', '.join(sorted(tables))}); it was left untouched; choose another with store=PATH")
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None or row[0] != STORE_SCHEMA:
                found = row[0] if row else "none"
                raise StoreError(f"store {str(self.path)!r} has schema {found!r}, expected {STORE_SCHEMA!r}; choose another with store=PATH")
            return
        if not self.writer:
            raise StoreError(f"store {str(self.path)!r} is empty; run a sweep first")
        with self.db:
            self.db.executescript(_CREATE)
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (STORE_SCHEMA,))

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        self._created = [p for p in (self.path, lock_path) if not p.exists()]  # removed again when opening fails
        check_writable(self.path, "store", file=True)
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = lock_path.open("a+")
        except OSError as exc:
            raise StoreError(f"store {str(self.path)!r} cannot be created ({exc.strerror}); choose another with store=PATH") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise StoreError(
                f"store {str(self.path)!r} is in use by another sweep (pid {owner}); wait for it to finish or use store=OTHER_PATH"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def remove_created(self) -> None:
        """Remove the store files this object created (a command that fails leaves nothing behind)."""
        for path in getattr(self, "_created", []):
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def close(self) -> None:
        self.db.close()
        self._release_lock()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ data
    def has(self, key: ResultKey) -> bool:
        return self.db.execute("SELECT 1 FROM results WHERE key=?", (key.digest(),)).fetchone() is not None

    def get(self, key: ResultKey) -> Optional[Result]:
        row = self.db.execute("SELECT metric, value, n, stderr, seconds FROM results WHERE key=?", (key.digest(),)).fetchone()
        return Result(key, *row) if row else None

    def put_many(self, results: list[Result]) -> int:
        """Insert results in one transaction; rows already present are kept. Returns rows added."""
        now = time.time()
        rows = [
            (
                r.key.digest(), r.key.method, r.key.method_version, json.dumps(r.key.params, sort_keys=True),
                r.key.pool, json.dumps(r.key.pool_identity, sort_keys=True), r.key.taskpool,
                json.dumps(r.key.taskpool_identity, sort_keys=True), json.dumps(list(r.key.subset)), r.key.task,
                r.key.split, r.key.seed, r.metric, r.value, r.n, r.stderr, r.seconds, now,
            )
            for r in results
        ]
        with self.db:
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            return self.db.total_changes - before

    def rows(self, **filters: str) -> Iterator[StoredResult]:
        """Stored rows, filtered by equality on columns, in the order they were written."""
        columns = [f.name for f in fields(StoredResult)]
        unknown = [k for k in filters if k not in columns]
        if unknown:
            raise StoreError(f"cannot filter results by {unknown[0]!r}; valid columns: {', '.join(columns)}")
        where = " AND ".join(f"{k}=?" for k in filters) or "1"
        cursor = self.db.execute(f"SELECT {', '.join(columns)} FROM results WHERE {where} ORDER BY created, key", tuple(filters.values()))
        for values in cursor:
            row = {c: json.loads(v) if c in _JSON_COLUMNS else v for c, v in zip(columns, values)}
            yield StoredResult(**{**row, "subset": tuple(row["subset"])})

    def distinct(self, column: str) -> list[str]:
        """The distinct stored values of a text column (method, pool, taskpool, task, split)."""
        if column not in ("method", "pool", "taskpool", "task", "split"):
            raise StoreError(f"cannot list the values of column {column!r}")
        return [value for (value,) in self.db.execute(f"SELECT DISTINCT {column} FROM results ORDER BY {column}")]

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0])


FILTERS = ("method", "pool", "taskpool", "task", "split")  # the columns a query filters on


def default_store() -> Path:
    """The result store sweeps write when they name none: ``$FUSIONBENCH_HOME/results.sqlite``."""
    return home() / "results.sqlite"


def stored_rows(path: Path, filters: dict[str, str]) -> list[StoredResult]:
    """The rows of the store at ``path`` whose FILTERS columns equal ``filters``.

    A ConfigError for a missing store, an unknown filter, or a value no stored row has (with the stored values).
    """
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"store {str(path)!r} {what}; run a sweep first or give store=PATH (an SQLite file a sweep wrote)")
    unknown = [key for key in filters if key not in FILTERS]
    if unknown:
        raise ConfigError(f"results cannot be filtered by {unknown[0]!r}.{did_you_mean(unknown[0], FILTERS)} Filters: {', '.join(FILTERS)}")
    with ResultStore(path) as store:
        for key, value in filters.items():
            stored = store.distinct(key)
            if value not in stored:
                raise ConfigError(f"no stored result has {key}={value!r}.{did_you_mean(str(value), stored)} Stored values of {key}: {choices_text(stored)}")
        return list(store.rows(**filters))


def export(rows: list[StoredResult], fmt: str) -> str:
    """Rows as CSV or JSON text (JSON columns written as JSON in a CSV cell)."""
    if fmt == "json":
        return json.dumps([row.to_dict() for row in rows], indent=2)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0].to_dict()))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in row.to_dict().items()})
    return buffer.getvalue()
