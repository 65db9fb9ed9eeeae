"""Fisher merging, RegMean and AdaMerging (issue 19), each against an independent expectation, and the
data-access contract they read through (``TaskPool.examples``): the split and count they declare, labels
never read on a test split, and one-line errors for data a pool lacks."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from method_helpers import dummy_pools, random_params
from mini_helpers import reduced_configs
from omegaconf import OmegaConf
from torch import nn

from fusionbench.api.derived import DerivedCache
from fusionbench.api.errors import ConfigError, DataError
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import DataUse
from fusionbench.cli.main import main
from fusionbench.config.compose import compose
from fusionbench.engine.build import build
from fusionbench.engine.executors import Job, Worker
from fusionbench.engine.merge import merge_and_evaluate
from fusionbench.engine.memory_pool import ParamDictPool
from fusionbench.methods.adamerging import AdaMerging, AdaMergingParams, EntropyObjective, MergedParams
from fusionbench.methods.data_based import constant_outputs_reused
from fusionbench.methods.fisher import FisherMerging, FisherParams, fisher_merge
from fusionbench.methods.lorahub import LoraHub, LoraHubParams
from fusionbench.methods.regmean import RegMean, RegMeanParams, shrink_off_diagonal
from fusionbench.methods.task_arithmetic import TaskArithmetic
from fusionbench.runner import RunSchema
from fusionbench.taskpools.dummy import DummyTaskPool, DummyTaskPoolConfig

TASKS = ["alpha", "beta", "gamma", "delta"]


def dummy_taskpool(**values: Any) -> DummyTaskPool:
    return DummyTaskPool(OmegaConf.structured(DummyTaskPoolConfig(type="dummy", name="dummy", **values)))


class Linear64(nn.Linear):
    """The dummy world's classifier in float64 (its inputs cast), so finite differences are exact enough."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.double())


def float64_dummy_pool() -> ParamDictPool:
    """The dummy world's four classifiers in float64, served by one resident Linear64."""
    pool, _ = dummy_pools()
    module = Linear64(16, 4).double()

    def model(params: ParamDict) -> nn.Module:
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(params[name])
        return module

    finetuned = {t: pool.finetuned(t).to(torch.float64) for t in pool.tasks}
    return ParamDictPool(base=pool.base().to(torch.float64), finetuned=finetuned, model=model, name="dummy64")


# ---------------------------------------------------------------------------------------- Fisher
def autograd_fisher(theta: ParamDict, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """(1/N) sum_i (d log softmax(W x_i + b)[y_i] / d(W, b))^2, one example at a time."""
    weight = theta["weight"].double().clone().requires_grad_()
    bias = theta["bias"].double().clone().requires_grad_()
    squares = {"weight": torch.zeros_like(weight), "bias": torch.zeros_like(bias)}
    for xi, yi in zip(x, y):
        log_p = F.log_softmax(xi.double() @ weight.T + bias, dim=-1)
        dw, db = torch.autograd.grad(log_p[yi], (weight, bias))
        squares["weight"] += dw**2
        squares["bias"] += db**2
    return {k: v / len(x) for k, v in squares.items()}


@pytest.mark.parametrize("normalize", [True, False])
def test_fisher_weights_match_an_independent_autograd_loop(normalize: bool) -> None:
    pool, taskpool = dummy_pools()
    n = 24
    method = FisherMerging(FisherParams(examples_per_task=n, normalize=normalize))
    fishers = []
    for task in pool.tasks:
        x, y = next(iter(taskpool.batches(task, "train", n, n)))
        ours = method.fisher(pool, taskpool, task, pool.finetuned(task))
        for name, reference in autograd_fisher(pool.finetuned(task), x, y).items():
            torch.testing.assert_close(ours[name].double(), reference, rtol=1e-5, atol=1e-9)
        fishers.append({name: f.double() for name, f in ours.items()})
    # The merge from the Fishers just checked: they agree with the float64 loop to float32 precision only (the
    # model runs in float32), and a weighted average whose terms cancel magnifies that past the tolerance
    # (seen on an AMD CPU, whose MKL rounds otherwise).
    norms = [torch.sqrt(sum((f**2).sum() for f in fisher.values())) if normalize else torch.tensor(1.0) for fisher in fishers]
    merged = method.merge(pool, taskpool)
    for name in ("weight", "bias"):
        scaled = [fisher[name].clamp_min(1e-6) / norm for fisher, norm in zip(fishers, norms)]
        expected = sum(s * pool.finetuned(t)[name].double() for s, t in zip(scaled, pool.tasks)) / sum(scaled)
        torch.testing.assert_close(merged[name].double(), expected, rtol=1e-5, atol=1e-6)


def test_equal_fishers_give_the_simple_average() -> None:
    thetas = [random_params(seed) for seed in range(3)]
    fisher = {name: torch.rand_like(t) + 0.1 for name, t in thetas[0].items()}
    merged = fisher_merge(thetas, [fisher, fisher, fisher], 1e-6, normalize=True)
    assert merged.allclose(ParamDict.mean(thetas), atol=1e-12)


def test_fisher_averages_a_tensor_no_gradient_reaches() -> None:
    thetas = [random_params(seed) for seed in range(2)]
    fishers = [{name: torch.rand_like(t) + 0.1 for name, t in theta.items()} for theta in thetas]
    fishers[1]["layers.0.bias"] = None
    merged = fisher_merge(thetas, fishers, 1e-6, normalize=False)
    torch.testing.assert_close(merged["layers.0.bias"], (thetas[0]["layers.0.bias"] + thetas[1]["layers.0.bias"]) / 2)
    assert not torch.allclose(merged["layers.0.weight"], (thetas[0]["layers.0.weight"] + thetas[1]["layers.0.weight"]) / 2)


# --------------------------------------------------------------------------------------- RegMean
def test_regmean_with_alpha_one_is_least_squares_on_the_stacked_inputs() -> None:
    pool, taskpool = dummy_pools()
    n = 40
    merged = RegMean(RegMeanParams(alpha=1.0, examples_per_task=n, batch_size=16)).merge(pool, taskpool)
    inputs = [next(iter(taskpool.batches(t, "train", n, n)))[0].double() for t in pool.tasks]
    targets = [x @ pool.finetuned(t)["weight"].double().T for x, t in zip(inputs, pool.tasks)]
    expected = torch.linalg.lstsq(torch.cat(inputs), torch.cat(targets)).solution.T
    torch.testing.assert_close(merged["weight"].double(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged["bias"], sum(pool.finetuned(t)["bias"] for t in pool.tasks) / 4)


@pytest.mark.parametrize("alpha", [0.0, 0.9, 1.0])
def test_regmean_of_one_task_returns_that_task(alpha: float) -> None:
    pool, taskpool = dummy_pools()
    one = pool.subset(["gamma"])
    merged = RegMean(RegMeanParams(alpha=alpha, examples_per_task=32)).merge(one, taskpool)
    assert merged.allclose(pool.finetuned("gamma"), rtol=1e-5, atol=1e-6)


def test_regmean_scales_only_the_off_diagonal_entries() -> None:
    gram = torch.tensor([[4.0, 2.0], [2.0, 9.0]])
    torch.testing.assert_close(shrink_off_diagonal(gram, 0.9), torch.tensor([[4.0, 1.8], [1.8, 9.0]]))


# ---------------------------------------------------- per-task Fishers and Grams reused in a sweep
def sweep_jobs(method: str, grid: dict[str, list[Any]]) -> list[Job]:
    """Every pair of the dummy tasks at every grid point, as a sweep runs them."""
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    return [Job(method, tuple(sorted(p.items())), pair, "validation") for pair in itertools.combinations(TASKS, 2) for p in points]


@pytest.mark.parametrize(
    ("method", "grid", "distinct"),
    [
        (FisherMerging(FisherParams()), {"examples_per_task": [16, 48], "normalize": [True, False]}, 2 * len(TASKS)),
        (RegMean(RegMeanParams()), {"alpha": [0.5, 1.0], "examples_per_task": [24]}, len(TASKS)),
    ],
)
def test_a_sweep_worker_computes_each_tasks_fishers_and_grams_once(method: Any, grid: dict[str, list[Any]], distinct: int) -> None:
    pool, taskpool = dummy_pools()
    worker = Worker(pool, taskpool, method, seed=0)
    assert isinstance(pool.derived, DerivedCache)
    jobs = sweep_jobs(method.name, grid)
    for job in jobs:
        reused = worker.run(job).scores
        fresh_pool, fresh_data = dummy_pools()  # no cache: every merge computes its own, as outside a sweep
        assert fresh_pool.derived is None
        alone = type(method)(replace(method.params, **dict(job.params)))
        expected = merge_and_evaluate(alone, fresh_pool.subset(list(job.subset)), fresh_data, job.split).scores
        assert reused == {t: asdict(score) for t, score in expected.items()}, job
    # one computation per task and example count, against 2 x |grid| per task without reuse
    assert pool.derived.computed == distinct < 2 * len(jobs)


def test_a_derived_value_over_the_budget_is_recomputed() -> None:
    cache = DerivedCache(budget=3 * 8)
    calls: list[int] = []

    def compute(n: int) -> torch.Tensor:
        calls.append(n)
        return torch.zeros(n, dtype=torch.float64)

    for n in (3, 3, 4, 4, 3):
        assert cache.get(("zeros", n), lambda: compute(n)).shape == (n,)
    assert calls == [3, 4, 4] and cache.computed == 3


# ------------------------------------------------------------------------------------ AdaMerging
def objective(pool: Any, taskpool: DummyTaskPool, batch: int, n: int) -> EntropyObjective:
    """The objective AdaMerging minimises over the dummy tasks' first ``n`` test inputs (one batch when batch = n),
    a function of the coefficients of ``pool``'s task vectors."""
    base = pool.base()
    vectors = [pool.finetuned(t) - base for t in pool.tasks]
    use = DataUse("test", n, labels=False, test_time_adaptation=True)
    batches = {t: taskpool.examples(t, use, batch, "adamerging") for t in TASKS}
    module = pool.model(base)
    return EntropyObjective(taskpool, module, module, MergedParams(base, vectors), batches)


@pytest.mark.parametrize("shape", [(4,), (2, 4)], ids=["task", "layer"])
def test_adamerging_coefficient_gradient_matches_finite_differences(shape: tuple[int, ...]) -> None:
    entropy = objective(float64_dummy_pool(), dummy_taskpool(), 32, 32)
    coefficients = 0.2 + 0.2 * torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    point = coefficients.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(entropy(point, 0), point)
    eps = 1e-6
    numeric = torch.zeros_like(coefficients)
    for index in range(coefficients.numel()):
        step = torch.zeros(coefficients.numel(), dtype=torch.float64)
        step[index] = eps
        step = step.reshape(shape)
        numeric.view(-1)[index] = (entropy(coefficients + step, 0) - entropy(coefficients - step, 0)) / (2 * eps)
    torch.testing.assert_close(gradient, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("granularity", ["task", "layer"])
def test_adamerging_lowers_the_entropy_it_minimises(granularity: str) -> None:
    pool, taskpool = dummy_pools()
    params = AdaMergingParams(granularity=granularity, steps=40, lr=1e-2, batch_size=64, examples_per_task=64)
    merged = AdaMerging(params).merge(pool, taskpool)
    base = pool.base()
    vectors = [pool.finetuned(t) - base for t in pool.tasks]
    ones = torch.ones(1, dtype=torch.float64)
    learned = pool_from(base, merged)
    assert objective(learned, taskpool, 64, 64)(ones, 0) < objective(pool, taskpool, 64, 64)(0.3 * ones, 0) - 1e-3
    assert not merged.allclose(base + ParamDict.weighted_sum(vectors, [0.3] * 4), atol=1e-6)


def pool_from(base: ParamDict, merged: ParamDict) -> ParamDictPool:
    """A pool whose single task vector is ``merged - base``: lambda = 1 gives ``merged``."""
    pool, _ = dummy_pools()
    return ParamDictPool(base=base, finetuned={"merged": merged}, model=pool.model, name="learned")


@pytest.mark.parametrize("granularity", ["task", "layer"])
def test_adamerging_without_steps_is_task_arithmetic_at_the_initial_coefficient(granularity: str) -> None:
    pool, taskpool = dummy_pools()
    merged = AdaMerging(AdaMergingParams(granularity=granularity, steps=0)).merge(pool, taskpool)
    assert merged.allclose(TaskArithmetic().merge(pool), rtol=0, atol=1e-6)


class CountingLinear(nn.Linear):
    """A Linear that counts the forward passes it computes."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        CountingLinear.calls += 1
        return super().forward(x)


def test_a_frozen_prefix_runs_once_per_batch_and_changes_no_value_or_gradient() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(CountingLinear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    batches = [torch.randn(6, 4), torch.randn(2, 4)]
    weight = module[2].weight.detach().clone().requires_grad_()

    def outputs_and_gradient() -> tuple[list[torch.Tensor], torch.Tensor]:
        outputs = [torch.func.functional_call(module, {"2.weight": weight}, (x,)) for x in batches]
        (gradient,) = torch.autograd.grad(sum(o.square().sum() for o in outputs), weight)
        return [o.detach() for o in outputs], gradient

    expected = outputs_and_gradient()
    CountingLinear.calls = 0
    with constant_outputs_reused(module, {"2.weight"}):
        for _ in range(3):
            got = outputs_and_gradient()
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert CountingLinear.calls == len(batches)  # the first Linear, which nothing moves, ran once per batch
    outputs_and_gradient()
    assert CountingLinear.calls == len(batches) * 2 and "forward" not in vars(module[0])  # restored on exit


# ------------------------------------------------------------------------- the data contract
class PoisonedTaskPool(DummyTaskPool):
    """The dummy task pool with every test label wrong: a method reading them would merge differently."""

    def _data(self, task: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super()._data(task, split)
        return (x, (y + 1) % 4) if split == "test" else (x, y)


def test_data_based_methods_never_read_test_labels() -> None:
    pool, clean = dummy_pools()
    poisoned = PoisonedTaskPool(clean.config)
    for method in (AdaMerging(AdaMergingParams(steps=5, lr=1e-2)), RegMean(RegMeanParams(split="test", examples_per_task=64))):
        assert method.merge(pool, poisoned).allclose(method.merge(pool, clean), rtol=0, atol=0), method.name
        assert method.data_use().split == "test" and not method.data_use().labels
    batch = poisoned.examples("alpha", AdaMerging().data_use(), 8, "adamerging")[0]
    with pytest.raises(DataError, match="without labels"):
        poisoned.labels(batch)
    with pytest.raises(ConfigError, match="test labels are never read"):
        poisoned.examples("alpha", DataUse("test", 8, labels=True), 8, "x")
    for cls, params in ((FisherMerging, FisherParams), (LoraHub, LoraHubParams)):
        with pytest.raises(ConfigError, match="split=test is not allowed"):
            cls(params(split="test"))


def test_the_examples_are_the_first_n_of_the_split() -> None:
    taskpool = dummy_taskpool()
    batches = taskpool.examples("beta", DataUse("validation", 10, labels=True), 4, "x")
    assert [taskpool.size(b) for b in batches] == [4, 4, 2]
    x, y = next(iter(taskpool.batches("beta", "validation", 10, 10)))
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), x)
    torch.testing.assert_close(torch.cat([taskpool.labels(b) for b in batches]), y)


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", ["fisher", "regmean", "adamerging"])
def test_a_task_pool_without_a_task_is_a_data_error(name: str) -> None:
    pool, _ = dummy_pools()
    method = {"fisher": FisherMerging, "regmean": RegMean, "adamerging": AdaMerging}[name]()
    with pytest.raises(DataError, match="needs data of task 'gamma' but task pool 'dummy' has none .*its tasks: alpha, beta"):
        method.merge(pool, dummy_taskpool(tasks=["alpha", "beta"]))


@pytest.mark.parametrize(("method", "split"), [(FisherMerging(), "train"), (RegMean(), "train"), (AdaMerging(AdaMergingParams(examples_per_task=300)), "test")])
def test_a_split_with_too_few_examples_is_a_data_error(method: Any, split: str) -> None:
    pool, _ = dummy_pools()
    wanted = method.data_use().examples_per_task
    message = f"needs {wanted} {split} examples of task 'alpha' but task pool 'dummy' has 100 .*at most 100"
    with pytest.raises(DataError, match=message):
        method.merge(pool, dummy_taskpool(examples=100))


def test_unknown_granularity_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="granularity='layers' is not valid. Did you mean 'layer'.*layer, task"):
        AdaMerging(AdaMergingParams(granularity="layers"))


@pytest.mark.parametrize("mode", ["lora", "llora"])
def test_regmean_refuses_adapter_factors_naming_the_delta_space(mode: str) -> None:
    pool, taskpool = dummy_pools()
    adapters = ParamDictPool(base=pool.base(), finetuned={t: pool.finetuned(t) for t in pool.tasks}, mode=mode, model=pool.model)
    with pytest.raises(ConfigError, match=f"mode {mode}.* holds adapter factors; set modelpool.merge_space=delta .*or choose a pool of mode full"):
        RegMean().merge(adapters, taskpool)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["method=adamerging", "method.granularity=layers"], "Did you mean 'layer'"),
        (["method=fisher", "taskpool.examples=100"], "needs 256 train examples of task 'alpha'"),
        (["method=regmean", "method.examples_per_task=600"], "needs 600 train examples of task 'alpha'"),
    ],
)
def test_bad_data_inputs_are_one_line_errors_on_the_cli(words: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "modelpool=dummy", f"output_dir={tmp_path / 'r'}", *words]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and len(err.splitlines()) == 1


# --------------------------------------------------------------------------------- the report
@pytest.mark.parametrize(
    ("words", "data"),
    [
        (["method=fisher", "method.examples_per_task=32"], {"split": "train", "examples_per_task": 32, "labels": True, "test_time_adaptation": False}),
        (["method=regmean"], {"split": "train", "examples_per_task": 256, "labels": False, "test_time_adaptation": False}),
        (["method=adamerging", "method.steps=10"], {"split": "test", "examples_per_task": None, "labels": False, "test_time_adaptation": True}),
        (["method=ties"], None),
    ],
)
def test_the_report_states_what_data_the_merge_read(words: list[str], data: Any, tmp_path: Path) -> None:
    assert main(["run", "modelpool=dummy", f"output_dir={tmp_path / 'r'}", *words]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["method"]["data"] == data


# ---------------------------------------------------------------------------- the mini world
@pytest.mark.slow
def test_merged_and_evaluated_on_the_reduced_mini_vision_pool(mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    cfg = compose(["method=simple_average", f"modelpool={reduced_configs(tmp_path, 'mini_clip_full', 'mini_vision7')}", "taskpool.limit=8"], RunSchema)
    pool, taskpool, _ = build(cfg, "cpu")
    pool = pool.subset(pool.tasks[:3])
    base = pool.base()
    for method in (FisherMerging(FisherParams(examples_per_task=8)), RegMean(RegMeanParams(examples_per_task=8)), AdaMerging(AdaMergingParams(steps=3))):
        merged = method.merge(pool, taskpool)
        merged.assert_finite(method.name)
        assert all(merged[k].shape == base[k].shape and merged[k].dtype == base[k].dtype for k in base)
        assert not merged.allclose(base)
        scores = taskpool.evaluate(pool.model(merged), pool.tasks, "test")
        assert set(scores) == set(pool.tasks) and all(s.n == 8 and 0 <= s.value <= 1 for s in scores.values())
