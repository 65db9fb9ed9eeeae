"""One run: model pool x method x task pool -> report.json.

``fusionbench run method=M modelpool=P [taskpool=T]`` loads the pool, merges it with the
method, evaluates the merged model on the pool's tasks, normalises each score by the
task's individual fine-tuned model (cached on disk with the pretrained scores), prints a
table and writes ``report.json`` and ``config.yaml`` into the run directory; with
``save_model=DIR`` it also saves the merged model there, with a model card holding the scores.
"""

from __future__ import annotations

import datetime as dt
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from fusionbench.api.errors import ConfigError, OutputError
from fusionbench.api.taskpool import SPLITS
from fusionbench.config.compose import config_hash
from fusionbench.engine.build import build, resolve_device
from fusionbench.engine.merge import merge_and_evaluate
from fusionbench.engine.model_card import model_card
from fusionbench.engine.references import reference_scores
from fusionbench.engine.report import Averages, Cost, PoolInfo, Report, TaskPoolInfo, TaskRow, benchmark_family
from fusionbench.engine.results import MethodInfo, Provenance, check_result
from fusionbench.engine.save import check_save_request, save_merged
from fusionbench.utils.jsonio import write_json_atomic
from fusionbench.utils.paths import check_writable, user_path
from fusionbench.utils.provenance import provenance


@dataclass
class RunSchema:
    """Top-level keys of ``fusionbench run``."""

    method: Any = None
    modelpool: Any = None
    taskpool: Any = None
    output_dir: Optional[str] = None  # default outputs/<timestamp>-<method>-<pool>
    split: str = "test"  # split the merged model is reported on: train | validation | test
    seed: int = 0  # global torch seed
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    plugins: list[str] = field(default_factory=list)  # plugin .py files or modules defining methods / pools, loaded first
    save_model: Optional[str] = None  # also save the merged model into this folder (with a model card)
    save_format: str = "auto"  # auto | dense | adapter, for save_model
    overwrite: bool = False  # replace an existing save_model folder


def peak_memory_bytes(device: str) -> int:
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def output_dir(cfg: DictConfig) -> Path:
    """The run directory: ``output_dir`` or ``outputs/<timestamp>-<method>-<pool>``."""
    if cfg.output_dir:
        return user_path(cfg.output_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("outputs") / f"{stamp}-{cfg.method.name}-{cfg.modelpool.name}"


def run(cfg: DictConfig) -> Report:
    """Execute one run and return its report (also written to the run directory)."""
    device = resolve_device(cfg.device)
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split!r} is not a split; choose one of {', '.join(SPLITS)}")
    out = output_dir(cfg)
    check_writable(out)
    save_to = user_path(cfg.save_model) if cfg.save_model else None
    if save_to is not None:
        check_save_request(save_to, cfg.overwrite, cfg.save_format, "save_model")
    torch.manual_seed(cfg.seed)
    pool, taskpool, method = build(cfg, device)
    method.check_pool(pool)
    save_format = pool.save_format(cfg.save_format) if save_to is not None else None
    tasks = pool.tasks
    resolved = OmegaConf.to_container(cfg, resolve=True)
    origin = provenance(device, cfg.seed, resolved, config_hash(cfg))  # the code and date the run starts with

    evaluation = merge_and_evaluate(method, pool, taskpool, cfg.split)
    references = reference_scores(pool, taskpool, tasks, cfg.split)

    rows = {task: TaskRow.of(score, references.finetuned[task], references.pretrained[task]) for task, score in evaluation.scores.items()}
    use = method.data_use()
    report = Report(
        method=MethodInfo(method.name, method.version, method.reference, asdict(method.params), None if use is None else asdict(use)),
        modelpool=PoolInfo(cfg.modelpool.name, pool.mode, pool.family, benchmark_family(cfg.modelpool), pool.identity()),
        taskpool=TaskPoolInfo.from_dict({"name": cfg.taskpool.name, **taskpool.identity()}),
        split=cfg.split,
        tasks=rows,
        average=Averages.of(rows),
        cost=Cost(evaluation.merge_seconds, evaluation.eval_seconds, peak_memory_bytes(device)),
        provenance=Provenance.from_dict(origin),  # type: ignore[arg-type]
        output_dir=str(out),
    )
    if save_to is not None and save_format is not None:
        scores = {task: {"split": cfg.split, "metric": row.metric, "score": row.score, "n": row.n, "normalized": row.normalized} for task, row in rows.items()}
        card = model_card(cfg, method, pool, save_format, scores)
        save_merged(lambda folder: pool.save(evaluation.merged, folder, save_format), save_to, card)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"output directory {str(out)!r} cannot be created ({exc.strerror}); choose another with output_dir=PATH") from None
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    data = report.to_dict()
    check_result({k: v for k, v in data.items() if k != "output_dir"}, Report.SCHEMA)
    write_json_atomic(out / "report.json", data)
    return report
