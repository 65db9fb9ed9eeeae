"""Every registered method on real (tiny) CLIP pools in full, LoRA and L-LoRA mode: the reduced mini world."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mini_helpers import reduced_configs

from fusionbench.api.errors import ConfigError
from fusionbench.api.plugins import METHODS
from fusionbench.config.compose import compose
from fusionbench.engine.build import build
from fusionbench.runner import RunSchema


SMALL = {  # the data-based methods within the reduced world's 8 examples per split (taskpool.limit), few steps
    "lorahub": {"examples_per_task": 8},
    "fisher": {"examples_per_task": 8},
    "regmean": {"examples_per_task": 8},
    "regmean_plusplus": {"examples_per_task": 8},
    "adamerging": {"steps": 3},
}
DENSE_ONLY = {"regmean", "regmean_plusplus"}  # whole Linear weights: adapter pools need modelpool.merge_space=delta


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_every_method_merges_and_evaluates_on_a_tiny_clip_pool(mode: str, mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, f"mini_clip_{mode}", "mini_vision7")
    cfg = compose(["method=simple_average", f"modelpool={pool_yaml}", "taskpool.limit=8"], RunSchema)
    pool, taskpool, _ = build(cfg, "cpu")
    pool = pool.subset(pool.tasks[:3])
    base = pool.base()
    for name in METHODS.names():
        cls = METHODS.get(name)
        method = cls(cls.Params(**SMALL.get(name, {})))
        if name in DENSE_ONLY and mode != "full":
            with pytest.raises(ConfigError, match="set modelpool.merge_space=delta"):
                method.merge(pool, taskpool)
            continue
        if name == "knots":  # merges dense updates only: modelpool.merge_space=delta (tests/test_methods_data_free.py)
            with pytest.raises(ConfigError, match="method 'knots'"):
                method.merge(pool)
            continue
        merged = method.merge(pool, taskpool if method.needs_data else None)
        assert list(merged) == list(base), name
        merged.assert_finite(name)
        assert all(merged[k].shape == base[k].shape and merged[k].dtype == base[k].dtype for k in base), name
        model = pool.model(merged)
        with torch.no_grad():
            embeddings = model.vision(torch.zeros(2, 3, 32, 32))
        assert embeddings.shape[0] == 2 and torch.isfinite(embeddings).all(), name
    scores = taskpool.evaluate(pool.model(METHODS.get("ties")().merge(pool)), pool.tasks, "test")
    assert set(scores) == set(pool.tasks) and all(s.n == 8 for s in scores.values())
