"""The data-free methods of issue 19 (WUDI, KnOTS, Consensus, PCB, Breadcrumbs) against independent
expectations: masks worked out by hand on small arrays, numpy re-derivations of the official formulas,
closed form against the paper's optimiser, and the one-task identities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from method_helpers import MATRICES, SHAPES, StaticPool, pool_from_vectors, random_params, random_pool
from mini_helpers import reduced_configs
from test_methods_reference import assert_params_close, np_ties, np_vectors

from fusionbench.api.errors import ConfigError, NonFiniteError, ParamMismatchError
from fusionbench.api.params import ParamDict
from fusionbench.cli.main import main
from fusionbench.config.compose import compose
from fusionbench.engine.build import build
from fusionbench.engine.merge import tensor_merge
from fusionbench.methods.breadcrumbs import Breadcrumbs, BreadcrumbsParams, breadcrumbs_mask
from fusionbench.methods.consensus import Consensus, ConsensusParams
from fusionbench.methods.knots import Knots, KnotsParams
from fusionbench.methods.pcb import Pcb, PcbParams
from fusionbench.methods.task_arithmetic import TaskArithmetic, TaskArithmeticParams
from fusionbench.methods.ties import Ties, TiesParams
from fusionbench.methods.wudi import Wudi, WudiParams, wudi_adam, wudi_closed_form, wudi_loss
from fusionbench.runner import RunSchema


def vector_pool(*rows: list[float]) -> StaticPool:
    """A pool with one 1-D tensor ``w``, base 0, whose task vectors are ``rows``."""
    base = ParamDict(w=torch.zeros(len(rows[0]), dtype=torch.float64))
    return pool_from_vectors(base, [ParamDict(w=torch.tensor(row, dtype=torch.float64)) for row in rows])


# ---------------------------------------------------------------------------------- Breadcrumbs
def test_breadcrumbs_drops_the_top_beta_and_bottom_gamma_of_a_row() -> None:
    row = torch.tensor([0.1, -0.9, 0.3, -0.4, 0.5, 0.6, -0.7, 0.8, 0.2, 1.0])
    # n = 10: int(10 * 0.1) = 1 largest (1.0) and int(10 * 0.5) = 5 smallest (0.1, 0.2, 0.3, -0.4, 0.5) dropped
    expected = torch.tensor([0.0, -0.9, 0.0, 0.0, 0.0, 0.6, -0.7, 0.8, 0.0, 0.0])
    torch.testing.assert_close(breadcrumbs_mask(row, 0.1, 0.5) * row, expected)
    torch.testing.assert_close(breadcrumbs_mask(row, 0.0, 0.0), torch.ones(10))


def test_breadcrumbs_masks_each_row_of_a_matrix_on_its_own_and_keeps_scalars() -> None:
    matrix = torch.tensor([[4.0, -1.0, 2.0, 3.0], [0.5, 0.25, -8.0, 1.0]])
    # per row of 4, beta = gamma = 0.25: the largest and the smallest entry of each row go
    expected = torch.tensor([[0.0, 0.0, 2.0, 3.0], [0.5, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(breadcrumbs_mask(matrix, 0.25, 0.25) * matrix, expected)
    three = torch.tensor([1.0, -3.0, 2.0])  # int(3 * 0.4) = 1 at either end: the middle magnitude, 2, survives
    torch.testing.assert_close(breadcrumbs_mask(three, 0.4, 0.4) * three, torch.tensor([0.0, 0.0, 2.0]))
    torch.testing.assert_close(breadcrumbs_mask(torch.tensor(2.5), 0.4, 0.4), torch.tensor(1.0))


def test_breadcrumbs_is_task_arithmetic_of_the_masked_vectors() -> None:
    pool = vector_pool([1.0, -2.0, 3.0, 4.0], [-4.0, 0.5, 1.0, 2.0])
    merged = Breadcrumbs(BreadcrumbsParams(beta=0.25, gamma=0.25, scaling_factor=0.5)).merge(pool)["w"]
    # task 0 keeps -2, 3 (drops 4 and 1); task 1 keeps 1, 2 (drops -4 and 0.5)
    torch.testing.assert_close(merged, 0.5 * torch.tensor([0.0, -2.0, 4.0, 2.0], dtype=torch.float64))
    whole = Breadcrumbs(BreadcrumbsParams(beta=0.0, gamma=0.0, scaling_factor=0.4)).merge(random_pool(3, seed=40))
    assert whole.allclose(TaskArithmetic(TaskArithmeticParams(0.4)).merge(random_pool(3, seed=40)), atol=1e-12)


def test_breadcrumbs_streamed_tensor_by_tensor_is_its_in_memory_merge() -> None:
    pool = random_pool(3, seed=46, dtype=torch.float32)
    method = Breadcrumbs()
    merge_one = tensor_merge(method, pool)
    streamed = {name: merge_one(name, tensor, [pool.finetuned(t)[name] for t in pool.tasks]) for name, tensor in pool.base().items()}
    assert ParamDict(streamed).allclose(method.merge(pool), rtol=0, atol=0)


def test_breadcrumbs_refuses_masks_that_drop_everything() -> None:
    with pytest.raises(ConfigError, match=r"beta=0.5 \+ gamma=0.5 drops every entry"):
        Breadcrumbs(BreadcrumbsParams(beta=0.5, gamma=0.5))


# ------------------------------------------------------------------------------------ Consensus
CONSENSUS_TASKS = ([1.0, 0.0, 2.0, -1.0], [1.0, 3.0, -2.0, 0.0], [0.0, 0.0, 1.0, 1.0])


@pytest.mark.parametrize(("k", "kept"), [(0, [2.0, 3.0, 1.0, 0.0]), (1, [2.0, 3.0, 1.0, 0.0]), (2, [2.0, 0.0, 1.0, 0.0]), (3, [0.0, 0.0, 1.0, 0.0]), (4, [0.0] * 4)])
def test_consensus_masks_by_hand(k: int, kept: list[float]) -> None:
    # tau_MTL = [2, 3, 1, 0]; |tau_t| > 0.5 |tau_MTL - tau_t|:
    # t0 [T, F, T, T], t1 [T, T, T, F (0 > 0)], t2 [F, F, T, T] -> counts [2, 1, 3, 2]
    merged = Consensus(ConsensusParams(k=k, tall_mask_lambda=0.5, scaling_factor=0.5)).merge(vector_pool(*CONSENSUS_TASKS))["w"]
    torch.testing.assert_close(merged, 0.5 * torch.tensor(kept, dtype=torch.float64))


def test_consensus_tall_masks_are_strict() -> None:
    # tau_MTL = [2, 1.5]; t0: |1| > |2 - 1| fails (a tie), |2| > |-0.5| holds; t1: both fail -> counts [0, 1]
    merged = Consensus(ConsensusParams(k=1, tall_mask_lambda=1.0, scaling_factor=1.0)).merge(vector_pool([1.0, 2.0], [1.0, -0.5]))
    torch.testing.assert_close(merged["w"], torch.tensor([0.0, 1.5], dtype=torch.float64))


def test_consensus_over_ties_masks_the_disjoint_sum() -> None:
    pool = random_pool(4, seed=41)
    base, taus = np_vectors(pool)
    mtl = np_ties(taus, 0.2, "sum")
    expected = {}
    for name in base:
        stacked = np.stack([tau[name] for tau in taus])
        counts = (np.abs(stacked) > 0.4 * np.abs(mtl[name] - stacked)).sum(axis=0)
        expected[name] = base[name] + 0.8 * np.where(counts >= 2, mtl[name], 0.0)
    merged = Consensus(ConsensusParams(base_method="ties", scaling_factor=0.8)).merge(pool)
    assert_params_close(merged, expected)


def test_consensus_with_k_zero_is_its_base_method() -> None:
    pool = random_pool(3, seed=42)
    ties = Consensus(ConsensusParams(k=0, base_method="ties", merge_func="mean", scaling_factor=0.7)).merge(pool)
    assert ties.allclose(Ties(TiesParams(k=0.2, scaling_factor=0.7)).merge(pool), atol=1e-12)
    assert Consensus(ConsensusParams(k=0)).merge(pool).allclose(TaskArithmetic().merge(pool), atol=1e-12)


# ------------------------------------------------------------------------------------------ PCB
def np_pcb(taus: np.ndarray, ratio: float, outlier: float = 1e-4) -> np.ndarray:
    """PCB by hand over the T x N flattened task vectors, with explicit sorting."""
    tasks, n = taus.shape
    magnitudes = np.abs(taus)
    ordered = np.sort(magnitudes, axis=1)
    clamped = np.clip(magnitudes, ordered[:, [int(n * outlier)]], ordered[:, [int(n * (1 - outlier)) - 1]])

    def normalize(x: np.ndarray) -> np.ndarray:
        low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
        return (x - low) / (high - low)

    scores = np.exp(tasks * normalize(clamped) ** 2) * np.tanh(taus * taus.sum(axis=0))
    weights = normalize(np.maximum(scores, np.sort(scores, axis=1)[:, [int(n * (1 - ratio))]]))
    return (np.sign(taus) * clamped * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-12)


def test_pcb_hand_computed_on_a_small_array() -> None:
    # N = 4, one task. Outlier clamp: |tau| into [sorted[int(4e-4)], sorted[int(3.9996) - 1]] = [0.1, 0.3], so
    # -0.4 becomes -0.3. Scores exp(1 * normalize^2) * tanh(tau^2) = [0.010, 0.431, 0.051, 0.244]; ratio 0.5
    # clamps them from below at sorted[int(4 * 0.5)] = 0.244, so after normalizing only the top one is above 0.
    pool = vector_pool([0.1, -0.4, 0.2, 0.3])
    merged = Pcb(PcbParams(ratio=0.5, scaling_factor=2.0)).merge(pool)["w"]
    torch.testing.assert_close(merged, torch.tensor([0.0, -0.6, 0.0, 0.0], dtype=torch.float64))
    # ratio 1: the floor is the lowest score (0.1's), the other three keep weights > 0 and merge to themselves
    merged = Pcb(PcbParams(ratio=1.0, scaling_factor=1.0)).merge(pool)["w"]
    torch.testing.assert_close(merged, torch.tensor([0.0, -0.3, 0.2, 0.3], dtype=torch.float64))


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.5])
def test_pcb_matches_the_official_formula_with_sorting(ratio: float) -> None:
    pool = random_pool(3, seed=43)
    base, taus = np_vectors(pool)
    flat = np.stack([np.concatenate([tau[name].ravel() for name in base]) for tau in taus])
    merged = np_pcb(flat, ratio)
    expected, offset = {}, 0
    for name, tensor in base.items():
        expected[name] = tensor + 0.9 * merged[offset : offset + tensor.size].reshape(tensor.shape)
        offset += tensor.size
    assert_params_close(Pcb(PcbParams(ratio=ratio, scaling_factor=0.9)).merge(pool), expected)


def test_pcb_with_identical_tasks_keeps_their_top_entries() -> None:
    theta = random_params(44)
    base = random_params(45)
    merged = Pcb(PcbParams(ratio=1.0)).merge(StaticPool(base, {"a": theta, "b": theta}))
    tau = (theta - base).flatten()
    kept = (merged - base).flatten()
    # ratio 1: every weight but the lowest score's is positive; the weighted mean of equal entries is the entry
    nonzero = kept != 0
    assert int(nonzero.sum()) == tau.numel() - 1
    magnitudes = tau.abs().sort().values
    clamped = torch.sign(tau) * tau.abs().clamp(magnitudes[0], magnitudes[int(tau.numel() * (1 - 1e-4)) - 1])
    torch.testing.assert_close(kept[nonzero], clamped[nonzero])


# ----------------------------------------------------------------------------------------- WUDI
def matrices(tasks: int, shape: tuple[int, int], seed: int, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(tasks)]


@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_wudi_closed_form_equals_the_optimiser(dtype: torch.dtype, atol: float) -> None:
    taus = matrices(3, (6, 4), seed=50, dtype=dtype)
    closed = wudi_closed_form(taus, ridge=1e-12)
    optimised = wudi_adam(taus, lr=1e-2, steps=2000)
    torch.testing.assert_close(optimised, closed, atol=atol, rtol=0)


def test_wudi_closed_form_is_the_minimum() -> None:
    taus = matrices(4, (5, 7), seed=51)  # n = 7 > m: G has full rank 7 only with several tasks
    closed = wudi_closed_form(taus, ridge=1e-12).requires_grad_(True)
    loss = wudi_loss(closed, torch.stack(taus))
    (gradient,) = torch.autograd.grad(loss, closed)
    assert float(gradient.abs().max()) < 1e-8 * float(loss.detach())
    # by hand, 2 x 1 task vectors: G_t = |tau_t|^2 = 1 / w_t, so tau * sum_t 1 = sum_t tau_t: the mean
    a, b = torch.tensor([[1.0], [0.0]], dtype=torch.float64), torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    expected = (a + b) / 2
    torch.testing.assert_close(wudi_closed_form([a, b], ridge=1e-15), expected)


def test_wudi_with_one_task_returns_it() -> None:
    pool = random_pool(1, seed=52)
    merged = Wudi().merge(pool)
    for name in MATRICES:
        torch.testing.assert_close(merged[name], pool.finetuned("t0")[name], atol=1e-5, rtol=0)
    adam = Wudi(WudiParams(solver="adam", steps=3)).merge(pool)  # starts at tau_1, the minimiser: stays
    for name in MATRICES:
        torch.testing.assert_close(adam[name], pool.finetuned("t0")[name], atol=1e-12, rtol=0)


def test_wudi_leaves_other_tensors_at_the_base_or_averages_them() -> None:
    pool = random_pool(3, seed=53)
    base, taus = np_vectors(pool)
    official = Wudi(WudiParams(scaling_factor=0.7)).merge(pool)
    mean = Wudi(WudiParams(scaling_factor=0.7, others="mean")).merge(pool)
    for name in SHAPES:
        if name in MATRICES:
            expected = base[name] + 0.7 * wudi_closed_form([torch.from_numpy(tau[name]) for tau in taus]).numpy()
            np.testing.assert_allclose(official[name].numpy(), expected, atol=1e-12)
            np.testing.assert_allclose(mean[name].numpy(), expected, atol=1e-12)
        else:  # biases and the position embedding
            np.testing.assert_allclose(official[name].numpy(), base[name])
            np.testing.assert_allclose(mean[name].numpy(), base[name] + 0.7 * np.mean([tau[name] for tau in taus], axis=0))


def test_wudi_of_zero_task_vectors_is_zero() -> None:
    zeros = [torch.zeros(3, 2, dtype=torch.float64)] * 2
    torch.testing.assert_close(wudi_closed_form(zeros), zeros[0])
    one = [torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)]  # the zero task has no weight
    torch.testing.assert_close(wudi_closed_form(one, ridge=1e-15), one[1])


# ---------------------------------------------------------------------------------------- KnOTS
def lora_pool(vectors: list[ParamDict]) -> StaticPool:
    """A pool of mode lora holding dense per-layer updates (base 0), as merge_space=delta gives."""
    base = vectors[0].map(torch.zeros_like)
    return StaticPool(base, {f"t{i}": base + tau for i, tau in enumerate(vectors)}, mode="lora")


def low_rank_updates(tasks: int, seed: int, rank: int = 2) -> list[ParamDict]:
    g = torch.Generator().manual_seed(seed)
    shapes = {"layer0.delta_weight": (8, 6), "layer1.delta_weight": (5, 9)}
    return [
        ParamDict({k: torch.randn(m, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, n, generator=g, dtype=torch.float64) for k, (m, n) in shapes.items()})
        for _ in range(tasks)
    ]


@pytest.mark.parametrize("params", [KnotsParams(scaling_factor=1.0, base_method="task_arithmetic"), KnotsParams(scaling_factor=1.0, k=1.0)], ids=["ta", "ties-k1"])
def test_knots_with_one_task_returns_its_update(params: KnotsParams) -> None:
    updates = low_rank_updates(1, seed=60)
    assert Knots(params).merge(lora_pool(updates)).allclose(updates[0], atol=1e-12)


def test_knots_task_arithmetic_on_aligned_factors_is_the_plain_sum() -> None:
    # orthogonal updates (disjoint row and column spaces) and any updates alike: U S sum_t V_t^T = sum_t Delta W_t
    g = torch.Generator().manual_seed(61)
    rows, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    cols, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    orthogonal = [ParamDict({"layer0.delta_weight": rows[:, 2 * i : 2 * i + 2] @ cols[:, 2 * i : 2 * i + 2].T}) for i in range(3)]
    for updates in (orthogonal, low_rank_updates(3, seed=62)):
        merged = Knots(KnotsParams(scaling_factor=1.0, base_method="task_arithmetic")).merge(lora_pool(updates))
        assert merged.allclose(ParamDict.weighted_sum(updates, [1.0] * len(updates)), atol=1e-10)


def test_knots_ties_hand_computed_on_the_aligned_factors() -> None:
    updates = low_rank_updates(3, seed=63)
    factors: list[dict[str, np.ndarray]] = [{} for _ in updates]
    bases = {}
    for name in updates[0]:
        concat = np.concatenate([u[name].numpy() for u in updates], axis=1)
        u, s, vt = np.linalg.svd(concat, full_matrices=False)
        kept = s > 1e-5
        bases[name] = u[:, kept]
        aligned = s[kept, None] * vt[kept]
        for i, factor in enumerate(np.split(aligned, len(updates), axis=1)):
            factors[i][name] = factor
    merged = np_ties(factors, 0.2, "mean")
    expected = {name: 0.6 * bases[name] @ merged[name] for name in updates[0]}
    assert_params_close(Knots().merge(lora_pool(updates)), expected)


def test_knots_refuses_full_pools_and_adapter_factors() -> None:
    with pytest.raises(ConfigError, match=r"supports pools of mode lora or llora, but pool 'static' has mode full"):
        Knots().merge(random_pool(2))
    factors = ParamDict({"layer.lora_A.weight": torch.ones(2, 4), "layer.lora_B.weight": torch.zeros(3, 2)})
    with pytest.raises(ConfigError, match=r"holds as LoRA factors \(e.g. layer.lora_A.weight\).*set modelpool.merge_space=delta"):
        Knots().merge(StaticPool(factors, {"a": factors, "b": factors}, mode="llora"))


def test_knots_on_the_dummy_pool_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(tmp_path / "home"))
    assert main(["run", "method=knots", "modelpool=dummy", f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "mode lora or llora" in err[0] and "merge_space=delta" in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "llora"])
def test_knots_merges_and_evaluates_on_tiny_clip_pools_in_delta_space(mode: str, mini_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(mini_home))
    pool_yaml = reduced_configs(tmp_path, f"mini_clip_{mode}", "mini_vision7")
    words = ["method=knots", f"modelpool={pool_yaml}", "taskpool.limit=8"]
    adapter_pool, _, _ = build(compose(words, RunSchema), "cpu")
    pool, taskpool, method = build(compose([*words, "modelpool.merge_space=delta"], RunSchema), "cpu")
    pool = pool.subset(pool.tasks[:3])
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    task = pool.tasks[0]
    with torch.no_grad():  # the dense update of a task is its adapter, folded (exact for L-LoRA too)
        dense = pool.model(pool.finetuned(task)).vision(pixels)
        torch.testing.assert_close(adapter_pool.model(adapter_pool.finetuned(task)).vision(pixels), dense, atol=1e-5, rtol=0)
    merged = method.merge(pool)
    merged.assert_finite()
    assert {k: v.shape for k, v in merged.items()} == {k: v.shape for k, v in pool.base().items()}
    scores = taskpool.evaluate(pool.model(merged), pool.tasks, "test")
    assert set(scores) == set(pool.tasks) and all(s.n == 8 for s in scores.values())
    one = Knots(KnotsParams(scaling_factor=1.0, base_method="task_arithmetic")).merge(pool.subset([task]))
    assert one.allclose(pool.finetuned(task), atol=1e-5)
    out = tmp_path / "run"
    assert main(["run", *words, "modelpool.merge_space=delta", f"output_dir={out}"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["method"]["name"] == "knots" and set(report["tasks"]) == set(adapter_pool.tasks)


def test_list_methods_states_the_official_conventions_of_the_new_methods(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one table row per parameter
    assert main(["list", "methods"]) == 0
    rows = [[cell.strip() for cell in row.split("│")[1:4]] for row in capsys.readouterr().out.splitlines()]
    for expected in (["wudi", "solver", "closed_form"], ["wudi", "others", "base"], ["wudi", "lr", "1e-05"], ["wudi", "steps", "300"],
                     ["knots", "k", "0.2"], ["knots", "scaling_factor", "0.6"], ["knots", "rank_tol", "1e-05"],
                     ["consensus", "k", "2"], ["consensus", "merge_func", "sum"], ["pcb", "ratio", "0.1"],
                     ["pcb", "outlier_ratio", "0.0001"], ["breadcrumbs", "gamma", "0.85"]):
        assert expected in rows, expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_knots_keeps_names_shapes_and_dtypes_and_leaves_its_inputs_alone(dtype: torch.dtype) -> None:
    updates = [update.map(lambda t: t.to(dtype)) for update in low_rank_updates(3, seed=64)]
    pool = lora_pool(updates)
    before = [update.clone() for update in updates]
    merged = Knots().merge(pool)
    assert {k: (v.shape, v.dtype) for k, v in merged.items()} == {k: (v.shape, v.dtype) for k, v in updates[0].items()}
    merged.assert_finite()
    assert all(pool.finetuned(f"t{i}").allclose(update, rtol=0, atol=0) for i, update in enumerate(before))


def test_knots_names_mismatched_keys_and_non_finite_tasks() -> None:
    updates = low_rank_updates(2, seed=65)
    extra = ParamDict(updates[1])
    extra["layer2.delta_weight"] = torch.zeros(3, 2, dtype=torch.float64)
    base = updates[0].map(torch.zeros_like)
    with pytest.raises(ParamMismatchError, match="task 't1'.*layer2.delta_weight"):
        Knots().merge(StaticPool(base, {"t0": updates[0], "t1": extra}, mode="lora"))
    broken = ParamDict(updates[1])
    broken["layer0.delta_weight"] = broken["layer0.delta_weight"].clone()
    broken["layer0.delta_weight"][1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="task 't1' contain NaN or Inf in tensor 'layer0.delta_weight'"):
        Knots().merge(StaticPool(base, {"t0": updates[0], "t1": broken}, mode="lora"))


@pytest.mark.parametrize("base_method", ["ties", "task_arithmetic"])
def test_knots_of_a_layer_no_task_updates_leaves_it_at_the_base(base_method: str) -> None:
    updates = low_rank_updates(2, seed=66)
    for update in updates:
        update["layer1.delta_weight"] = torch.zeros_like(update["layer1.delta_weight"])  # no singular value above rank_tol
    merged = Knots(KnotsParams(base_method=base_method)).merge(lora_pool(updates))
    torch.testing.assert_close(merged["layer1.delta_weight"], torch.zeros(5, 9, dtype=torch.float64))
    assert merged["layer0.delta_weight"].abs().sum() > 0


@pytest.mark.parametrize(
    ("words", "fix"),
    [
        (["method=wudi", "method.solver=sgd"], "Choose one of: adam, closed_form"),
        (["method=consensus", "method.tall_mask_lambda=0"], "it must lie in (0.0, 100.0]"),
        (["method=pcb", "method.ratio=1.5"], "it must lie in (0.0, 1.0]"),
        (["method=breadcrumbs", "method.beta=0.3", "method.gamma=0.7"], "their sum must be below 1"),
        (["method=knots", "method.base_method=dare"], "Choose one of: task_arithmetic, ties"),
    ],
)
def test_bad_parameters_are_one_error_line_from_the_cli(words: list[str], fix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(tmp_path / "home"))
    assert main(["run", *words, "modelpool=dummy", f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: method ") and fix in err[0]
