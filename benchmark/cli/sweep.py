"""`fusionbench sweep`."""

from __future__ import annotations

from pathlib import Path

from fusionbench.cli.words import with_group_options


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.sweep.aggregate import plot_summary, render_summary
    from fusionbench.sweep.protocol import SweepSchema, sweep

    summary = sweep(compose(words, SweepSchema))
    render_summary(summary)
    out = Path(str(summary.output_dir))
    plots = plot_summary(summary, out)
    print(f"summary written to {out / 'summary.json'}" + (f"; plots: {', '.join(p.name for p in plots)}" if plots else ""))
    return 0


HELP = """\
usage: fusionbench sweep method=M modelpool=P [taskpool=T] [subsets=all] [grid.KEY=[...]] [executor=local] [KEY=VALUE ...]

The benchmark proper (L-LoRA paper, Section 5.1): for every task subset and every point
of the method's hyper-parameter grid, merge and evaluate on the validation split; pick
the best point per subset by mean validation score; report it on the test split.
Scores are normalised by each task's individual fine-tuned model. Every evaluation is
stored in an SQLite store keyed by content, so re-running resumes where it stopped.

groups (GROUP=OPTION picks configs/GROUP/OPTION.yaml, or your own YAML file by path):
  method=M          fusion method: {methods}
  modelpool=P       model pool: {modelpools}
  taskpool=T        task pool (default: the one the model pool names): {taskpools}

keys (defaults shown; subsets=all is every subset of >= 2 tasks):
{keys}

Writes summary.json (Table 1: mean ± std of normalised scores over subsets; by number
of tasks; per task for the full set; pairs), by_size.png and pairs.png.
"""


def usage() -> str:
    """HELP with the valid options of each group and the keys of ``SweepSchema`` filled in."""
    from fusionbench.cli.keys import keys_help
    from fusionbench.sweep.protocol import SweepSchema

    return with_group_options(HELP, keys=keys_help(SweepSchema))
