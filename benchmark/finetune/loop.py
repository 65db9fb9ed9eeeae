"""Fine-tuning that produces model pools: full, LoRA and L-LoRA fine-tunes.

``fusionbench finetune model=M task=T mode=full|lora|llora [recipe=clip_paper|t5_paper] ...``
trains one task's model from a CLIP or T5 base and writes it in the format the ``clip`` /
``t5`` model pools load for that mode, with ``finetune.json`` (recipe, seed, steps, code
version) and ``log.csv`` (the loss curve).

Recipes follow Tang et al., "Parameter Efficient Multi-Task Model Fusion with Partial
Linearization", ICLR 2024, Table 2. Data and loss come from a task pool (``batches`` and
``loss``): zero-shot cross-entropy against the frozen text tower's head for CLIP, the
seq2seq cross-entropy for T5. Runs checkpoint periodically and resume exactly
(``fusionbench.finetune.io``).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

import fusionbench
from fusionbench.api.errors import ConfigError, Interrupted, choices_text, did_you_mean
from fusionbench.api.families import ModelFamily
from fusionbench.api.modelpool import MODES
from fusionbench.api.plugins import FAMILIES, TASKPOOLS
from fusionbench.api.taskpool import SPLITS, TaskPool
from fusionbench.config.compose import load_option, validate
from fusionbench.engine.build import resolve_device
from fusionbench.engine.results import check_result
from fusionbench.models.names import pretrained_checkpoint
from fusionbench.finetune.io import (
    LOG,
    METADATA,
    Checkpoint,
    LogRow,
    atomic_dir,
    begin,
    partial_dir,
    rng_state,
    save_checkpoint,
    set_rng_state,
    write_log,
)
from fusionbench.config.recipe import Recipe, load_recipe
from fusionbench.finetune.record import CodeVersion, EvalScore, FinetuneRecord
from fusionbench.finetune.trainee import Trainee, build_trainee, load_base, model_family, save_trainee
from fusionbench.utils.cache import home
from fusionbench.utils.jsonio import write_json_atomic
from fusionbench.utils.paths import check_writable, user_path
from fusionbench.utils.provenance import device_name, git_revision, package_versions

OnStep = Callable[[int, float], None]  # called after every optimizer step with (steps done, loss)


# ------------------------------------------------------------------------------------ options
@dataclass
class FinetuneOptions:
    """How to run a fine-tune; none of these changes the result (except seed and limit)."""

    seed: int = 0  # data order and dropout
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    limit: Optional[int] = None  # train on a seeded sample of this many examples of the train split
    micro_batch_size: Optional[int] = None  # examples per forward pass; batch_size / micro_batch_size are accumulated
    save_every: int = 500  # steps between checkpoints of the partial run (0: none)
    resume: bool = True  # continue a partial run in <output_dir>.partial from its last checkpoint
    max_steps_this_run: Optional[int] = None  # stop (resumably) after this many steps in this invocation
    eval_split: Optional[str] = None  # evaluate the fine-tuned model on this split at the end (train, validation, test)
    progress: bool = True  # rich progress bar
    threads: int = 0  # torch CPU threads for the process (0: torch's default; 1 is fastest for tiny models on a busy CPU)


@dataclass
class FinetuneResult:
    """What ``finetune`` returns."""

    output_dir: Path  # the finished checkpoint, or the partial run's folder when stopped early
    complete: bool
    step: int  # optimizer steps done
    losses: list[float]  # one per step
    seconds: float  # training time, summed over resumed invocations
    eval: Optional[EvalScore]  # the task pool's score on options.eval_split
    model: Any  # the trained model as the task pool sees it (ZeroShotImageModel / TextToTextModel)


def check_mode(mode: str) -> None:
    """A ConfigError with a did-you-mean for a mode fine-tuning does not know."""
    if mode == "linearized":
        raise ConfigError(
            f"mode 'linearized' (full-model linearisation) is not a fine-tuning mode: no model pool loads it. Valid modes: {choices_text(MODES)} "
            "(llora is the linearised fine-tune pools load; fusionbench profile paradigms=linearized measures the full model's cost)"
        )
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}.{did_you_mean(mode, MODES)} Valid modes: {choices_text(MODES)}")


def check_options(options: FinetuneOptions) -> None:
    """One-line ConfigErrors for option values no fine-tune can use (before any model or data is loaded)."""
    if options.micro_batch_size is not None and options.micro_batch_size < 1:
        raise ConfigError(f"micro_batch_size={options.micro_batch_size} must be a positive number of examples per forward pass (unset: the whole batch)")
    if options.limit is not None and options.limit < 1:
        raise ConfigError(f"limit={options.limit} must be a positive number of training examples (unset: the whole train split)")
    if not 0 <= options.seed < 2**63:
        raise ConfigError(f"seed={options.seed} is out of range; it must lie in [0, {2**63 - 1}]")
    if options.threads < 0:
        raise ConfigError(f"threads={options.threads} must be >= 0 (0: torch's default)")
    if options.save_every < 0:
        raise ConfigError(f"save_every={options.save_every} must be >= 0 (0: no periodic checkpoints)")
    if options.max_steps_this_run is not None and options.max_steps_this_run <= 0:
        raise ConfigError(f"max_steps_this_run={options.max_steps_this_run} must be positive")
    if options.eval_split is not None and options.eval_split not in SPLITS:
        raise ConfigError(f"eval_split={options.eval_split!r} is not a split.{did_you_mean(options.eval_split, SPLITS)} Valid: {choices_text(SPLITS)}")


def micro_batch_size(options: FinetuneOptions, recipe: Recipe) -> int:
    """The micro-batch size of a fine-tune with ``recipe``; a ConfigError for one that does not fit."""
    micro = recipe.batch_size if options.micro_batch_size is None else options.micro_batch_size
    if recipe.batch_size % micro:
        raise ConfigError(
            f"micro_batch_size={micro} must be a positive divisor of batch_size={recipe.batch_size} "
            f"(each step accumulates batch_size / micro_batch_size micro-batches)"
        )
    return micro


# --------------------------------------------------------------------------------------- data
class TrainingData:
    """A task's train split, preprocessed once, served in seeded shuffled batches, epoch after epoch.

    Step s takes examples s*B .. (s+1)*B - 1 of the endless sequence perm_0 + perm_1 + ...
    (perm_e: a permutation of the split seeded by (seed, e)), so any step's batch is known
    without replaying the ones before it: resuming needs only the step.
    """

    def __init__(self, taskpool: Any, task: str, model: Any, limit: Optional[int], seed: int, batch_size: int, micro: int) -> None:
        self.n = len(taskpool.selection(task, "train", limit).rows)
        self.split = next(taskpool.batches(task, "train", self.n, limit))
        self.model, self.seed, self.batch_size, self.micro = model, seed, batch_size, micro
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:  # keep the latest epoch's only: steps move forward
            self._perms = {epoch: torch.from_numpy(np.random.default_rng([self.seed, epoch]).permutation(self.n))}
        return self._perms[epoch]

    def micro_batches(self, step: int) -> Iterator[Any]:
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        index = torch.stack([self._perm(p // self.n)[p % self.n] for p in positions])
        for start in range(0, self.batch_size, self.micro):
            yield self.split.select(index[start : start + self.micro], self.model)


# ---------------------------------------------------------------------------------- optimizer
def make_optimizer(recipe: Recipe, params: list[torch.nn.Parameter]) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam / AdamW with a linear warm-up, then a constant or cosine-to-zero learning rate."""
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    warm = round(recipe.warmup_ratio * recipe.steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if recipe.schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, recipe.steps - warm)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------------------------- resolving
def load_taskpool(option: str, overrides: Sequence[str] = (), device: str = "cpu") -> TaskPool:
    """A task pool from a packaged option or YAML path, with ``key=value`` overrides, as ``fusionbench run`` builds it."""
    config = validate("taskpool", load_option("taskpool", option), option, list(overrides))
    return TASKPOOLS.get(config.type)(config, device=device)


def default_output_dir(model: str, task: str, mode: str, recipe: Recipe, family: type[ModelFamily]) -> Path:
    """``$FUSIONBENCH_HOME/checkpoints/<model>_<task><suffix>``, named like the published checkpoints
    (``flan-t5-base_glue-cola_l-lora-16``: where the ``flan_t5_llora`` pool looks)."""
    prefix = family.checkpoint_task_prefix
    suffix = {"full": "", "lora": f"_lora-{recipe.lora.r}", "llora": f"_l-lora-{recipe.lora.r}"}[mode]
    return home() / "checkpoints" / f"{model.rstrip('/').split('/')[-1]}_{prefix}{task}{suffix}"


def _check_compatible(family: type[ModelFamily], model: str, recipe: Recipe, taskpool: TaskPool) -> TaskPool:
    """``taskpool`` when recipe and task pool fit the model's family; a ConfigError naming both sides otherwise."""
    if recipe.family != family.name:
        recipe_label = FAMILIES.get(recipe.family).label if recipe.family in FAMILIES else recipe.family
        raise ConfigError(
            f"recipe {recipe.name!r} is for {recipe_label} models but model {model!r} is a "
            f"{family.label} model; use recipe={family.default_recipe} or a recipe with family: {family.name}"
        )
    wanted = TASKPOOLS.get(family.taskpool)
    if not isinstance(taskpool, wanted):
        raise ConfigError(
            f"task pool {taskpool.config.name!r} ({taskpool.name}) cannot train model {model!r}, a {family.label} model; "
            f"use a {wanted.name} task pool such as taskpool={family.default_taskpool}"
        )
    return taskpool


# ------------------------------------------------------------------------------------ the run
def finetune(
    model: str,
    task: str,
    mode: str,
    taskpool: Union[TaskPool, str, None] = None,
    recipe: Union[Recipe, str, None] = None,
    output_dir: Union[str, Path, None] = None,
    options: Optional[FinetuneOptions] = None,
    on_step: Optional[OnStep] = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (preset name, hub id or local path) on ``task`` of ``taskpool`` in ``mode``.

    ``taskpool`` is a TaskPool object (reused across calls, so its data and head caches are
    too), an option name or a YAML path (default ``clip_ta8`` / ``glue8``); ``recipe`` a
    Recipe, a name in RECIPES or a YAML path (default ``clip_paper`` / ``t5_paper``).
    Writes the checkpoint to ``output_dir`` (default: see ``default_output_dir``);
    ``on_step(step, loss)`` runs after each optimizer step once that step is checkpointed.
    """
    options = options or FinetuneOptions()
    check_options(options)
    check_mode(mode)
    device = resolve_device(options.device)
    model = pretrained_checkpoint(model)
    family = model_family(model)
    recipe = load_recipe(recipe if recipe is not None else family.default_recipe)
    loaded = taskpool if isinstance(taskpool, TaskPool) else load_taskpool(taskpool or family.default_taskpool, device=device)
    task_pool = _check_compatible(family, model, recipe, loaded)
    task_pool.definition(task)  # an unknown task: did-you-mean and the valid tasks
    micro = micro_batch_size(options, recipe)
    if options.threads:
        torch.set_num_threads(options.threads)
    out = user_path(output_dir) if output_dir is not None else default_output_dir(model, task, mode, recipe, family)
    check_writable(out)

    pool = load_base(family, model, device)
    trainee = build_trainee(pool, mode, recipe, model)
    trained = trainee.trained()
    optimizer, scheduler = make_optimizer(recipe, list(trained.values()))
    data = TrainingData(task_pool, task, trainee.evaluated, options.limit, options.seed, recipe.batch_size, micro)
    spec = {"model": model, "task": task, "mode": mode, "seed": options.seed, "limit": options.limit, "taskpool": task_pool.config.name, "recipe": asdict(recipe)}
    spec["recipe"].pop("name")  # values, not names, determine the result
    resumed = begin(out, spec, options.resume)

    torch.manual_seed(options.seed)
    step, log, seconds = 0, [], 0.0
    if resumed is not None:
        with torch.no_grad():
            for name, p in trained.items():
                p.copy_(resumed.trained[name])
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        set_rng_state(resumed.rng)
        step, log, seconds = resumed.step, resumed.log, resumed.seconds

    def checkpoint() -> None:
        state = Checkpoint(step, {n: p.detach() for n, p in trained.items()}, optimizer.state_dict(), scheduler.state_dict(), rng_state(), log, seconds)
        save_checkpoint(partial_dir(out), state)

    stop = recipe.steps if options.max_steps_this_run is None else min(recipe.steps, step + options.max_steps_this_run)
    trainee.train(True)
    with _ProgressBar(options.progress, f"{task} ({mode})", recipe.steps, step) as advance, _resumable(out):
        while step < stop:
            started = time.perf_counter()
            lr = scheduler.get_last_lr()[0]
            loss = _train_step(trainee, task_pool, task, data, step, optimizer)
            scheduler.step()
            step, seconds = step + 1, seconds + time.perf_counter() - started
            if not math.isfinite(loss):
                raise ConfigError(f"training diverged: the loss is {loss} at step {step}; lower lr (now {recipe.lr}) or check the data")
            log.append(LogRow(step, loss, lr, seconds))
            if options.save_every and step % options.save_every == 0 and step < recipe.steps:
                checkpoint()
            advance(loss)
            if on_step is not None:
                on_step(step, loss)
    trainee.train(False)
    losses = [row.loss for row in log]
    if step < recipe.steps:
        if not options.save_every or step % options.save_every:
            checkpoint()
        return FinetuneResult(partial_dir(out), False, step, losses, seconds, None, trainee.evaluated)

    score = None
    if options.eval_split is not None:
        score = EvalScore.of(options.eval_split, task_pool.evaluate(trainee.evaluated, [task], options.eval_split)[task])
    record = FinetuneRecord(
        model=model, family=family.name, task=task, mode=mode, recipe=recipe, seed=options.seed, limit=options.limit,
        steps=step, micro_batch_size=micro, trained_parameters=sum(p.numel() for p in trained.values()),
        final_loss=float(np.mean(losses[-10:])), eval=score, seconds=seconds, taskpool=task_pool.identity(),
        code_version=CodeVersion(fusionbench.__version__, git_revision()), packages=package_versions(), device=device_name(device),
        date=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    metadata = record.to_dict()
    check_result(metadata, FinetuneRecord.SCHEMA)
    with atomic_dir(out, "the fine-tuned checkpoint") as tmp:
        save_trainee(trainee, tmp, pool)
        write_log(tmp / LOG, log)
        write_json_atomic(tmp / METADATA, metadata)
    shutil.rmtree(partial_dir(out), ignore_errors=True)
    return FinetuneResult(out, True, step, losses, seconds, score, trainee.evaluated)


@contextlib.contextmanager
def _resumable(out: Path) -> Iterator[None]:
    """An interrupt while training names the partial run it leaves (by design: rerunning resumes from it)."""
    try:
        yield
    except KeyboardInterrupt:
        partial = partial_dir(out)
        if not partial.is_dir():
            raise
        raise Interrupted(
            f"the partial run in {partial} resumes from its last checkpoint when the same command is run again; "
            f"delete that folder (or pass resume=false) to start over"
        ) from None


def _train_step(trainee: Trainee, taskpool: TaskPool, task: str, data: TrainingData, step: int, optimizer: torch.optim.Optimizer) -> float:
    """One optimizer step over ``batch_size`` examples, accumulated over micro-batches; returns the batch's mean loss."""
    optimizer.zero_grad(set_to_none=True)
    accumulate = data.batch_size // data.micro
    total = 0.0
    for batch in data.micro_batches(step):
        loss = taskpool.loss(trainee.evaluated, batch, task) / accumulate
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total


class _ProgressBar:
    """A rich progress bar over the steps (or nothing); ``advance(loss)`` after each step."""

    def __init__(self, enabled: bool, label: str, total: int, done: int) -> None:
        self.enabled, self.label, self.total, self.done = enabled, label, total, done

    def __enter__(self) -> Callable[[float], None]:
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        self.bar.__enter__()
        task = self.bar.add_task(self.label, total=self.total, completed=self.done, loss="-")
        return lambda loss: self.bar.update(task, advance=1, loss=f"{loss:.4f}")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)

