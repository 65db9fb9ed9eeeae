"""Where a fine-tune writes, and how it survives interruptions.

Layout (``fusionbench.finetune.loop``)::

    <output_dir>/            the finished checkpoint, in the model pool's format, plus finetune.json and
                             log.csv; it appears in one rename of a fully written temporary folder,
                             so a directory with this name is always complete
    <output_dir>.partial/    the run in progress: run.json (the settings that determine the result)
                             and checkpoints/step-<N>/ (the latest periodic checkpoint: trained
                             parameters, optimizer, scheduler, step, RNG state, the log so far)

Every write goes to a temporary folder first; a failed write (a full disk) removes it and
becomes one :class:`OutputError`.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fusionbench.api.errors import CheckpointError, ConfigError, OutputError
from fusionbench.utils.jsonio import write_json_atomic

METADATA = "finetune.json"
LOG = "log.csv"
RUN_SPEC = "run.json"
TRAINED = "trained.safetensors"
TRAINER_STATE = "trainer_state.pt"
_STEP_DIR = re.compile(r"step-(\d+)")


def partial_dir(out: Path) -> Path:
    """The folder of the run in progress that will become ``out``."""
    return out.with_name(out.name + ".partial")


def _is_disk_full(exc: BaseException) -> bool:
    text = str(exc)
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text or "StorageFull" in text


@contextmanager
def atomic_dir(final: Path, what: str) -> Iterator[Path]:
    """A temporary folder beside ``final``, renamed to ``final`` when the block succeeds, removed when it fails.

    A write error (full disk, read-only folder) becomes one OutputError naming ``what``.
    """
    tmp: Optional[Path] = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
        os.chmod(tmp, 0o755)  # mkdtemp makes private folders; checkpoints are meant to be shared
        yield tmp
        os.rename(tmp, final)
    except (OSError, SafetensorError) as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        reason = "no space left on device" if _is_disk_full(exc) else (getattr(exc, "strerror", None) or str(exc).splitlines()[0])
        fix = "free disk space" if _is_disk_full(exc) else "make it writable"
        raise OutputError(
            f"cannot write {what} to {str(final)!r}: {reason} (the partial files were removed); "
            f"{fix} or choose another output_dir, then rerun: the run resumes from its last checkpoint"
        ) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------- training log
@dataclass
class LogRow:
    """One optimizer step: its loss (mean over the batch), learning rate and the seconds trained so far."""

    step: int
    loss: float
    lr: float
    seconds: float


def write_log(path: Path, rows: list[LogRow]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(LogRow)])
        writer.writerows(astuple(row) for row in rows)


def read_log(path: Path) -> list[LogRow]:
    with path.open(newline="") as handle:
        return [LogRow(int(r["step"]), float(r["loss"]), float(r["lr"]), float(r["seconds"])) for r in csv.DictReader(handle)]


# ------------------------------------------------------------------------ periodic checkpoints
@dataclass
class Checkpoint:
    """Everything needed to continue a run exactly: trained values, optimizer, scheduler, RNG, log."""

    step: int
    trained: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    log: list[LogRow]
    seconds: float


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(partial: Path, ckpt: Checkpoint) -> Path:
    """Write ``checkpoints/step-<N>`` atomically, then drop older checkpoints. Returns its folder."""
    folder = partial / "checkpoints"
    final = folder / f"step-{ckpt.step:08d}"
    with atomic_dir(final, f"the checkpoint of step {ckpt.step}") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in ckpt.trained.items()}, str(tmp / TRAINED))
        state = {"step": ckpt.step, "optimizer": ckpt.optimizer, "scheduler": ckpt.scheduler, "rng": ckpt.rng, "seconds": ckpt.seconds}
        torch.save(state, tmp / TRAINER_STATE)
        write_log(tmp / LOG, ckpt.log)
    for old in folder.iterdir():
        if old != final and _STEP_DIR.fullmatch(old.name):
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(partial: Path) -> Optional[Path]:
    """The complete checkpoint folder with the highest step (temporary folders are never complete)."""
    folder = partial / "checkpoints"
    steps = [(int(m[1]), p) for p in folder.glob("step-*") if (m := _STEP_DIR.fullmatch(p.name))] if folder.is_dir() else []
    return max(steps)[1] if steps else None


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        trained = load_file(str(path / TRAINED))
        state = torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=True)
        log = read_log(path / LOG)
    except (OSError, SafetensorError, RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is unreadable ({str(exc).splitlines()[0]}); delete it to resume from an older "
            f"one, or pass resume=false to start over"
        ) from None
    return Checkpoint(state["step"], trained, state["optimizer"], state["scheduler"], state["rng"], log, state["seconds"])


# --------------------------------------------------------------------------- resume checks
def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (``{"lora": {"r": 16}}`` -> ``{"lora.r": 16}``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def begin(out: Path, spec: dict[str, Any], resume: bool) -> Optional[Checkpoint]:
    """Prepare ``out``'s partial folder and return the checkpoint to resume from (None: start at step 0).

    A partial run with other settings (``spec``: recipe, mode, model, task, seed ...) is not
    resumed: the error names every differing setting.
    """
    if out.exists():
        done = (out / METADATA).is_file()
        raise OutputError(
            f"output_dir {str(out)!r} already {'holds a finished fine-tune' if done else 'exists and is not a fine-tune'}; "
            f"choose another output_dir or delete it"
        )
    partial = partial_dir(out)
    latest = latest_checkpoint(partial) if resume else None
    if latest is not None and (partial / RUN_SPEC).is_file():
        before = flatten(json.loads((partial / RUN_SPEC).read_text()))
        now = flatten(spec)
        diffs = [f"{k}: {before.get(k)!r} in the checkpoint, {now.get(k)!r} now" for k in sorted(before.keys() | now.keys()) if before.get(k) != now.get(k)]
        if diffs:
            raise ConfigError(
                f"{str(partial)!r} holds a partial run with other settings ({'; '.join(diffs)}); rerun with the "
                f"checkpoint's settings to resume it, pass resume=false to start over, or choose another output_dir"
            )
        return load_checkpoint(latest)
    if partial.exists():
        shutil.rmtree(partial)
    with atomic_dir(partial, "the run's folder") as tmp:
        write_json_atomic(tmp / RUN_SPEC, spec)
    return None
