"""`fusionbench run`."""

from __future__ import annotations

import os

from fusionbench.cli.words import with_group_options


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.engine.report import render
    from fusionbench.runner import RunSchema, run

    cfg = compose(words, RunSchema)
    report = run(cfg)
    render(report)
    print(f"report written to {os.path.join(str(report.output_dir), 'report.json')}")
    return 0


HELP = """\
usage: fusionbench run method=M modelpool=P [taskpool=T] [GROUP.KEY=VALUE ...] [KEY=VALUE ...]

Merge a model pool with a fusion method, evaluate the result on a task pool, print a
table (score, fine-tuned, pretrained, normalised per task) and write report.json and the
resolved config.yaml into the run directory.

groups (GROUP=OPTION picks configs/GROUP/OPTION.yaml, or your own YAML file by path):
  method=M          fusion method: {methods}
  modelpool=P       model pool: {modelpools}
  taskpool=T        task pool (default: the one the model pool names): {taskpools}

overrides:
  GROUP.KEY=VALUE   one value inside a group, e.g. method.k=0.2 taskpool.limit=200

top-level keys (defaults shown; save_model writes the formats `fusionbench merge --help` describes):
{keys}

`fusionbench list methods` shows every method with its reference.
"""


def usage() -> str:
    """HELP with the valid options of each group and the keys of ``RunSchema`` filled in."""
    from fusionbench.cli.keys import keys_help
    from fusionbench.runner import RunSchema

    return with_group_options(HELP, keys=keys_help(RunSchema))
