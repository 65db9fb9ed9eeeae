"""``fusionbench profile``: the L-LoRA paper's cost tables (Tang et al., ICLR 2024, tables 3 and 4), measured.

For one architecture preset (random weights, nothing downloaded) and each fine-tuning
paradigm (full, linearized, lora, llora; see ``fusionbench.profiling.workload``):

* table 3: trainable and total parameters, trainable %, checkpoint size (written to disk
  with FusionBench's savers), peak training memory;
* table 4: training it/s (one optimizer step of the paper's recipe), inference it/s (and,
  for LoRA / L-LoRA, with the adapters folded into dense weights), peak memories.

Every timing or memory figure is taken in a fresh subprocess per (paradigm, phase):
peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the process's peak
resident set size (from the kernel, ``os.wait4``) on a CPU. it/s is 1 / median step time
after warm-up steps, the device synchronised around each step. Each figure is shown
beside the paper's and as a ratio to full fine-tuning (comparable across hardware); the
whole profile is written as JSON (schema ``fusionbench.profile/1``).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from omegaconf import OmegaConf
from rich.console import Console

from fusionbench.api.errors import ConfigError, FusionBenchError, OutputError, choices_text, did_you_mean
from fusionbench.api.words import names_a_file, word_list
from fusionbench.config.compose import read_yaml_file
from fusionbench.engine.results import check_result
from fusionbench.models.names import canonical_name, known_model
from fusionbench.profiling.figures import GIB, device_info, paper_figures, phases, ratios_to_full, static_figures
from fusionbench.profiling.result import PaperFigures, Profile, ProfileProvenance, ProfileSettings
from fusionbench.config.recipe import Recipe, recipe_from_mapping
from fusionbench.profiling.workload import PARADIGMS, Setup, Spec, check_paradigms, preset_family, spec_to_json
from fusionbench.utils.paths import check_writable, user_path

RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, KiB on Linux
# CPU: minutes, not hours; one thread, as a contended multi-threaded CPU step is far noisier
CPU_DEFAULTS = {"batch_size": 2, "steps": 3, "warmup": 1, "threads": 1}
CUDA_DEFAULTS = {"steps": 20, "warmup": 3, "threads": 0}  # batch_size: the paper's (the recipe's)
_FLOOR_IMPORTS = "import torch, transformers, peft, fusionbench.profiling.workload"


@dataclass
class LoraWords:
    """``lora.*`` keys of ``fusionbench profile``: the recipe's LoRA settings, spelled as in fine-tuning recipes."""

    r: Optional[int] = None  # LoRA rank (default: the recipe's)
    targets: Any = None  # adapted module names, a,b or [a,b] (default: the recipe's)


@dataclass
class ProfileSchema:
    """Top-level keys of ``fusionbench profile``."""

    model: str = "clip-vit-b16"  # a preset of configs/profile (below), or your own YAML file by path
    paradigms: Any = ",".join(PARADIGMS)  # a subset of full, linearized, lora, llora: a,b or [a,b]
    batch_size: Optional[int] = None  # examples per step (default: the device's, below; on a GPU the recipe's, the paper's)
    steps: Optional[int] = None  # timed steps per measurement (default: the device's, below)
    warmup: Optional[int] = None  # untimed steps before them (default: the device's, below)
    lora: LoraWords = field(default_factory=LoraWords)  # lora.r=N, lora.targets=a,b: the recipe's LoRA settings
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: Optional[int] = None  # torch threads of each measuring process (0: torch's default; default: the device's, below)
    seed: int = 0  # random weights and inputs
    output: Optional[str] = None  # JSON file (default outputs/<timestamp>-profile-<model>/profile.json)


# ----------------------------------------------------------------- subprocesses
@dataclass(frozen=True)
class Measured:
    """A finished subprocess: exit code, peak resident set size (bytes) and its captured output."""

    returncode: int
    peak_rss_bytes: int
    stdout: str
    stderr: str


# A small launcher runs the command and reports its rusage: a child's peak RSS (ru_maxrss)
# starts at the RSS of the process that spawned it (Linux carries the pre-exec memory
# over), so spawning straight from a parent that holds torch would inflate every figure.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "open(sys.argv[1], 'w').write(f'{code} {usage.ru_maxrss}')\n"
    "sys.exit(code if code >= 0 else 128 - code)\n"
)


def run_measured(argv: Sequence[str]) -> Measured:
    """Run ``argv`` to completion in a fresh process; its peak RSS comes from the kernel (``os.wait4``).

    ``returncode`` is negative when a signal ended the command, as with ``subprocess``.
    """
    with tempfile.TemporaryDirectory(prefix="fusionbench-rss-") as tmp:
        usage_file = Path(tmp) / "usage"
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            launcher = subprocess.run([sys.executable, "-c", _LAUNCHER, str(usage_file), *argv], stdout=out, stderr=err)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if not usage_file.is_file():
            raise FusionBenchError(f"could not run {argv[0]!r} (exit status {launcher.returncode}): {stderr.strip()[-500:]}")
        code, maxrss = (int(v) for v in usage_file.read_text().split())
    return Measured(code, maxrss * RSS_UNIT, stdout, stderr)


def measure_in_subprocess(spec: Spec) -> dict[str, Any]:
    """One measurement (``profiling_workload.measure``) in a fresh Python process, plus its peak RSS."""
    with tempfile.TemporaryDirectory(prefix="fusionbench-profile-") as tmp:
        spec_file, result_file = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_file.write_text(json.dumps(spec_to_json(spec)))
        done = run_measured([sys.executable, "-m", "fusionbench.profiling.workload", str(spec_file), str(result_file)])
        if done.returncode != 0 or not result_file.is_file():
            tail = "\n".join(done.stderr.strip().splitlines()[-6:])
            hint = " (out of memory? lower batch_size=)" if "out of memory" in done.stderr.lower() or done.returncode < 0 else ""
            raise FusionBenchError(
                f"profiling {spec.paradigm} ({spec.phase}) on {spec.device} failed with exit status {done.returncode}{hint}:\n{tail}"
            )
        result = json.loads(result_file.read_text())
    result["host_peak_rss_bytes"] = done.peak_rss_bytes
    result["peak_bytes"] = result.get("cuda_peak_bytes", done.peak_rss_bytes)
    return result


def rss_floor_bytes() -> int:
    """Peak RSS of a fresh process that only imports what a measurement imports (the CPU figures' floor)."""
    done = run_measured([sys.executable, "-c", _FLOOR_IMPORTS])
    if done.returncode != 0:
        raise FusionBenchError(f"importing the profiling stack failed:\n{done.stderr.strip()}")
    return done.peak_rss_bytes


# ------------------------------------------------------------------ settings
def profile_options() -> list[str]:
    """Models with a shipped ``configs/profile/<model>.yaml``."""
    from fusionbench.config.compose import packaged_options

    return packaged_options("profile")


def model_config(model: str) -> dict[str, Any]:
    """The recipe and the paper's figures of ``model``: ``configs/profile/<model>.yaml``, or a YAML file by path."""
    if names_a_file(model, (".yaml", ".yml")) and known_model(model) is None:  # a hub id names a model, not a file
        path = user_path(model)
        if not path.is_file():
            raise ConfigError(f"profile config file {model!r} does not exist; give an existing YAML file or one of: {choices_text(profile_options())}")
    else:
        options = profile_options()
        option = next((o for o in options if canonical_name(o) == canonical_name(model)), None)  # any name of the model
        if option is None:
            raise ConfigError(f"unknown model {model!r}.{did_you_mean(model, options)} Valid models: {choices_text(options)}")
        path = Path(str(files("fusionbench.configs") / "profile" / f"{option}.yaml"))
    spec: Any = OmegaConf.to_container(read_yaml_file(path, f"profile config {model!r}"))
    missing = [k for k in ("preset", "recipe") if not isinstance(spec, dict) or k not in spec]
    if missing:
        raise ConfigError(f"profile config {model!r} has no {missing[0]!r} key; see configs/profile/clip-vit-b16.yaml for the layout")
    return spec


def check_lora_targets(setup: Setup) -> None:
    """A ConfigError before any work when no layer of the preset's fine-tuned module matches the recipe's ``lora.targets``."""
    from fusionbench.profiling.workload import build_model

    _, root = build_model(setup, "meta", 0)  # shapes only: no memory, no time
    linear = {name.rsplit(".", 1)[-1] for name, module in root.named_modules() if isinstance(module, torch.nn.Linear)}
    if not linear & set(setup.recipe.lora.targets):
        raise ConfigError(f"lora.targets={sorted(setup.recipe.lora.targets)} match no layer of {setup.preset}; its linear layers: {choices_text(linear)}")


@dataclass(frozen=True)
class Settings:
    """A resolved profile request."""

    model: str
    setup: Setup
    paradigms: tuple[str, ...]
    device: str
    steps: int
    warmup: int
    threads: int
    seed: int
    output: Path


WORKLOAD_KEYS = ("source_length", "target_length")  # keys of a profile config's recipe section that shape the inputs


def setup_of(spec: dict[str, Any], model: str) -> Setup:
    """The preset and ``Recipe`` of a profile config (its ``recipe:`` section read as a fine-tuning recipe)."""
    section = spec["recipe"]
    if not isinstance(section, dict):
        raise ConfigError(f"profile config {model!r}: recipe must be a mapping of recipe keys; see configs/profile/clip-vit-b16.yaml")
    base = Recipe(family=preset_family(spec["preset"]), name=Path(model).stem)
    recipe = recipe_from_mapping({k: v for k, v in section.items() if k not in WORKLOAD_KEYS}, base, f"profile config {model!r}")
    return Setup(spec["preset"], recipe, **{k: section[k] for k in WORKLOAD_KEYS if k in section})


def resolve(cfg: Any) -> tuple[Settings, dict[str, Any]]:
    """(settings, model config) of a composed ``ProfileSchema``; every bad value is a ConfigError."""
    from fusionbench.engine.build import resolve_device

    spec = model_config(cfg.model)
    device = resolve_device(cfg.device)
    defaults = CUDA_DEFAULTS if device.startswith("cuda") else CPU_DEFAULTS
    paradigms = tuple(word_list(cfg.paradigms))
    check_paradigms(paradigms)
    if len(set(paradigms)) != len(paradigms):
        raise ConfigError(f"paradigms={cfg.paradigms!r} names a paradigm twice")
    setup = setup_of(spec, cfg.model)
    recipe = setup.recipe
    batch_size = cfg.batch_size if cfg.batch_size is not None else defaults.get("batch_size", recipe.batch_size)
    lora = replace(recipe.lora, r=recipe.lora.r if cfg.lora.r is None else cfg.lora.r)
    if cfg.lora.targets is not None:
        lora = replace(lora, targets=word_list(cfg.lora.targets))
    steps = defaults["steps"] if cfg.steps is None else cfg.steps
    warmup = defaults["warmup"] if cfg.warmup is None else cfg.warmup
    threads = defaults["threads"] if cfg.threads is None else cfg.threads
    for key, value, low in (("batch_size", batch_size, 1), ("steps", steps, 1), ("warmup", warmup, 0), ("lora.r", lora.r, 1), ("threads", threads, 0)):
        if value < low:
            raise ConfigError(f"{key}={value} is not valid; it must be at least {low}")
    if not lora.targets:
        raise ConfigError("lora.targets names no module; give e.g. lora.targets=q_proj,v_proj")
    setup = replace(setup, recipe=replace(recipe, batch_size=batch_size, lora=lora))
    if any(p in ("lora", "llora") for p in paradigms):
        check_lora_targets(setup)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    output = user_path(cfg.output) if cfg.output else Path("outputs") / f"{stamp}-profile-{Path(cfg.model).stem}" / "profile.json"
    settings = Settings(Path(cfg.model).stem, setup, paradigms, device, steps, warmup, threads, cfg.seed, output)
    return settings, spec


# --------------------------------------------------------------------- profile
def profile(cfg: Any, console: Optional[Console] = None) -> Profile:
    """Measure every figure of tables 3 and 4 for the composed ``ProfileSchema``; write and return the JSON."""
    from fusionbench.utils.jsonio import write_json_atomic
    from fusionbench.utils.provenance import git_revision, package_versions

    console = console or Console(stderr=True)
    settings, spec = resolve(cfg)
    check_writable(settings.output, "output", file=True)
    setup, recipe, device = settings.setup, settings.setup.recipe, settings.device
    ours: dict[str, dict[str, float]] = {}
    measurements: dict[str, dict[str, Any]] = {}
    for paradigm in settings.paradigms:
        console.print(f"[dim]{paradigm}: parameters and checkpoint size[/dim]")
        static = static_figures(setup, paradigm, settings.seed)
        figures = {k: v for k, v in static.items() if k != "checkpoint_bytes"}
        measurements[paradigm] = {"checkpoint_bytes": static["checkpoint_bytes"]}
        for phase in phases(paradigm):
            console.print(f"[dim]{paradigm}: {phase} ({settings.warmup} warm-up + {settings.steps} timed steps, batch {recipe.batch_size}, {device})[/dim]")
            spec_ = Spec(setup, paradigm, phase, device, settings.steps, settings.warmup, settings.seed, settings.threads)
            measured = measure_in_subprocess(spec_)
            measurements[paradigm][phase] = measured
            figures[f"{phase}_its"] = measured["its"]
            figures[f"{phase}_peak_gib"] = measured["peak_bytes"] / GIB
        ours[paradigm] = figures
    paper = paper_figures(spec, settings.paradigms, recipe.lora.r)
    paper_spec = spec.get("paper", {})
    result = Profile(
        model=settings.model,
        device=device_info(device),
        settings=ProfileSettings(
            paradigms=list(settings.paradigms),
            batch_size=recipe.batch_size,
            steps=settings.steps,
            warmup=settings.warmup,
            seed=settings.seed,
            threads=settings.threads or "torch default",
            recipe={"preset": setup.preset, **asdict(recipe), "source_length": setup.source_length, "target_length": setup.target_length},
            its="1 / median wall time of one step, device synchronised, after the warm-up steps",
            peak_memory="torch.cuda.max_memory_allocated of a fresh process per measurement" if device.startswith("cuda")
            else "peak resident set size of a fresh process per measurement (os.wait4), the rss floor included",
            paper_batch_size=paper_spec.get("batch_size"),
        ),
        rss_floor_bytes=rss_floor_bytes(),
        ours=ours,
        ours_ratio_to_full=ratios_to_full(ours),
        paper=PaperFigures({k: paper_spec.get(k) for k in ("table3_key", "table4_key")}, paper["table3"], paper["table4"],
                           ratios_to_full(paper["table3"]), ratios_to_full(paper["table4"])),
        measurements=measurements,
        provenance=ProfileProvenance(package_versions(), git_revision(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")),
    )
    try:
        settings.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {str(settings.output.parent)!r} ({exc.strerror}); choose another with output=PATH") from None
    data = result.to_dict()
    check_result(data, Profile.SCHEMA)
    write_json_atomic(settings.output, data)
    return replace(result, output=str(settings.output))

