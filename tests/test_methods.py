"""Every built-in fusion method: registration and metadata, the CLI, bad input, and property
tests (shapes, dtypes, finiteness, inputs left untouched) on random ParamDicts."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from method_helpers import StaticPool, dummy_pools, random_params, random_pool

from fusionbench.api.errors import ConfigError, ParamMismatchError
from fusionbench.api.method import Method, param_help
from fusionbench.api.params import ParamDict
from fusionbench.api.plugins import METHODS
from fusionbench.cli.main import main
from fusionbench.methods import BUILTINS
from fusionbench.modelpools.dummy import DummyModelPool

ALL_METHODS = sorted(BUILTINS)
TEN = {"simple_average", "task_arithmetic", "ties", "dare", "lorahub", "awd", "cart", "tsv", "iso_c", "iso_cts"}
LORA_ONLY = {"knots"}  # refuses full pools (tests/test_methods_data_free.py)
FULL_POOL_METHODS = sorted(set(ALL_METHODS) - LORA_ONLY)
SECOND_WAVE = {"fisher", "regmean", "regmean_plusplus", "adamerging", "wudi", "knots", "consensus", "pcb", "breadcrumbs"}  # issue 19


def method(name: str, **values: Any) -> Method:
    cls = METHODS.get(name)
    return cls(cls.Params(**values))


def merge(m: Method, pool: Any) -> ParamDict:
    """What the runner does: the task pool only for methods that need data."""
    return m.merge(pool, dummy_pools()[1] if m.needs_data else None)


# ------------------------------------------------------------------------- registry, metadata
def test_the_ten_methods_are_registered() -> None:
    assert set(METHODS.names()) >= TEN and set(BUILTINS) == TEN | SECOND_WAVE


@pytest.mark.parametrize("name", ALL_METHODS)
def test_method_metadata_params_and_grid(name: str) -> None:
    cls = METHODS.get(name)
    assert cls.name == name
    assert cls.description and "\n" not in cls.description
    assert cls.reference and cls.version
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__
    assert module_doc and ("default" in module_doc.lower() or not fields(cls.Params))  # formula + defaults
    for field_name, default, meaning in param_help(cls.Params):
        assert meaning, f"{name}.{field_name} has no documented meaning"
        assert default is None or isinstance(default, (bool, int, float, str, list))
    names = {f.name for f in fields(cls.Params)}
    assert set(cls.grid) <= names
    for key, values in cls.grid.items():
        for value in values:
            cls(cls.Params(**{key: value}))  # every grid point is a valid setting


def test_list_methods_shows_all_ten_with_references(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one table row per method
    assert main(["list", "methods"]) == 0
    rows = capsys.readouterr().out.splitlines()
    for name in TEN | SECOND_WAVE:
        assert any(f" {name} " in row and METHODS.get(name).reference in row for row in rows), name


@pytest.mark.parametrize("name", FULL_POOL_METHODS)
def test_runs_through_the_cli_on_the_dummy_pool(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    words = ["run", f"method={name}", "modelpool=dummy", f"output_dir={out}"]
    if name == "lorahub":
        words.append("method.budget=8")
    if name == "awd":
        words.append("method.steps=30")
    if name == "adamerging":
        words.append("method.steps=20")
    assert main(words) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"]["name"] == name
    assert report["method"]["reference"] == METHODS.get(name).reference
    assert set(report["tasks"]) == {"alpha", "beta", "gamma", "delta"}
    assert all(math.isfinite(row["score"]) for row in report["tasks"].values())


def test_cli_rejects_an_out_of_range_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "method=ties", "modelpool=dummy", "method.k=1.5", f"output_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert "k=1.5" in err and "(0.0, 1.0]" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", ALL_METHODS)
def test_empty_pool_is_a_config_error(name: str) -> None:
    pool = StaticPool(random_params(0), {})
    with pytest.raises(ConfigError, match=r"needs at least \d tasks but the pool has 0"):
        merge(method(name), pool)


def test_awd_needs_two_tasks() -> None:
    with pytest.raises(ConfigError, match="'awd' needs at least 2 tasks but the pool has 1"):
        method("awd").merge(random_pool(1))


@pytest.mark.parametrize("name", FULL_POOL_METHODS)
def test_mismatched_task_keys_are_a_param_mismatch(name: str) -> None:
    pool = random_pool(2)
    extra = ParamDict(pool.finetuned("t1"))
    extra["head.weight"] = torch.zeros(3, 2, dtype=torch.float64)
    bad = StaticPool(pool.base(), {"t0": pool.finetuned("t0"), "t1": extra})
    with pytest.raises(ParamMismatchError, match="task 't1'.*head.weight"):
        merge(method(name), bad)


@pytest.mark.parametrize("name", sorted(set(FULL_POOL_METHODS) - {"simple_average", "cart"}))
def test_base_not_matching_the_finetuned_is_a_param_mismatch(name: str) -> None:
    pool = random_pool(2)
    base = ParamDict(pool.base())
    base["layers.0.weight"] = torch.zeros(8, 7, dtype=torch.float64)
    with pytest.raises(ParamMismatchError, match="do not match the base.*layers.0.weight"):
        merge(method(name), StaticPool(base, {t: pool.finetuned(t) for t in pool.tasks}))


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
@pytest.mark.parametrize("name", FULL_POOL_METHODS)
def test_nan_or_inf_in_a_task_is_named(name: str, bad_value: float) -> None:
    pool = random_pool(3)
    broken = ParamDict(pool.finetuned("t2"))
    broken["layers.1.bias"] = broken["layers.1.bias"].clone()
    broken["layers.1.bias"][3] = bad_value
    bad = StaticPool(pool.base(), {"t0": pool.finetuned("t0"), "t1": pool.finetuned("t1"), "t2": broken})
    with pytest.raises(ValueError, match="task 't2' contain NaN or Inf in tensor 'layers.1.bias'"):
        merge(method(name), bad)


OUT_OF_RANGE = [
    ("ties", "k", 0.0),
    ("ties", "k", 1.5),
    ("ties", "merge_func", "max"),
    ("task_arithmetic", "scaling_factor", float("nan")),
    ("dare", "p", 1.0),
    ("dare", "p", -0.1),
    ("dare", "base_method", "tie"),
    ("cart", "rho", 0.0),
    ("cart", "rho", 1.2),
    ("tsv", "scaling_factor", float("inf")),
    ("iso_c", "scaling_factor", 0.0),
    ("iso_cts", "common_fraction", 0.0),
    ("iso_cts", "common_fraction", 1.1),
    ("awd", "alpha", -1.0),
    ("awd", "lr", 0.0),
    ("awd", "steps", 0),
    ("awd", "cosine", "layer"),
    ("awd", "k", 2.0),
    ("lorahub", "budget", -5),
    ("lorahub", "budget", 0),
    ("lorahub", "l1", -0.1),
    ("lorahub", "lower", 0.5),
    ("lorahub", "examples_per_task", 0),
    ("lorahub", "split", "dev"),
    ("wudi", "solver", "sgd"),
    ("wudi", "ridge", 0.0),
    ("wudi", "others", "zero"),
    ("knots", "base_method", "dare"),
    ("knots", "k", 0.0),
    ("knots", "rank_tol", -1.0),
    ("consensus", "k", -1),
    ("consensus", "tall_mask_lambda", 0.0),
    ("consensus", "base_method", "tsv"),
    ("pcb", "ratio", 0.0),
    ("pcb", "outlier_ratio", 0.5),
    ("breadcrumbs", "beta", 1.0),
    ("breadcrumbs", "gamma", -0.1),
]


@pytest.mark.parametrize(("name", "key", "value"), OUT_OF_RANGE)
def test_out_of_range_parameters_are_config_errors(name: str, key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"method '{name}': {key}="):
        method(name, **{key: value})


def test_lorahub_without_a_task_pool_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a task pool"):
        method("lorahub").merge(random_pool(2), None)


# ------------------------------------------------------------------------------ property tests
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
PROPERTY_METHODS = {
    "simple_average": {},
    "task_arithmetic": {},
    "ties": {},
    "dare": {"base_method": "ties"},
    "awd": {"steps": 10},
    "cart": {},
    "tsv": {},
    "iso_c": {},
    "iso_cts": {},
    "wudi": {},
    "consensus": {"base_method": "ties"},
    "pcb": {},
    "breadcrumbs": {},
}


@st.composite
def pools(draw: st.DrawFn) -> tuple[StaticPool, torch.dtype]:
    dims = st.integers(min_value=1, max_value=9)
    shapes = {f"m{i}.weight": (draw(dims), draw(dims)) for i in range(draw(st.integers(1, 2)))}
    shapes["m0.bias"] = (draw(dims),)
    if draw(st.booleans()):
        shapes["m0.scale"] = (draw(dims), draw(dims), 2)
    dtype = draw(st.sampled_from(DTYPES))
    tasks = draw(st.integers(min_value=2, max_value=4))
    return random_pool(tasks, seed=draw(st.integers(0, 10_000)), shapes=shapes, dtype=dtype), dtype


@pytest.mark.parametrize("name", sorted(PROPERTY_METHODS))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=pools())
def test_merge_keeps_shapes_and_dtypes_is_finite_and_leaves_inputs_alone(
    name: str, drawn: tuple[StaticPool, torch.dtype]
) -> None:
    pool, dtype = drawn
    before = {t: pool.finetuned(t).clone() for t in pool.tasks}
    base_before = pool.base().clone()
    merged = method(name, **PROPERTY_METHODS[name]).merge(pool)
    assert list(merged) == list(pool.base())
    for key, tensor in merged.items():
        assert tensor.shape == pool.base()[key].shape and tensor.dtype == dtype
        assert torch.isfinite(tensor).all(), key
    assert all(torch.equal(pool.finetuned(t)[k], v) for t in pool.tasks for k, v in before[t].items())
    assert all(torch.equal(pool.base()[k], v) for k, v in base_before.items())


class ServedOnceDummyPool(DummyModelPool):
    """The dummy pool, serving the same tensor objects on every call (so mutation would show)."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._served = {t: DummyModelPool.finetuned(self, t) for t in self.tasks} | {None: DummyModelPool.base(self)}

    def base(self) -> ParamDict:
        return self._served[None]

    def finetuned(self, task: str) -> ParamDict:
        return self._served[task]


def test_lorahub_keeps_shapes_dtypes_and_inputs() -> None:
    dummy, taskpool = dummy_pools()
    pool = ServedOnceDummyPool(dummy.config)
    snapshot = {t: pool.finetuned(t).clone() for t in pool.tasks}
    merged = method("lorahub", budget=6).merge(pool, taskpool)
    assert {k: (v.shape, v.dtype) for k, v in merged.items()} == {k: (v.shape, v.dtype) for k, v in pool.base().items()}
    merged.assert_finite()
    assert all(pool.finetuned(t).allclose(v, rtol=0, atol=0) for t, v in snapshot.items())
