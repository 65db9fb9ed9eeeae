"""`fusionbench mini`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rich.console import Console
from rich.table import Table

from fusionbench.api.errors import ConfigError, did_you_mean
from fusionbench.cli.words import subcommand


@dataclass
class MiniSchema:
    """Keys of ``fusionbench mini``."""

    seed: Optional[int] = None  # build: default 0; status/clean: every seed
    reduced: Optional[bool] = None  # a tiny world (seconds to build), for tests; clean: both when unset


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.mini.build import KINDS, clean, mini_home, status
    from fusionbench.mini.pools import build_pools, pools_ready

    action, rest = subcommand(words, "mini", ("build", "status", "clean"))
    kinds = [w for w in rest if "=" not in w]
    unknown = [k for k in kinds if k not in (*KINDS, "all")]
    if unknown:
        raise ConfigError(f"unknown mini world {unknown[0]!r}.{did_you_mean(unknown[0], KINDS)} Choose from: {', '.join(KINDS)}, all")
    selected = list(KINDS) if not kinds or "all" in kinds else kinds
    cfg = compose([w for w in rest if "=" in w], MiniSchema, groups=())
    if action == "build":
        for kind in selected:
            print(f"mini {kind} world and pools ready at {build_pools(kind, seed=cfg.seed or 0, reduced=bool(cfg.reduced))}")
    elif action == "status":
        table = Table(title="mini worlds")
        for column in ("world", "complete", "pools ready", "size (MB)", "path"):
            table.add_column(column)
        for row in status():
            kind, seed, reduced = row.get("kind"), row.get("seed", 0), row.get("reduced", False)
            ready = pools_ready(kind, seed, reduced) if kind in KINDS and row.get("complete") else False
            table.add_row(str(row.get("name")), str(row.get("complete")), str(ready), str(row.get("size_mb")), str(row.get("path")))
        Console().print(table)
    else:
        removed = [path for kind in selected for path in clean(kind, seed=cfg.seed, reduced=cfg.reduced)]
        for path in removed:
            print(f"removed {path}")
        if not removed:
            print(f"nothing to clean: no built mini world matches ({', '.join(selected)}) under {mini_home()}")
    return 0


HELP = """\
usage: fusionbench mini build|status|clean [vision|text|all] [seed=0] [reduced=false]

The embedded mini world: seven procedurally generated image tasks and seven GLUE-like
text tasks, tiny CLIP and T5 bases pretrained on them, and their full / LoRA / L-LoRA
fine-tuned pools, built on this CPU under $FUSIONBENCH_HOME/mini (default
~/.cache/fusionbench/mini). `build` builds (or finishes) the worlds; the mini_* model
pools also build them on first use (vision about 4 minutes, text about 4.5, on 2 CPU
cores). `status` lists built worlds; `clean` removes them.

keys:
{keys}
"""


def usage() -> str:
    """HELP with the keys of ``MiniSchema`` filled in."""
    from fusionbench.cli.keys import keys_help

    return HELP.format(keys=keys_help(MiniSchema, skip=()))
