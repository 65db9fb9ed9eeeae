"""The ``fusionbench`` command: ``fusionbench VERB key=value ...``.

Every error the user can fix is a FusionBenchError, printed as one line (``error: ...``)
with exit status 2; ``FUSIONBENCH_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from rich.console import Console
from rich.table import Table

from fusionbench.api.errors import ConfigError, FusionBenchError, choices_text, did_you_mean
from fusionbench.utils.quiet import quiet_libraries


@dataclass(frozen=True)
class Verb:
    summary: str
    usage: str
    handler: Callable[[list[str]], int]


def _run(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.engine.report import render
    from fusionbench.run import RunSchema, run

    cfg = compose(words, RunSchema)
    report = run(cfg)
    render(report)
    print(f"report written to {os.path.join(report['output_dir'], 'report.json')}")
    return 0


def _list(words: list[str]) -> int:
    from fusionbench.api.plugins import REGISTRIES
    from fusionbench.config.compose import packaged_options

    kinds = {"methods": "method", "modelpools": "modelpool", "taskpools": "taskpool"}
    if len(words) != 1 or words[0] not in kinds:
        given = words[0] if words else ""
        raise ConfigError(f"list what?{did_you_mean(given, kinds)} Choose one of: {choices_text(kinds)}")
    kind = words[0]
    registry = REGISTRIES[kind]
    table = Table(title=f"registered {kind}")
    for column in ("name", "description", "reference", "source"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        cls = registry.get(name)
        table.add_row(name, cls.description, cls.reference, registry.source(name))
    console = Console()
    console.print(table)
    if kind != "methods":
        console.print(f"configs shipped ({kind[:-1]}=OPTION): {', '.join(packaged_options(kinds[kind]))}")
    return 0


def _sweep(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.sweep.aggregate import plot_summary, render_summary
    from fusionbench.sweep.protocol import SweepSchema, sweep

    summary = sweep(compose(words, SweepSchema))
    render_summary(summary)
    out = Path(summary["output_dir"])
    plots = plot_summary(summary, out)
    print(f"summary written to {out / 'summary.json'}" + (f"; plots: {', '.join(p.name for p in plots)}" if plots else ""))
    return 0


@dataclass
class ResultsSchema:
    """Top-level keys of ``fusionbench results``."""

    store: Optional[str] = None
    method: Optional[str] = None
    pool: Optional[str] = None
    taskpool: Optional[str] = None
    task: Optional[str] = None
    split: Optional[str] = None
    format: str = "table"  # table | csv | json
    out: Optional[str] = None
    summaries: list[str] = field(default_factory=list)  # for `results compare`


def _results(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.engine.store import ResultStore, export
    from fusionbench.sweep.aggregate import compare_table
    from fusionbench.sweep.protocol import default_store, load_summary

    compare = bool(words) and words[0] == "compare"
    cfg = compose(words[1:] if compare else words, ResultsSchema, groups=())
    if compare:
        if not cfg.summaries:
            raise ConfigError("results compare needs summaries=[DIR,...]: the output directories (or summary.json files) of sweeps")
        Console().print(compare_table([load_summary(p) for p in cfg.summaries]))
        return 0
    if cfg.format not in ("table", "csv", "json"):
        raise ConfigError(f"format={cfg.format!r} is not valid; choose table, csv or json")
    filters = {k: cfg[k] for k in ("method", "pool", "taskpool", "task", "split") if cfg[k] is not None}
    path = Path(cfg.store).expanduser() if cfg.store else default_store()
    if not path.exists():
        raise ConfigError(f"store {str(path)!r} does not exist; run a sweep first or give store=PATH")
    with ResultStore(path) as store:
        rows = list(store.rows(**filters))
    if cfg.format == "table":
        table = Table(title=f"{len(rows)} stored results in {path}")
        for column in ("method", "params", "pool", "subset", "task", "split", "value", "stderr", "n"):
            table.add_column(column, overflow="fold")
        for r in rows:
            table.add_row(r["method"], json.dumps(r["params"]), r["pool"], ",".join(r["subset"]), r["task"], r["split"], f"{r['value']:.4f}", f"{r['stderr']:.4f}", str(r["n"]))
        Console().print(table)
        return 0
    text = export(rows, cfg.format)
    if cfg.out:
        Path(cfg.out).write_text(text)
        print(f"{len(rows)} rows written to {cfg.out}")
    else:
        sys.stdout.write(text)
    return 0


def _subcommand(words: list[str], verb: str, actions: tuple[str, ...]) -> tuple[str, list[str]]:
    """The action word after ``verb`` and the words that follow it."""
    if not words or words[0] not in actions:
        given = words[0] if words else ""
        raise ConfigError(f"{verb} what?{did_you_mean(given, actions)} Choose one of: {choices_text(actions)}")
    return words[0], words[1:]


def _leaderboard(words: list[str]) -> int:
    from fusionbench import leaderboard
    from fusionbench.config.compose import compose

    action, rest = _subcommand(words, "leaderboard", ("build", "publish", "validate"))
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


def _analyze(words: list[str]) -> int:
    from fusionbench.analysis import analyses as analysis
    from fusionbench.config.compose import compose

    action, rest = _subcommand(words, "analyze", ("cosine", "disentanglement", "scaling", "interference"))
    if action == "cosine":
        result = analysis.analyze_cosine(compose(rest, analysis.CosineSchema, groups=("modelpool",)))
        table = Table(title=f"task-vector cosine similarity: {result['modelpool']} ({result['mode']})")
        table.add_column("task")
        for task in result["tasks"]:
            table.add_column(task, justify="right")
        for task, row in zip(result["tasks"], result["cosine"]):
            table.add_row(task, *(f"{v:.3f}" for v in row))
        Console().print(table)
        paper = result["paper_mean_offdiag"]
        beside = f" (paper, {result['family']} {result['mode']}: {paper:.3f})" if paper is not None else ""
        print(f"mean off-diagonal cosine similarity: {result['mean_offdiag']:.3f}{beside}")
        print(f"written to {result['output_dir']}: cosine.csv, cosine.png, cosine.json")
        return 0
    if action == "scaling":
        result = analysis.analyze_scaling(compose(rest, analysis.ScalingSchema, groups=("modelpool", "taskpool")))
        table = Table(title=f"mean score over the {len(result['tasks'])} tasks of {result['modelpool']} ({result['mode']}), {result['split']} split")
        for column in ("λ", "each task vector alone", "sum of all task vectors"):
            table.add_column(column, justify="right")
        for lam, alone, summed in zip(result["lambdas"], result["mean_alone"], result["mean_sum"]):
            table.add_row(f"{lam:g}", f"{alone:.4f}", f"{summed:.4f}")
        Console().print(table)
        print(f"written to {result['output_dir']}: scaling.json, scaling.csv (every task), scaling.png")
        return 0
    if action == "interference":
        result = analysis.analyze_interference(compose(rest, analysis.InterferenceSchema, groups=("modelpool", "taskpool")))
        table = Table(title=f"task vectors at λ={result['scaling_factor']:g} on {result['modelpool']} ({result['mode']}), {result['split']} split")
        columns = ("base", "own", "cross", "additive", "sum")
        headings = ("base", "own gain", "change by the others", "additive prediction", "sum of all (measured)")
        for column in ("task", *headings):
            table.add_column(column, justify="right")
        signed = ("own", "cross")  # changes, shown with their sign
        for task in result["tasks"]:
            table.add_row(task, *(f"{result[c][task]:{'+' if c in signed else ''}.4f}" for c in columns))
        table.add_row("mean", *(f"{result['mean_' + c]:{'+' if c in signed else ''}.4f}" for c in columns))
        Console().print(table)
        print(f"written to {result['output_dir']}: interference.json, interference.csv (every change), interference.png")
        return 0
    result = analysis.analyze_disentanglement(compose(rest, analysis.DisentanglementSchema, groups=("modelpool", "taskpool")))
    a, b = result["tasks"]
    print(f"weight disentanglement error of {a} and {b} on {result['modelpool']} ({result['mode']}), {len(result['grid'])}x{len(result['grid'])} grid: mean {result['mean_xi']:.4f}, max {max(map(max, result['xi'])):.4f}")
    print(f"written to {result['output_dir']}: disentanglement.json, disentanglement.png")
    return 0


def _profile(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.profiling.measure import ProfileSchema, profile, render

    data = profile(compose(words, ProfileSchema, groups=()))
    render(data)
    print(f"profile written to {data['output']}")
    return 0


def _finetune(words: list[str]) -> int:
    from fusionbench.finetune.loop import finetune_command

    result = finetune_command(words)
    if result.complete:
        score = f"; {result.eval['metric']} on {result.eval['split']}: {result.eval['value']:.4f}" if result.eval else ""
        print(f"fine-tuned {result.step} steps in {result.seconds:.1f}s (final loss {result.losses[-1]:.4f}){score}; written to {result.output_dir}")
    else:
        print(f"stopped after {result.step} steps; the run resumes from {result.output_dir} when rerun with the same settings")
    return 0


@dataclass
class MiniSchema:
    """Keys of ``fusionbench mini``."""

    seed: Optional[int] = None  # build: default 0; status/clean: every seed
    reduced: Optional[bool] = None  # a tiny world (seconds to build), for tests; clean: both when unset


def _mini(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.mini.build import KINDS, clean, status
    from fusionbench.mini.pools import build_pools, pools_ready

    action, rest = _subcommand(words, "mini", ("build", "status", "clean"))
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
        for kind in selected:
            for path in clean(kind, seed=cfg.seed, reduced=cfg.reduced):
                print(f"removed {path}")
    return 0


RUN_HELP = """\
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

top-level keys:
  output_dir=PATH   run directory (default outputs/<timestamp>-<method>-<pool>)
  split=test        split the merged model is reported on (train, validation, test)
  seed=0            global torch seed
  device=auto       auto, cpu, cuda or cuda:N
  plugins=[A,B]     plugin .py files or modules defining methods / pools, loaded first

`fusionbench list methods` shows every method with its reference.
"""

LIST_HELP = """\
usage: fusionbench list methods|modelpools|taskpools

Print every registered method, model pool or task pool with its one-line description,
paper reference and where it comes from (built-in, entry point or plugin).
"""

SWEEP_HELP = """\
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

RESULTS_HELP = """\
usage: fusionbench results [store=PATH] [method=M] [pool=P] [taskpool=T] [task=X] [split=S] [format=table|csv|json] [out=FILE]
       fusionbench results compare summaries=[DIR,...]

Query and export the result store, or put several sweeps side by side in the Table-1
layout (one row per method, one column per model pool).
"""

LEADERBOARD_HELP = """\
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

View it: python -m http.server -d leaderboard, then open http://localhost:8000/
"""

ANALYZE_HELP = """\
usage: fusionbench analyze cosine modelpool=P [output_dir=PATH] [device=auto]
       fusionbench analyze disentanglement modelpool=P tasks=A,B [taskpool=T] [grid=[-1,-0.5,0,0.5,1]] [split=test] [taskpool.limit=N]
       fusionbench analyze scaling modelpool=P [taskpool=T] [lambdas=[0,0.25,0.5,0.75,1]] [split=test] [taskpool.limit=N]
       fusionbench analyze interference modelpool=P [taskpool=T] [scaling_factor=0.3] [split=test] [taskpool.limit=N]

cosine            cosine similarity of every pair of task vectors (L-LoRA paper, Figs. 2/8):
                  cosine.csv, cosine.png (heatmap), cosine.json, with the mean off-diagonal
                  value beside the paper's when the pool's family and mode match.
disentanglement   weight disentanglement error xi(l1, l2) of tasks A and B over grid x grid
                  (paper, Eq. 3 and Fig. 6): the fraction of each task's examples on which
                  theta_0 + l1 tau_A + l2 tau_B predicts differently from theta_0 + l_i tau_i,
                  summed over both tasks. Default grid -1.0, -0.8, ..., 1.0.
                  Writes disentanglement.json and disentanglement.png.
scaling           the score on each task t of theta_0 + lambda tau_t (its task vector alone) and
                  of theta_0 + lambda sum_s tau_s (all task vectors, task arithmetic) for each
                  lambda (default 0, 0.1, ..., 1): where a task's gain appears along its task
                  vector and where the sum starts to interfere. Writes scaling.json,
                  scaling.csv and scaling.png (one panel per curve).
interference      at one lambda (default 0.3): how each task vector alone changes every task's
                  score (its own gain, and its cost to the others), the additive prediction
                  base + own gain + changes by the others, and the measured score of the sum
                  (task arithmetic). Writes interference.json, interference.csv and
                  interference.png (heatmap of the changes).

All save config.yaml beside; output_dir defaults to outputs/analysis-<timestamp>-<kind>-<pool>.
"""

PROFILE_HELP = """\
usage: fusionbench profile [model=clip-vit-b16] [paradigms=full,linearized,lora,llora] [batch_size=N] [steps=N] [KEY=VALUE ...]

The L-LoRA paper's cost tables, measured on a randomly initialised architecture preset
(nothing is downloaded). Table 3: trainable and total parameters, trainable %, checkpoint
size, peak training memory. Table 4: training it/s (one optimizer step of the paper's
recipe), inference it/s (LoRA / L-LoRA also with the adapters folded into dense
weights), peak memories. Each figure is shown beside the paper's and as a ratio to full
fine-tuning; the whole profile is written as JSON. Every timing and memory figure comes
from a fresh process: peak memory is torch.cuda.max_memory_allocated on a GPU, the
process's peak RSS on a CPU.

keys:
  model=clip-vit-b16   clip-vit-b32, clip-vit-b16, clip-vit-l14, flan-t5-base
                       (configs/profile/<model>.yaml), or your own YAML file by path
  paradigms=...        comma-separated: full, linearized, lora, llora
  batch_size=N         default: the paper's (64; L/14 16; Flan-T5 16) on a GPU, 2 on a CPU
  steps=N, warmup=N    timed and untimed steps per measurement (GPU 20 and 3, CPU 3 and 1)
  lora_r=16            LoRA rank; lora_targets=q_proj,v_proj (CLIP) or q,v (Flan-T5)
  device=auto          auto, cpu, cuda or cuda:N
  threads=N            torch threads of each measuring process (0: torch's default;
                       default 1 on a CPU, where a contended multi-threaded step is noisy)
  output=PATH          the JSON file (default outputs/<timestamp>-profile-<model>/profile.json)
  seed=0
"""

FINETUNE_HELP = """\
usage: fusionbench finetune model=M task=T mode=full|lora|llora|linearized [recipe=R] [taskpool=P] [KEY=VALUE ...]

Fine-tune a CLIP or T5 base on one task of a task pool and write the checkpoint in the
format the clip / t5 model pools load (L-LoRA paper, Tang et al., ICLR 2024): full (a
save_pretrained directory), lora (peft adapter + adapter_init.safetensors), llora (L-LoRA
adapter with its init phi_0), linearized (theta and theta_0 of a jvp-linearised model).
finetune.json (recipe, seed, steps, code version) and log.csv (loss curve) go beside it.

keys:
  model=M              hub id, local save_pretrained directory, or clip-vit-b32, clip-vit-b16,
                       clip-vit-l14, flan-t5-base, flan-t5-large
  task=T               a task of the task pool; its train split is the training data
  mode=...             full, lora, llora (linearised LoRA), linearized (full-model jvp)
  recipe=clip_paper    clip_paper or t5_paper (paper Table 2; default by model), or a YAML file
  taskpool=P           default clip_ta8 (CLIP) / glue8 (T5); taskpool.KEY=VALUE overrides
  output_dir=PATH      default $FUSIONBENCH_HOME/checkpoints/<model>_<task><_lora-16|_l-lora-16|...>
  seed=0, limit=N      data order and dropout; train on a seeded sample of N examples
  micro_batch_size=N   examples per forward pass (gradients are accumulated to batch_size)
  save_every=500       steps between checkpoints of the partial run in <output_dir>.partial
  resume=true          continue a partial run from its last checkpoint (false: start over)
  max_steps_this_run=N stop after N steps (resumably); eval_split=test scores the result
  device=auto          auto, cpu, cuda or cuda:N; threads=0 torch CPU threads; progress=true

recipe keys (override the recipe): steps, lr, batch_size, optimizer (adam|adamw),
  weight_decay, schedule (cosine|constant), warmup_ratio, init_seed, lora.r, lora.alpha,
  lora.dropout, lora.targets=[q_proj,v_proj]
"""

MINI_HELP = """\
usage: fusionbench mini build|status|clean [vision|text|all] [seed=0] [reduced=false]

The embedded mini world: seven procedurally generated image tasks and seven GLUE-like
text tasks, tiny CLIP and T5 bases pretrained on them, and their full / LoRA / L-LoRA
fine-tuned pools, built on this CPU under $FUSIONBENCH_HOME/mini (default
~/.cache/fusionbench/mini). `build` builds (or finishes) the worlds; the mini_* model
pools also build them on first use (vision about 4 minutes, text about 4.5, on 2 CPU
cores). `status` lists built worlds; `clean` removes them.
"""

VERBS: dict[str, Verb] = {
    "run": Verb("merge a model pool with a method and evaluate it", RUN_HELP, _run),
    "sweep": Verb("every task subset x hyper-parameter grid, normalised scores, resumable", SWEEP_HELP, _sweep),
    "results": Verb("query / export the result store; compare sweeps in the Table-1 layout", RESULTS_HELP, _results),
    "list": Verb("list registered methods, model pools or task pools", LIST_HELP, _list),
    "leaderboard": Verb("build, validate and publish the leaderboard (leaderboard/)", LEADERBOARD_HELP, _leaderboard),
    "analyze": Verb("task-vector cosine matrix; weight disentanglement error; scores along task vectors; interference", ANALYZE_HELP, _analyze),
    "profile": Verb("cost tables: parameters, checkpoint size, it/s, peak memory (paper tables 3-4)", PROFILE_HELP, _profile),
    "mini": Verb("build / inspect / remove the embedded CPU-scale benchmark world", MINI_HELP, _mini),
    "finetune": Verb("fine-tune a CLIP / T5 base on one task: full, lora, llora or linearized", FINETUNE_HELP, _finetune),
}


def _verb_help(name: str) -> str:
    if name != "run":
        return VERBS[name].usage
    from fusionbench.config.compose import group_options

    return RUN_HELP.format(**{f"{g}s": ", ".join(group_options(g)) for g in ("method", "modelpool", "taskpool")})


def main_help() -> str:
    lines = [
        "usage: fusionbench VERB [key=value ...]",
        "",
        "FusionBench: benchmark multi-task model fusion (model merging) methods.",
        "",
        "verbs:",
        *(f"  {name:<12} {verb.summary}" for name, verb in VERBS.items()),
        "",
        "`fusionbench VERB --help` describes a verb's groups and options.",
        "Example: fusionbench run method=task_arithmetic modelpool=dummy method.scaling_factor=0.3",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(main_help())
        return 0
    verb, words = argv[0], argv[1:]
    quiet_libraries()
    try:
        if verb not in VERBS:
            raise ConfigError(f"unknown verb {verb!r}.{did_you_mean(verb, VERBS)} Valid verbs: {choices_text(VERBS)}")
        if any(w in ("-h", "--help") for w in words):
            print(_verb_help(verb))
            return 0
        return VERBS[verb].handler(words)
    except FusionBenchError as exc:
        if os.environ.get("FUSIONBENCH_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
