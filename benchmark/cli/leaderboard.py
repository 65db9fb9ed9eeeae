"""`fusionbench leaderboard`."""

from __future__ import annotations

import re

from fusionbench.api.errors import ConfigError
from fusionbench.cli.words import subcommand


def handle(words: list[str]) -> int:
    from fusionbench import leaderboard
    from fusionbench.config.compose import compose

    action, rest = subcommand(words, "leaderboard", ("build", "publish", "validate"))
    is_option = [bool(re.match(r"[A-Za-z_][\w.]*=", w)) for w in rest]
    paths = [w for w, opt in zip(rest, is_option) if not opt]
    cfg = compose([w for w, opt in zip(rest, is_option) if opt], leaderboard.LeaderboardArgs, groups=())
    if action == "build":
        board, dropped = leaderboard.build(paths or ["outputs"], cfg.out)
        print(f"{len(board['entries'])} entries written to {cfg.out}" + (f" ({dropped} older duplicates left out)" if dropped else ""))
        return 0
    if not paths:
        raise ConfigError(f"leaderboard {action} needs at least one FILE (see fusionbench leaderboard --help)")
    if action == "validate":
        for path in paths:
            print(leaderboard.validate(path))
        return 0
    added, total = leaderboard.publish(paths, cfg.out)
    print(f"published {added} {'entry' if added == 1 else 'entries'} into {cfg.out} ({total} in all)")
    return 0


HELP = """\
usage: fusionbench leaderboard build [PATH ...] [out=leaderboard/leaderboard.json]
       fusionbench leaderboard publish FILE ... [out=leaderboard/leaderboard.json]
       fusionbench leaderboard validate FILE ...

build     rebuild the leaderboard from run reports (report.json: single_run entries) and
          sweep summaries (summary.json: subset_sweep entries); a PATH is a file or a
          directory searched recursively (default: outputs). Of duplicates the newest is kept.
publish   add entries to the leaderboard, all or nothing: a FILE is a report.json, a
          summary.json, a run or sweep directory, an entry file or another leaderboard.
          Schema-invalid entries and duplicates (same benchmark, method, version and
          parameters) are refused; existing entries are never touched.
validate  check a leaderboard or entry file against leaderboard/schema.json.

keys (defaults shown):
{keys}

View it: python -m http.server -d leaderboard, then open http://localhost:8000/
"""


def usage() -> str:
    """HELP with the keys of ``LeaderboardArgs`` filled in."""
    from fusionbench.cli.keys import keys_help
    from fusionbench.leaderboard import LeaderboardArgs

    return HELP.format(keys=keys_help(LeaderboardArgs, skip=()))
