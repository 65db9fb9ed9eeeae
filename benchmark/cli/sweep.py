"""`fusionbench sweep`."""

from __future__ import annotations

from pathlib import Path


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.sweep.aggregate import plot_summary, render_summary
    from fusionbench.sweep.protocol import SweepSchema, sweep

    summary = sweep(compose(words, SweepSchema))
    render_summary(summary)
    out = Path(summary["output_dir"])
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

keys:
  subsets=all        all (every subset of >= 2 tasks), pairs, full, or size=K
  grid.KEY=[A,B]     replace the method's default grid for one parameter
  executor=local     local or ray
  workers=1          local worker processes (each holds one resident model)
  threads=0          torch threads per worker (0: torch's default)
  ray.address=auto   Ray cluster to join (default: start a local one); ray.actors=2,
                     ray.cpus_per_actor=1, ray.gpus_per_actor=0
  store=PATH         result store (default $FUSIONBENCH_HOME/results.sqlite)
  output_dir=PATH    where summary.json, config.yaml and plots go
  selection_split=validation, report_split=test, seed=0, device=auto, plugins=[...]

Writes summary.json (Table 1: mean ± std of normalised scores over subsets; by number
of tasks; per task for the full set; pairs), by_size.png and pairs.png.
"""
