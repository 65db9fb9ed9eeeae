"""The error contract, input by input: every bad input is one ``error:`` line, exit status 2,
no traceback, and nothing written (reliability issues: each case is named after its class)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Callable

import pytest
import torch
from contract_helpers import BEHAVIOURS, MERGE, RUN, SWEEP, plugin, tree

from fusionbench.cli.main import main

Case = Callable[[Path], list[str]]
CASES: dict[str, Case] = {
    # words and lists
    "unknown verb": lambda t: ["rnu"],
    "word without =": lambda t: [*RUN, "seed"],
    "word starting with =": lambda t: [*RUN, "=3"],
    "unknown top-level key": lambda t: [*RUN, "sed=1"],
    "missing method": lambda t: ["run", "modelpool=dummy"],
    "unknown method": lambda t: ["run", "method=tiess", "modelpool=dummy"],
    "unknown pool": lambda t: ["run", "method=ties", "modelpool=dumy"],
    "empty method": lambda t: ["run", "method=", "modelpool=dummy"],
    "unknown method key": lambda t: [*RUN, "method.kk=0.2"],
    "ill-typed method value": lambda t: [*RUN, "method.k=abc"],
    "broken list (plugins)": lambda t: [*RUN, "plugins=[a.py"],
    "broken list (value)": lambda t: ["run", "method=task_arithmetic", "modelpool=dummy", "method.scaling_factor=[0.1,"],
    "control character in a value": lambda t: [*RUN, "method.k=0.2\x07"],
    "unresolvable interpolation": lambda t: [*RUN, "method.k=${oc.env:FUSIONBENCH_NO_SUCH_VARIABLE}"],
    "very long value": lambda t: [*RUN, "method.k=" + "9" * 60000],
    # numbers
    "NaN parameter": lambda t: [*RUN, "method.k=nan"],
    "infinite parameter": lambda t: [*RUN, "method.k=inf"],
    "parameter out of range": lambda t: [*RUN, "method.k=2"],
    "seed beyond 64 bits": lambda t: [*RUN, "seed=999999999999999999999"],
    "negative seed": lambda t: [*RUN, "seed=-1"],
    "zero limit": lambda t: [*RUN, "taskpool.limit=0"],
    "zero examples": lambda t: [*RUN, "taskpool.examples=0"],
    "zero batch size": lambda t: [*RUN, "taskpool.batch_size=0"],
    "negative batch size": lambda t: [*RUN, "taskpool.batch_size=-1"],
    "duplicate pool tasks": lambda t: [*RUN, "modelpool.tasks=[alpha,alpha]"],
    "duplicate task pool tasks": lambda t: [*RUN, "taskpool.tasks=[alpha,alpha]"],
    "unknown split": lambda t: [*RUN, "split=bogus"],
    "unknown device": lambda t: [*RUN, "device=tpu"],
    "sweep on a foreign SQLite file": lambda t: [*SWEEP, f"store={t / 'foreign.sqlite'}"],
    # files
    "output under a file": lambda t: [*RUN, f"output_dir={t / 'a_file'}/run"],
    "missing pool file": lambda t: ["run", "method=ties", f"modelpool={t / 'nope.yaml'}"],
    "pool file that is a folder": lambda t: ["run", "method=ties", f"modelpool={t}/"],
    "pool file that is not YAML": lambda t: ["run", "method=ties", f"modelpool={t / 'garbage.yaml'}"],
    "pool file that is a list": lambda t: ["run", "method=ties", f"modelpool={t / 'list.yaml'}"],
    "missing plugin": lambda t: [*RUN, f"plugins=[{t / 'nope.py'}]"],
    "plugin that is not Python": lambda t: [*RUN, f"plugins=[{t / 'garbage.yaml'}]"],
    "plugin with a syntax error": lambda t: [*RUN, f"plugins=[{t / 'syntax.py'}]"],
    # plugins that misbehave
    **{f"plugin merge {b}": (lambda b: lambda t: ["run", "method=broken", "modelpool=dummy", f"plugins=[{plugin(t, b)}]"])(b) for b in BEHAVIOURS if b != "is terminated"},
    "sweep with a plugin that raises": lambda t: ["sweep", "method=broken", "modelpool=dummy", "subsets=pairs", f"plugins=[{plugin(t, 'raises')}]", f"store={t / 'new.sqlite'}"],
    # data-based methods (the task pool's data contract)
    "adamerging unknown granularity": lambda t: ["run", "method=adamerging", "modelpool=dummy", "method.granularity=block"],
    "fisher split with too few examples": lambda t: ["run", "method=fisher", "modelpool=dummy", "taskpool.examples=100"],
    "fisher on test labels": lambda t: ["run", "method=fisher", "modelpool=dummy", "method.split=test"],
    "regmean more examples than the split has": lambda t: ["run", "method=regmean", "modelpool=dummy", "taskpool.limit=16", "method.examples_per_task=32"],
    # sweep
    "sweep subset size too large": lambda t: [*SWEEP, "subsets=size=9"],
    "sweep unknown subsets": lambda t: [*SWEEP, "subsets=trios"],
    "sweep empty grid": lambda t: [*SWEEP, "grid.scaling_factor=[]"],
    "sweep non-numeric grid": lambda t: [*SWEEP, "grid.scaling_factor=[a,b]"],
    "sweep NaN in grid": lambda t: [*SWEEP, "grid.scaling_factor=[nan]"],
    "sweep unknown grid key": lambda t: [*SWEEP, "grid.scale=[0.1]"],
    "sweep zero workers": lambda t: [*SWEEP, "workers=0"],
    "sweep negative threads": lambda t: [*SWEEP, "threads=-1"],
    "sweep unknown executor": lambda t: [*SWEEP, "executor=slurm"],
    "sweep zero ray actors": lambda t: [*SWEEP, "executor=ray", "ray.actors=0"],
    "sweep negative ray cpus": lambda t: [*SWEEP, "executor=ray", "ray.cpus_per_actor=-1"],
    "sweep store under a file": lambda t: [*SWEEP, f"store={t / 'a_file'}/s.sqlite"],
    "sweep store that is not SQLite": lambda t: [*SWEEP, f"store={t / 'garbage.yaml'}"],
    # results
    "results missing store": lambda t: ["results", f"store={t / 'nope.sqlite'}"],
    "results unknown format": lambda t: ["results", "format=xml"],
    "results unknown split": lambda t: ["results", "split=bogus"],
    "results compare without summaries": lambda t: ["results", "compare"],
    "results compare of garbage": lambda t: ["results", "compare", f"summaries=[{t / 'garbage.yaml'}]"],
    "results compare of a missing summary": lambda t: ["results", "compare", f"summaries=[{t / 'nope'}]"],
    # list, leaderboard, analyze, profile, finetune, mini
    "list what": lambda t: ["list", "method"],
    "list two words": lambda t: ["list", "methods", "extra"],
    "leaderboard unknown action": lambda t: ["leaderboard", "bogus"],
    "leaderboard validate missing file": lambda t: ["leaderboard", "validate", str(t / "nope.json")],
    "leaderboard validate garbage": lambda t: ["leaderboard", "validate", str(t / "garbage.yaml")],
    "analyze unknown analysis": lambda t: ["analyze", "cosines"],
    "analyze without a pool": lambda t: ["analyze", "cosine"],
    "analyze scaling NaN lambda": lambda t: ["analyze", "scaling", "modelpool=dummy", "lambdas=[nan]"],
    "analyze interference bad split": lambda t: ["analyze", "interference", "modelpool=dummy", "split=bogus"],
    "profile unknown model": lambda t: ["profile", "model=clip-vit-b99"],
    "profile unknown paradigm": lambda t: ["profile", "model=clip-vit-b16", "paradigms=fulll"],
    "finetune unknown mode": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=fulll"],
    "finetune linearized mode": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=linearized"],
    "finetune missing model": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full"],
    "mini unknown action": lambda t: ["mini", "bulid"],
    "mini unknown world": lambda t: ["mini", "build", "audio"],
    # more words and values
    "empty value": lambda t: [*RUN, "method.k="],
    "ill-typed pool value": lambda t: [*RUN, "modelpool.seed=abc"],
    "ill-typed task pool value": lambda t: [*RUN, "taskpool.seed=1.5"],
    "output under an unknown user's home": lambda t: [*RUN, "output_dir=~fusionbench_no_such_user/run"],
    "plugin listed twice": lambda t: [*RUN, f"plugins=[{plugin(t, 'none')},{plugin(t, 'none')}]"],
    "plugins not a list": lambda t: [*RUN, "plugins={a: 1}"],
    "cuda without a GPU": lambda t: [*RUN, "device=cuda:abc"],
    "empty split": lambda t: [*RUN, "split="],
    "fractional seed": lambda t: [*RUN, "seed=1.5"],
    "seed not a number": lambda t: [*RUN, "seed=abc"],
    "seed a list": lambda t: [*RUN, "seed=[1]"],
    "unknown pool task": lambda t: [*RUN, "modelpool.tasks=[zeta]"],
    "unknown task pool task": lambda t: [*RUN, "taskpool.tasks=[zeta]"],
    "task pool without the pool's tasks": lambda t: [*RUN, f"taskpool={t / 'other_tasks.yaml'}"],
    "task pool of a world not built yet, without the pool's tasks": lambda t: [*RUN, "taskpool=mini_text7"],
    "pool file with the .yml ending missing": lambda t: ["run", "method=ties", "modelpool=configs/nope.yml"],
    "method file that is not YAML": lambda t: ["run", f"method={t / 'garbage.yaml'}", "modelpool=dummy"],
    "method file that is a list": lambda t: ["run", f"method={t / 'list.yaml'}", "modelpool=dummy"],
    "pool file without a type": lambda t: ["run", "method=ties", f"modelpool={t / 'untyped.yaml'}"],
    "pool file of an unknown type": lambda t: ["run", "method=ties", f"modelpool={t / 'mistyped.yaml'}"],
    "pool file with an unknown key": lambda t: ["run", "method=ties", f"modelpool={t / 'extra_key.yaml'}"],
    "pool file with an unresolvable interpolation": lambda t: ["run", "method=ties", f"modelpool={t / 'interpolated.yaml'}"],
    "zero batch size on a real task pool": lambda t: ["run", "method=ties", "modelpool=dummy", "taskpool=clip_vision7", "taskpool.batch_size=0"],
    "pool file with models as a list": lambda t: ["run", "method=ties", f"modelpool={t / 'list_models.yaml'}", "taskpool=dummy"],
    "output name too long": lambda t: [*RUN, f"output_dir={t / ('x' * 300)}"],
    "sweep output name too long": lambda t: [*SWEEP, f"output_dir={t / ('x' * 300)}"],
    "profile LoRA targets that match no layer": lambda t: ["profile", "paradigms=lora", "lora.targets=nonexistent", f"output={t / 'p.json'}"],
    "negative limit": lambda t: [*RUN, "taskpool.limit=-5"],
    "limit not a number": lambda t: [*RUN, "taskpool.limit=abc"],
    "NaN scaling factor": lambda t: ["run", "method=task_arithmetic", "modelpool=dummy", "method.scaling_factor=nan"],
    "overflowing scaling factor": lambda t: ["run", "method=task_arithmetic", "modelpool=dummy", "method.scaling_factor=1e400"],
    "drop rate above 1": lambda t: ["run", "method=dare", "modelpool=dummy", "method.p=1.5"],
    "negative drop rate": lambda t: ["run", "method=dare", "modelpool=dummy", "method.p=-0.1"],
    "unknown base method": lambda t: ["run", "method=dare", "modelpool=dummy", "method.base_method=tie"],
    # more sweeps
    "sweep subset size 1": lambda t: [*SWEEP, "subsets=size=1"],
    "sweep subset size not a number": lambda t: [*SWEEP, "subsets=size=x"],
    "sweep grid not a list": lambda t: [*SWEEP, "grid.scaling_factor=0.3"],
    "sweep infinite grid point": lambda t: [*SWEEP, "grid.scaling_factor=[0.1,inf]"],
    "sweep workers not a number": lambda t: [*SWEEP, "workers=abc"],
    "sweep fractional workers": lambda t: [*SWEEP, "workers=1.5"],
    "sweep negative ray actors": lambda t: [*SWEEP, "executor=ray", "ray.actors=-1"],
    "sweep negative ray GPUs": lambda t: [*SWEEP, "executor=ray", "ray.gpus_per_actor=-1"],
    "sweep Ray GPUs the cluster lacks": lambda t: [*SWEEP, "executor=ray", f"ray.gpus_per_actor={1 + torch.cuda.device_count()}"],
    "sweep Ray CPUs the cluster lacks": lambda t: [*SWEEP, "executor=ray", "ray.cpus_per_actor=100000"],
    "sweep unreachable Ray address": lambda t: [*SWEEP, "executor=ray", "ray.address=127.0.0.1:1"],
    "sweep store where nothing can be created": lambda t: [*SWEEP, "store=/proc/fusionbench/s.sqlite"],
    "sweep unknown selection split": lambda t: [*SWEEP, "selection_split=bogus"],
    "sweep unknown report split": lambda t: [*SWEEP, "report_split=bogus"],
    "sweep store that is a folder": lambda t: [*SWEEP, f"store={t}"],
    "sweep seed beyond 64 bits": lambda t: [*SWEEP, "seed=99999999999999999999"],
    "sweep output under a file": lambda t: [*SWEEP, f"output_dir={t / 'a_file'}/s"],
    # more results
    "results store that is a folder": lambda t: ["results", f"store={t}"],
    "results store that is not SQLite": lambda t: ["results", f"store={t / 'garbage.yaml'}"],
    "results unknown key": lambda t: ["results", "metod=ties"],
    "results out under a file": lambda t: ["results", f"store={t / 'nope.sqlite'}", f"out={t / 'a_file'}/r.csv"],
    "results out that is a folder": lambda t: ["results", "format=csv", f"out={t}"],
    "results compare of a run report": lambda t: ["results", "compare", f"summaries=[{t / 'report.json'}]"],
    # more list, leaderboard, analyze
    "list nothing": lambda t: ["list"],
    "list misspelt families": lambda t: ["list", "familes"],
    "leaderboard nothing": lambda t: ["leaderboard"],
    "leaderboard publish without a file": lambda t: ["leaderboard", "publish"],
    "leaderboard validate a list": lambda t: ["leaderboard", "validate", str(t / "list.yaml")],
    "leaderboard publish garbage": lambda t: ["leaderboard", "publish", str(t / "garbage.yaml"), f"out={t / 'board.json'}"],
    "analyze nothing": lambda t: ["analyze"],
    "analyze one task": lambda t: ["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha"],
    "analyze unknown task": lambda t: ["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,zeta"],
    "analyze NaN grid": lambda t: ["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,beta", "grid=[nan]"],
    "analyze empty lambdas": lambda t: ["analyze", "scaling", "modelpool=dummy", "lambdas=[]"],
    "analyze lambdas not a list": lambda t: ["analyze", "scaling", "modelpool=dummy", "lambdas=abc"],
    "analyze NaN scaling factor": lambda t: ["analyze", "interference", "modelpool=dummy", "scaling_factor=nan"],
    "analyze output under a file": lambda t: ["analyze", "cosine", "modelpool=dummy", f"output_dir={t / 'a_file'}/x"],
    "analyze unknown pool": lambda t: ["analyze", "cosine", "modelpool=dumy"],
    "analyze unknown key": lambda t: ["analyze", "cosine", "modelpool=dummy", "bogus=1"],
    # more profile, finetune, mini
    "profile file that is not a profile": lambda t: ["profile", f"model={t / 'garbage.yaml'}"],
    "profile zero batch size": lambda t: ["profile", "batch_size=0"],
    "profile zero steps": lambda t: ["profile", "steps=0"],
    "profile negative warm-up": lambda t: ["profile", "warmup=-1"],
    "profile negative threads": lambda t: ["profile", "threads=-1"],
    "profile output that is a folder": lambda t: ["profile", f"output={t}"],
    "profile output under a file": lambda t: ["profile", f"output={t / 'a_file'}/p.json"],
    "profile zero LoRA rank": lambda t: ["profile", "lora.r=0"],
    "profile unknown device": lambda t: ["profile", "device=tpu"],
    "profile empty paradigms": lambda t: ["profile", "paradigms="],
    "finetune nothing": lambda t: ["finetune"],
    "finetune without task and mode": lambda t: ["finetune", "model=x"],
    "finetune zero micro-batch": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "micro_batch_size=0"],
    "finetune negative micro-batch": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "micro_batch_size=-2"],
    "finetune zero limit": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "limit=0"],
    "finetune negative threads": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "threads=-1"],
    "finetune negative save interval": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "save_every=-1"],
    "finetune zero steps this run": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "max_steps_this_run=0"],
    "finetune unknown eval split": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "eval_split=bogus"],
    "finetune seed beyond 64 bits": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "seed=99999999999999999999"],
    "finetune unknown key": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "stepz=3"],
    "finetune broken list": lambda t: ["finetune", f"model={t / 'nope'}", "task=x", "mode=full", "lora.targets=[q,"],
    "finetune model that is a file": lambda t: ["finetune", f"model={t / 'a_file'}", "task=x", "mode=full"],
    "mini nothing": lambda t: ["mini"],
    "mini unknown key": lambda t: ["mini", "status", "bogus=1"],
    "mini seed not a number": lambda t: ["mini", "build", "seed=abc"],
    "mini train-base of both worlds at once": lambda t: ["mini", "train-base"],
    "mini negative seed": lambda t: ["mini", "build", "seed=-1"],
    "mini reduced not a boolean": lambda t: ["mini", "clean", "reduced=maybe"],
    # saving merged models
    "merge without out": lambda t: ["merge", "method=ties", "modelpool=dummy"],
    "merge out that exists": lambda t: [*MERGE, f"out={t}"],
    "merge out that is a file": lambda t: [*MERGE, f"out={t / 'a_file'}"],
    "merge out under a file": lambda t: [*MERGE, f"out={t / 'a_file'}/m"],
    "merge out where nothing can be created": lambda t: [*MERGE, "out=/proc/fusionbench/m"],
    "merge unknown save format": lambda t: [*MERGE, f"out={t / 'm'}", "save_format=adaptr"],
    "merge adapter format of a full pool": lambda t: [*MERGE, f"out={t / 'm'}", "save_format=adapter"],
    "merge unknown task": lambda t: [*MERGE, f"out={t / 'm'}", "tasks=alpha,zeta"],
    "merge no task": lambda t: [*MERGE, f"out={t / 'm'}", "tasks=[]"],
    "merge overwrite not a boolean": lambda t: [*MERGE, f"out={t / 'm'}", "overwrite=maybe"],
    "merge stream with a method that needs whole models": lambda t: [*MERGE, f"out={t / 'm'}", "stream=true"],
    "merge stream of a pool without safetensors checkpoints": lambda t: ["merge", "method=task_arithmetic", "modelpool=dummy", f"out={t / 'm'}", "stream=true"],
    "run save_model that exists": lambda t: [*RUN, f"output_dir={t / 'run'}", f"save_model={t}"],
    "run save_model unknown save format": lambda t: [*RUN, f"output_dir={t / 'run'}", f"save_model={t / 'm'}", "save_format=dense2"],
    "run save_model adapter format of a full pool": lambda t: [*RUN, f"output_dir={t / 'run'}", f"save_model={t / 'm'}", "save_format=adapter"],
}


# What the line must say where a message once misled (reliability issue, continued).
MESSAGES: dict[str, str] = {
    "pool file that is a folder": r"is a folder",
    "sweep store that is a folder": r"is a folder",
    "results out under a file": r"lies under a file",
    "profile output that is a folder": r"is a folder",
    "finetune model that is a file": r"is a file; give a model folder",
    "finetune unknown mode": r"unknown mode 'fulll'\. Did you mean 'full'\?",
    "finetune linearized mode": r"mode 'linearized' .*no model pool loads it\. Valid modes: full, llora, lora",
    "empty value": r"method\.k needs a value",
    "analyze lambdas not a list": r"lambdas must be a list",
    "list two words": r"list takes one word",
    "very long value": r"\(60000 characters\)",
    "plugin merge raises": r"method 'broken' .*failed: RuntimeError: boom from plugin \(raised at .*broken_raises\.py:\d+\)",
    "plugin merge none": r"method 'broken' .*returned NoneType",
    "plugin merge dict": r"method 'broken' .*returned dict",
    "plugin merge nan": r"NaN or Inf in tensor '(weight|bias)' \(2 of 2 tensors\)",
    "plugin merge int64": r"returned torch\.int64 for tensor",
    "plugin merge renamed": r"do not match the pool's",
    "plugin merge exits": r"failed: SystemExit: 3",
    "seed beyond 64 bits": r"seed=999999999999999999999 is out of range",
    "sweep unreachable Ray address": r"Ray cluster at '127\.0\.0\.1:1' cannot be reached",
    "pool file with an unresolvable interpolation": r"FUSIONBENCH_NO_SUCH_VARIABLE",
    "zero batch size on a real task pool": r"taskpool\.batch_size must be a positive number",
    "pool file with models as a list": r"modelpool\.models must be a mapping, got a list",
    "output name too long": r"over the file system's 255",
    "profile LoRA targets that match no layer": r"lora\.targets=\['nonexistent'\] match no layer",
    "task pool of a world not built yet, without the pool's tasks": r"task pool 'mini_text7' cannot evaluate pool task 'alpha'",
    "sweep Ray GPUs the cluster lacks": r"asks for \d+ GPU\(s\) but the cluster has",
    "output under an unknown user's home": r"home folder of a user that does not exist",
    "merge without out": r"needs out=DIR",
    "merge out that exists": r"already exists.*overwrite=true",
    "merge out that is a file": r"is a file",
    "merge unknown save format": r"Did you mean 'adapter'\?",
    "merge adapter format of a full pool": r"save_format=adapter is not possible .*not LoRA adapters; use save_format=dense",
    "merge unknown task": r"no task 'zeta'",
    "run save_model that exists": r"save_model=.* already exists",
    "merge stream with a method that needs whole models": r"method 'ties' needs whole models at once; use a method .*task_arithmetic",
    "merge stream of a pool without safetensors checkpoints": r"stream=true is not possible for pool 'dummy'",
}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "garbage.yaml").write_text("{[: not yaml\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "syntax.py").write_text("def (:\n")
    (tmp_path / "other_tasks.yaml").write_text("type: dummy\ntasks: [alpha]\n")
    (tmp_path / "untyped.yaml").write_text("name: untyped\n")
    (tmp_path / "interpolated.yaml").write_text("type: dummy\nseed: ${oc.env:FUSIONBENCH_NO_SUCH_VARIABLE}\n")
    (tmp_path / "list_models.yaml").write_text("type: clip\nmode: full\nbase: /nope\nmodels: [a, b]\n")
    (tmp_path / "mistyped.yaml").write_text("type: dumy\n")
    (tmp_path / "extra_key.yaml").write_text("type: dummy\ncolour: blue\n")
    (tmp_path / "report.json").write_text('{"schema": "fusionbench.report/1"}\n')
    sqlite3.connect(tmp_path / "foreign.sqlite").executescript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_error_line_exit_2_and_writes_nothing(name: str, workdir: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = CASES[name](workdir)
    capsys.readouterr()
    before = tree(workdir, isolated_home)
    code = main(words)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in out + err
    assert len(lines[0]) <= 2100
    assert re.search(MESSAGES.get(name, ""), lines[0]), lines[0]
    assert tree(workdir, isolated_home) == before


ENVIRONMENTS: dict[str, dict[str, str]] = {
    "FUSIONBENCH_HOME empty": {"FUSIONBENCH_HOME": ""},
    "FUSIONBENCH_HOME a file": {"FUSIONBENCH_HOME": "a_file"},
    "FUSIONBENCH_HOME under an unknown user": {"FUSIONBENCH_HOME": "~fusionbench_no_such_user/home"},
    "FUSIONBENCH_HOME where nothing can be created": {"FUSIONBENCH_HOME": "/proc/fusionbench"},
}


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_bad_environment_is_one_error_line(name: str, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENVIRONMENTS[name].items():
        monkeypatch.setenv(key, value)
    before = tree(workdir)
    code = main(SWEEP)
    err = capsys.readouterr().err
    assert code == 2 and [line for line in err.splitlines() if line.strip()][-1].startswith("error: "), err[-2000:]
    assert len([line for line in err.splitlines() if line.strip()]) == 1 and "Traceback" not in err
    assert tree(workdir) == before


@pytest.fixture(scope="module")
def populated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A result store holding one pair sweep of task arithmetic on the dummy pool."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUSIONBENCH_HOME", str(root / "home"))
        assert main([*SWEEP, f"store={root / 's.sqlite'}", f"output_dir={root / 'out'}"]) == 0
    return root / "s.sqlite"


STORE_FILTERS = {
    "results unknown method": ("method=tiess", r"no stored result has method='tiess'\. Did you mean 'task_arithmetic'\?|no stored result has method='tiess'"),
    "results misspelt pool": ("pool=dumy", r"no stored result has pool='dumy'\. Did you mean 'dummy'\?"),
    "results misspelt task": ("task=alpah", r"no stored result has task='alpah'\. Did you mean 'alpha'\?"),
    "results split never stored": ("split=validation", r"no stored result has split='validation'.*Stored values of split: test"),
    "results unknown split": ("split=bogus", r"split='bogus' is not a split"),
}


@pytest.mark.parametrize("name", list(STORE_FILTERS))
def test_results_filters_name_what_is_stored(name: str, populated_store: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    word, message = STORE_FILTERS[name]
    capsys.readouterr()
    code = main(["results", f"store={populated_store}", word])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


def test_enough_named_cases() -> None:
    assert len(CASES) + len(ENVIRONMENTS) + len(STORE_FILTERS) >= 150
