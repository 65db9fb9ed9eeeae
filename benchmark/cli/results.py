"""`fusionbench results`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Optional

from rich.console import Console
from rich.table import Table

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.utils.paths import user_path


@dataclass
class ResultsSchema:
    """Top-level keys of ``fusionbench results``."""

    store: Optional[str] = None  # result store (default $FUSIONBENCH_HOME/results.sqlite)
    method: Optional[str] = None  # only rows of this method
    pool: Optional[str] = None  # only rows of this model pool
    taskpool: Optional[str] = None  # only rows of this task pool
    task: Optional[str] = None  # only rows of this task
    split: Optional[str] = None  # only rows of this split (train, validation, test)
    format: str = "table"  # table | csv | json
    out: Optional[str] = None  # write the rows to this file instead of printing them
    summaries: list[str] = field(default_factory=list)  # results compare: sweep output folders or their summary.json files


def handle(words: list[str]) -> int:
    from fusionbench.api.taskpool import SPLITS
    from fusionbench.config.compose import compose
    from fusionbench.engine.store import FILTERS, default_store, export, stored_rows
    from fusionbench.sweep.aggregate import compare_table
    from fusionbench.sweep.protocol import load_summary
    from fusionbench.utils.jsonio import write_text_atomic
    from fusionbench.utils.paths import check_writable

    compare = bool(words) and words[0] == "compare"
    cfg = compose(words[1:] if compare else words, ResultsSchema, groups=())
    if compare:
        if not cfg.summaries:
            raise ConfigError("results compare needs summaries=[DIR,...]: the output directories (or summary.json files) of sweeps")
        Console().print(compare_table([load_summary(p) for p in cfg.summaries]))
        return 0
    if cfg.format not in ("table", "csv", "json"):
        raise ConfigError(f"format={cfg.format!r} is not valid; choose table, csv or json")
    filters = {k: cfg[k] for k in FILTERS if cfg[k] is not None}
    if cfg.split is not None and cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not a split.{did_you_mean(cfg.split, SPLITS)} Valid: {choices_text(SPLITS)}")
    out = user_path(cfg.out) if cfg.out else None
    if out is not None:
        check_writable(out, "out", file=True)
    path = user_path(cfg.store) if cfg.store else default_store()
    rows = stored_rows(path, filters)
    if cfg.format == "table":
        table = Table(title=f"{len(rows)} stored results in {path}")
        for column in ("method", "params", "pool", "subset", "task", "split", "value", "stderr", "n"):
            table.add_column(column, overflow="fold")
        for r in rows:
            table.add_row(r.method, json.dumps(r.params), r.pool, ",".join(r.subset), r.task, r.split, f"{r.value:.4f}", f"{r.stderr:.4f}", str(r.n))
        Console().print(table)
        return 0
    text = export(rows, cfg.format)
    if out is not None:
        write_text_atomic(out, text)
        print(f"{len(rows)} rows written to {cfg.out}")
    else:
        sys.stdout.write(text)
    return 0


HELP = """\
usage: fusionbench results [store=PATH] [method=M] [pool=P] [taskpool=T] [task=X] [split=S] [format=table|csv|json] [out=FILE]
       fusionbench results compare summaries=[DIR,...]

Query and export the result store, or put several sweeps side by side in the Table-1
layout (one row per method, one column per model pool).

keys (defaults shown):
{keys}
"""


def usage() -> str:
    """HELP with the keys of ``ResultsSchema`` filled in."""
    from fusionbench.cli.keys import keys_help

    return HELP.format(keys=keys_help(ResultsSchema, skip=()))
