"""Where a result came from: package versions, git revision, device, date, seed and resolved config."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

_TRACKED_PACKAGES = ("fusionbench", "torch", "transformers", "peft", "datasets", "safetensors", "omegaconf")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_revision(tree: Path | None = None) -> str | None:
    """The git commit of the source tree (default: the installed package's), when it is a checkout.

    ``<commit>-dirty`` when tracked files differ from that commit (``git describe --dirty``'s
    convention), so a result made with uncommitted code does not name a commit that lacks it.
    """
    here = tree or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    dirty = status.returncode == 0 and bool(status.stdout.strip())
    return head.stdout.strip() + ("-dirty" if dirty else "")


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def provenance(device: str, seed: int, config: dict[str, Any], config_hash: str) -> dict[str, Any]:
    return {
        "packages": package_versions(),
        "git_revision": git_revision(),
        "device": device_name(device),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "config": config,
        "config_hash": config_hash,
    }
