"""Configs for the reduced mini world (tests build it in seconds; the shipped configs name the full one)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from fusionbench.config.compose import load_option

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def reduced_configs(tmp_path: Path, pool: str, taskpool: str) -> Path:
    """Copies of the shipped mini configs pointing at the reduced world (which needs no `requires`)."""
    taskpool_cfg = OmegaConf.load(CONFIGS / "taskpool" / f"{taskpool}.yaml")
    del taskpool_cfg["requires"]
    taskpool_cfg.catalog_file = str(taskpool_cfg.catalog_file).replace("-seed0/", "-seed0-reduced/")
    OmegaConf.save(taskpool_cfg, tmp_path / f"{taskpool}.yaml")
    pool_cfg = load_option("modelpool", pool)  # a shipped name, e.g. mini_clip_lora: mini_clip.yaml with mode lora
    del pool_cfg["requires"]
    pool_cfg.taskpool = str(tmp_path / f"{taskpool}.yaml")
    pool_cfg.base = str(pool_cfg.base).replace("-seed0/", "-seed0-reduced/")
    for task in list(pool_cfg.models):
        pool_cfg.models[task] = str(pool_cfg.models[task]).replace("-seed0/", "-seed0-reduced/")
    OmegaConf.save(pool_cfg, tmp_path / f"{pool}.yaml")
    return tmp_path / f"{pool}.yaml"
