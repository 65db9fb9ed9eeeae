"""`fusionbench analyze`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fusionbench.cli.words import subcommand


def handle(words: list[str]) -> int:
    from fusionbench.analysis import analyses as analysis
    from fusionbench.config.compose import compose

    action, rest = subcommand(words, "analyze", ("cosine", "disentanglement", "scaling", "interference"))
    if action == "cosine":
        result = analysis.analyze_cosine(compose(rest, analysis.CosineSchema, groups=("modelpool",)))
        table = Table(title=f"task-vector cosine similarity: {result.modelpool} ({result.mode})")
        table.add_column("task")
        for task in result.tasks:
            table.add_column(task, justify="right")
        for task, row in zip(result.tasks, result.cosine):
            table.add_row(task, *(f"{v:.3f}" for v in row))
        Console().print(table)
        paper = result.paper_mean_offdiag
        beside = f" (paper, {result.family} {result.mode}: {paper:.3f})" if paper is not None else ""
        print(f"mean off-diagonal cosine similarity: {result.mean_offdiag:.3f}{beside}")
        print(f"written to {result.output_dir}: cosine.csv, cosine.png, cosine.json")
        return 0
    if action == "scaling":
        scaling = analysis.analyze_scaling(compose(rest, analysis.ScalingSchema, groups=("modelpool", "taskpool")))
        table = Table(title=f"mean score over the {len(scaling.tasks)} tasks of {scaling.modelpool} ({scaling.mode}), {scaling.split} split")
        for column in ("λ", "each task vector alone", "sum of all task vectors"):
            table.add_column(column, justify="right")
        for lam, alone, summed in zip(scaling.lambdas, scaling.mean_alone, scaling.mean_sum):
            table.add_row(f"{lam:g}", f"{alone:.4f}", f"{summed:.4f}")
        Console().print(table)
        print(f"written to {scaling.output_dir}: scaling.json, scaling.csv (every task), scaling.png")
        return 0
    if action == "interference":
        found = analysis.analyze_interference(compose(rest, analysis.InterferenceSchema, groups=("modelpool", "taskpool")))
        table = Table(title=f"task vectors at λ={found.scaling_factor:g} on {found.modelpool} ({found.mode}), {found.split} split")
        columns = ("base", "own", "cross", "additive", "sum")
        headings = ("base", "own gain", "change by the others", "additive prediction", "sum of all (measured)")
        for column in ("task", *headings):
            table.add_column(column, justify="right")
        signed = ("own", "cross")  # changes, shown with their sign
        for task in found.tasks:
            table.add_row(task, *(f"{getattr(found, c)[task]:{'+' if c in signed else ''}.4f}" for c in columns))
        table.add_row("mean", *(f"{getattr(found, 'mean_' + c):{'+' if c in signed else ''}.4f}" for c in columns))
        Console().print(table)
        print(f"written to {found.output_dir}: interference.json, interference.csv (every change), interference.png")
        return 0
    error = analysis.analyze_disentanglement(compose(rest, analysis.DisentanglementSchema, groups=("modelpool", "taskpool")))
    a, b = error.tasks
    size = f"{len(error.grid)}x{len(error.grid)}"
    print(f"weight disentanglement error of {a} and {b} on {error.modelpool} ({error.mode}), {size} grid: mean {error.mean_xi:.4f}, max {max(map(max, error.xi)):.4f}")
    print(f"written to {error.output_dir}: disentanglement.json, disentanglement.png")
    return 0


HELP = """\
usage: fusionbench analyze cosine modelpool=P [KEY=VALUE ...]
       fusionbench analyze disentanglement modelpool=P tasks=A,B [taskpool=T] [taskpool.limit=N] [KEY=VALUE ...]
       fusionbench analyze scaling modelpool=P [taskpool=T] [taskpool.limit=N] [KEY=VALUE ...]
       fusionbench analyze interference modelpool=P [taskpool=T] [taskpool.limit=N] [KEY=VALUE ...]

cosine            cosine similarity of every pair of task vectors (L-LoRA paper, Figs. 2/8):
                  cosine.csv, cosine.png (heatmap), cosine.json, with the mean off-diagonal
                  value beside the paper's when the pool's family and mode match.
disentanglement   weight disentanglement error xi(l1, l2) of tasks A and B over grid x grid
                  (paper, Eq. 3 and Fig. 6): the fraction of each task's examples on which
                  theta_0 + l1 tau_A + l2 tau_B predicts differently from theta_0 + l_i tau_i,
                  summed over both tasks, for l1 and l2 along the grid.
                  Writes disentanglement.json and disentanglement.png.
scaling           the score on each task t of theta_0 + lambda tau_t (its task vector alone) and
                  of theta_0 + lambda sum_s tau_s (all task vectors, task arithmetic) for each
                  of the lambdas: where a task's gain appears along its task
                  vector and where the sum starts to interfere. Writes scaling.json,
                  scaling.csv and scaling.png (one panel per curve).
interference      at one lambda (scaling_factor): how each task vector alone changes every task's
                  score (its own gain, and its cost to the others), the additive prediction
                  base + own gain + changes by the others, and the measured score of the sum
                  (task arithmetic). Writes interference.json, interference.csv and
                  interference.png (heatmap of the changes).

All save config.yaml beside. modelpool=P (and taskpool=T, default: the one the pool names) pick
configs/GROUP/OPTION.yaml or your own YAML file; GROUP.KEY=VALUE overrides one value in it.

{keys}
"""


def usage() -> str:
    """HELP with the keys of each analysis's schema filled in."""
    from fusionbench.analysis import analyses as analysis
    from fusionbench.cli.keys import keys_help

    schemas = {"cosine": analysis.CosineSchema, "disentanglement": analysis.DisentanglementSchema,
               "scaling": analysis.ScalingSchema, "interference": analysis.InterferenceSchema}
    keys = "\n\n".join(f"keys of {action} (defaults shown):\n{keys_help(schema)}" for action, schema in schemas.items())
    return HELP.format(keys=keys)
