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
    out: Optional[str] = None  # train-base: where the base goes (default: the base the package ships)


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.mini.build import KINDS, clean, mini_home, status
    from fusionbench.mini.pools import build_pools, pools_ready

    action, rest = subcommand(words, "mini", ("build", "status", "clean", "train-base"))
    kinds = [w for w in rest if "=" not in w]
    unknown = [k for k in kinds if k not in (*KINDS, "all")]
    if unknown:
        raise ConfigError(f"unknown mini world {unknown[0]!r}.{did_you_mean(unknown[0], KINDS)} Choose from: {', '.join(KINDS)}, all")
    selected = list(KINDS) if not kinds or "all" in kinds else kinds
    cfg = compose([w for w in rest if "=" in w], MiniSchema, groups=())
    if action == "train-base":
        return _train_base(selected, cfg)
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


def _train_base(kinds: list[str], cfg: MiniSchema) -> int:
    from fusionbench.mini.base_training import train_base
    from fusionbench.mini.build import SIZES
    from fusionbench.mini.shipped import SHIPPED_BASES
    from fusionbench.utils.paths import user_path

    if len(kinds) != 1:
        raise ConfigError("train-base trains one base at a time; run `fusionbench mini train-base vision` or `fusionbench mini train-base text`")
    kind = kinds[0]
    out = user_path(cfg.out) if cfg.out else SHIPPED_BASES[kind]
    sums = train_base(kind, out, SIZES[(kind, bool(cfg.reduced))])
    for name, digest in sums.items():
        print(f"{digest}  {name}")
    print(f"mini {kind} base written to {out}")
    return 0


HELP = """\
usage: fusionbench mini build|status|clean [vision|text|all] [seed=0] [reduced=false]
       fusionbench mini train-base vision|text [out=PATH] [reduced=false]

The embedded mini world: seven procedurally generated image tasks and seven GLUE-like
text tasks, tiny CLIP and T5 bases pretrained on them, and their full / LoRA / L-LoRA
fine-tuned pools, built on this CPU under $FUSIONBENCH_HOME/mini (default
~/.cache/fusionbench/mini). `build` builds (or finishes) the worlds; the mini_* model
pools also build them on first use (vision about 2 minutes, text about 3.5, on 2 CPU
cores). `status` lists built worlds; `clean` removes them. `train-base vision|text`
pretrains a base the package ships (deterministic: seed 0, pinned numerics; measured 32
minutes for vision and 4 for text, on one core of a busy machine) into out= (default: the
shipped base_vision/ or base_text/ folder) and prints its checksums.

keys:
{keys}
"""


def usage() -> str:
    """HELP with the keys of ``MiniSchema`` filled in."""
    from fusionbench.cli.keys import keys_help

    return HELP.format(keys=keys_help(MiniSchema, skip=()))
