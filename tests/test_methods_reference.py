"""Each fusion method against an independent reference: formulas computed by hand in numpy
here, peft's merge utilities for TIES and DARE, and the properties the papers state (the SVD-based
methods: test_methods_reference_svd.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from method_helpers import SHAPES, StaticPool, assert_params_close, dummy_pools, np_vectors, pool_from_vectors, random_params, random_pool
from philox_reference import dare_draws
from peft.utils import merge_utils

from fusionbench.api.method import Method
from fusionbench.api.params import ParamDict
from fusionbench.methods.awd import Awd, AwdParams, awd_objective, orthogonality_loss, redundant_vector
from fusionbench.methods.cart import Cart
from fusionbench.methods.common import is_weight_matrix
from fusionbench.methods.dare import Dare, DareParams, dare_merge, drop_and_rescale_, keep_mask
from fusionbench.methods.lorahub import LoraHub, LoraHubParams, lorahub_weights
from fusionbench.methods.simple_average import SimpleAverage
from fusionbench.methods.elementwise import combine
from fusionbench.methods.task_arithmetic import TaskArithmetic, TaskArithmeticParams
from fusionbench.methods.ties import Ties, TiesParams, disjoint_merge, ties_merge
from fusionbench.methods.tsv import Tsv


# ---------------------------------------------------------------- simple average, task arithmetic
def test_simple_average_is_the_mean_of_finetuned() -> None:
    pool = random_pool(3)
    expected = {k: np.mean([pool.finetuned(t)[k].numpy() for t in pool.tasks], axis=0) for k in SHAPES}
    assert_params_close(SimpleAverage().merge(pool), expected)


def test_task_arithmetic_formula_and_peft() -> None:
    pool = random_pool(3)
    base, taus = np_vectors(pool)
    merged = TaskArithmetic(TaskArithmeticParams(scaling_factor=0.4)).merge(pool)
    assert_params_close(merged, {k: base[k] + 0.4 * sum(tau[k] for tau in taus) for k in base})
    tensors = [torch.from_numpy(tau["layers.0.weight"]) for tau in taus]
    peft = merge_utils.task_arithmetic(tensors, torch.full((3,), 0.4, dtype=torch.float64))
    ours = combine(tensors, scale=0.4)  # theta_0 = 0
    torch.testing.assert_close(ours, peft)


# ----------------------------------------------------------------------------------------- TIES
def single_tensor_vectors(tasks: int, seed: int, shape: tuple[int, ...] = (10, 8)) -> list[ParamDict]:
    return [random_params(seed + i, {"w": shape}) for i in range(tasks)]


@pytest.mark.filterwarnings("ignore:The density 1.0:UserWarning")  # peft's note that k = 1 keeps all
@pytest.mark.parametrize("k", [0.1, 0.25, 0.5, 0.8, 1.0])
def test_ties_matches_peft_on_a_single_tensor(k: float) -> None:
    vectors = single_tensor_vectors(4, seed=3)
    base = ParamDict(w=torch.zeros(10, 8, dtype=torch.float64))
    tensors = [tau["w"] for tau in vectors]
    for tau in vectors:  # TIES of one vector is its trim: peft's magnitude pruning under peft's keep rule
        trimmed = ties_merge(base, [tau], k, 1.0, "mean", keep="topk")["w"]
        torch.testing.assert_close(trimmed, merge_utils.magnitude_based_pruning(tau["w"], k))
    expected = merge_utils.ties(tensors, torch.ones(4, dtype=torch.float64), density=k)
    torch.testing.assert_close(ties_merge(base, vectors, k, 1.0, "mean", keep="topk")["w"], expected)


def test_disjoint_merge_matches_peft_sign_election_and_merge() -> None:
    stacked = torch.stack([tau["w"] for tau in single_tensor_vectors(5, seed=9)])
    mask = merge_utils.calculate_majority_sign_mask(stacked, method="total")
    torch.testing.assert_close(disjoint_merge(stacked, "mean"), merge_utils.disjoint_merge(stacked, mask))


def np_ties(taus: list[dict[str, np.ndarray]], k: float, merge_func: str, keep_rule: str = "kthvalue") -> dict[str, np.ndarray]:
    """TIES by hand: global threshold per task, elect by mass, disjoint mean or sum."""
    trimmed = []
    for tau in taus:
        flat = np.concatenate([v.ravel() for v in tau.values()])
        keep = int(k * flat.size)
        if keep_rule == "kthvalue":  # the (N - int(k N))-th smallest magnitude; the smallest at k = 1
            threshold = np.sort(np.abs(flat))[max(1, flat.size - keep) - 1]
        else:
            threshold = np.sort(np.abs(flat))[::-1][keep - 1] if keep else np.inf
        trimmed.append({name: np.where(np.abs(v) >= threshold, v, 0.0) for name, v in tau.items()})
    out = {}
    for name in taus[0]:
        stack = np.stack([t[name] for t in trimmed])
        gamma = np.sign(stack.sum(axis=0))
        agree = (np.sign(stack) == gamma) & (stack != 0)
        total = np.where(agree, stack, 0.0).sum(axis=0)
        out[name] = total if merge_func == "sum" else total / np.maximum(agree.sum(axis=0), 1)
    return out


@pytest.mark.parametrize("keep", ["kthvalue", "topk"])
@pytest.mark.parametrize("merge_func", ["mean", "sum"])
@pytest.mark.parametrize("k", [0.2, 0.5])
def test_ties_hand_computed_with_global_threshold(merge_func: str, k: float, keep: str) -> None:
    pool = random_pool(3, seed=4)
    base, taus = np_vectors(pool)
    merged = Ties(TiesParams(k=k, scaling_factor=0.7, merge_func=merge_func, keep=keep)).merge(pool)
    expected = np_ties(taus, k, merge_func, keep)
    assert_params_close(merged, {name: base[name] + 0.7 * expected[name] for name in base})


def test_ties_threshold_is_global_not_per_tensor() -> None:
    big = ParamDict(a=torch.tensor([5.0, -6.0, 7.0, 8.0]), b=torch.tensor([0.1, -0.2, 0.3, 0.4]))
    zeros = big.map(torch.zeros_like)
    trimmed = ties_merge(zeros, [big], 0.5, 1.0, keep="topk")  # one task: its trim
    torch.testing.assert_close(trimmed["a"], big["a"])  # all four largest entries live in "a"
    torch.testing.assert_close(trimmed["b"], torch.zeros(4))
    official = ties_merge(zeros, [big], 0.5, 1.0)  # int(k N) + 1 = 5 kept: the fifth is b's 0.4
    torch.testing.assert_close(official["b"], torch.tensor([0.0, 0.0, 0.0, 0.4]))


def test_ties_zero_total_mass_merges_to_zero() -> None:
    vectors = [ParamDict(w=torch.tensor([1.0, 2.0])), ParamDict(w=torch.tensor([-1.0, 3.0]))]
    merged = ties_merge(ParamDict(w=torch.zeros(2)), vectors, 1.0, 1.0, "mean")
    torch.testing.assert_close(merged["w"], torch.tensor([0.0, 2.5]))


# ----------------------------------------------------------------------------------------- DARE
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dare_drop_matches_peft_random_pruning_given_its_mask(p: float) -> None:
    tensor = random_params(5, {"w": (30, 20)})["w"]  # no exact zeros, so peft's survivors are its non-zeros
    torch.manual_seed(123)
    pruned = merge_utils.random_pruning(tensor, density=1 - p, rescale=True)
    torch.testing.assert_close(drop_and_rescale_(tensor.clone(), pruned != 0, p), pruned)


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_dare_linear_and_ties_match_peft_when_masks_are_replayed(p: float) -> None:
    tensors = [tau["w"] for tau in single_tensor_vectors(3, seed=21)]

    def peft_masks() -> list[torch.Tensor]:  # peft draws one bernoulli per tensor from the global RNG
        torch.manual_seed(7)
        return [torch.bernoulli(torch.full_like(t, 1 - p)).bool() for t in tensors]

    dropped = [drop_and_rescale_(t.clone(), m, p) for t, m in zip(tensors, peft_masks())]
    torch.manual_seed(7)
    linear = merge_utils.dare_linear(tensors, torch.full((3,), 0.6, dtype=torch.float64), density=1 - p)
    torch.testing.assert_close(combine(dropped, scale=0.6), linear)
    torch.manual_seed(7)
    ties = merge_utils.dare_ties(tensors, torch.ones(3, dtype=torch.float64), density=1 - p)
    torch.testing.assert_close(disjoint_merge(torch.stack(dropped), "mean"), ties)


def test_dare_method_draws_philox_by_seed_task_tensor_and_entry() -> None:
    pool = random_pool(3, seed=2)
    base, taus = np_vectors(pool)
    expected = {k: base[k].copy() for k in base}
    for task, tau in enumerate(taus):
        for stream, (k, v) in enumerate(tau.items()):
            keep = dare_draws(11, task, stream, v.size).reshape(v.shape) > np.float32(0.4)
            expected[k] += 0.5 * np.where(keep, v / 0.6, 0.0)
    merged = Dare(DareParams(p=0.4, scaling_factor=0.5, seed=11)).merge(pool)
    assert_params_close(merged, expected)


def test_dare_is_reproducible_per_seed_and_leaves_the_global_rng_alone() -> None:
    pool = random_pool(3, seed=6)
    state = torch.random.get_rng_state()
    first = Dare(DareParams(seed=5)).merge(pool)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first.allclose(Dare(DareParams(seed=5)).merge(pool), rtol=0, atol=0)
    assert not first.allclose(Dare(DareParams(seed=6)).merge(pool))


def test_dare_statistics_drop_rate_and_unbiased_rescaling() -> None:
    tensor = torch.ones(200_000, dtype=torch.float64)
    keep = keep_mask(0, 0, 0, 0, tensor.numel(), tensor.numel(), 0.3)
    sigma = math.sqrt(0.3 * 0.7 / tensor.numel())
    assert abs(keep.double().mean().item() - 0.7) < 5 * sigma
    assert abs(drop_and_rescale_(tensor.clone(), keep, 0.3).mean().item() - 1.0) < 5 * sigma / 0.7


def test_dare_with_p_zero_is_task_arithmetic_or_ties() -> None:
    pool = random_pool(3, seed=8)
    base, taus = np_vectors(pool)
    ta = Dare(DareParams(p=0.0, scaling_factor=0.3)).merge(pool)
    assert ta.allclose(TaskArithmetic(TaskArithmeticParams(0.3)).merge(pool), atol=1e-12)
    ties = Dare(DareParams(p=0.0, base_method="ties", scaling_factor=0.8)).merge(pool)
    assert_params_close(ties, {k: base[k] + 0.8 * v for k, v in np_ties(taus, 1.0, "mean").items()})


def test_dare_ties_defaults_to_the_ties_scaling() -> None:
    pool = random_pool(2, seed=1)
    vectors = [pool.finetuned(t) - pool.base() for t in pool.tasks]
    merged = Dare(DareParams(p=0.2, base_method="ties", seed=3)).merge(pool)
    assert merged.allclose(dare_merge(pool.base(), vectors, 0.2, 3, "ties", 1.0), atol=1e-12)


# -------------------------------------------------------------------------------------- LoraHub
def test_lorahub_optimiser_finds_a_quadratic_minimum_reproducibly() -> None:
    target = np.array([0.5, -0.3, 1.0])

    def objective(w: np.ndarray) -> float:
        return float(((w - target) ** 2).sum())

    weights = lorahub_weights(objective, 3, 40, -1.5, 1.5, seed=0)
    np.testing.assert_allclose(weights, target, atol=0.05)
    np.testing.assert_array_equal(weights, lorahub_weights(objective, 3, 40, -1.5, 1.5, seed=0))


def test_lorahub_merges_a_bounded_combination_that_lowers_the_objective() -> None:
    pool, taskpool = dummy_pools()
    params = LoraHubParams(budget=12, examples_per_task=48, batch_size=16)
    merged = LoraHub(params).merge(pool, taskpool)
    base = pool.base()
    vectors = [pool.finetuned(t) - base for t in pool.tasks]
    design = torch.stack([tau.flatten() for tau in vectors], dim=1).double()
    weights = torch.linalg.lstsq(design, (merged - base).flatten().double().unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(design @ weights, (merged - base).flatten().double(), atol=1e-5, rtol=0)
    assert bool((weights.abs() <= 1.5 + 1e-6).all())

    def objective(params_: ParamDict, w: torch.Tensor) -> float:  # computed here from the raw batches
        losses = []
        for task in pool.tasks:
            batch_losses = [
                float(F.cross_entropy(x @ params_["weight"].T + params_["bias"], y))
                for x, y in taskpool.batches(task, "validation", 16, 48)
            ]
            losses.append(np.mean(batch_losses))
        return float(np.mean(losses)) + 0.05 * float(w.abs().mean())

    assert objective(merged, weights) <= objective(base, torch.zeros(4)) + 1e-6
    again = LoraHub(params).merge(pool, taskpool)
    assert again.allclose(merged, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ AWD
def np_orthogonality(taus: list[np.ndarray], delta: np.ndarray) -> float:
    a = [t - delta for t in taus]
    terms = [
        abs(a[i] @ a[j]) / (np.linalg.norm(a[i]) * np.linalg.norm(a[j]))
        for i in range(len(a))
        for j in range(len(a))
        if i != j
    ]
    return float(np.mean(terms))


def flat(params: ParamDict) -> np.ndarray:
    return params.flatten().double().numpy()


def test_awd_objective_global_and_per_tensor_by_hand() -> None:
    vectors = [random_params(40 + i, dtype=torch.float32) for i in range(3)]
    delta = random_params(99, dtype=torch.float32, scale=0.3)
    expected_global = np_orthogonality([flat(t) for t in vectors], flat(delta))
    assert float(orthogonality_loss(vectors, delta, "global")) == pytest.approx(expected_global, rel=1e-5)
    expected_per_tensor = np.mean(
        [
            np_orthogonality([t[k].double().numpy().ravel() for t in vectors], delta[k].double().numpy().ravel())
            for k in SHAPES
        ]
    )
    assert float(orthogonality_loss(vectors, delta, "per_tensor")) == pytest.approx(expected_per_tensor, rel=1e-5)
    total = float(awd_objective(vectors, delta, 0.1))
    assert total == pytest.approx(expected_global + 0.1 * np.linalg.norm(flat(delta)), rel=1e-5)


def test_awd_first_step_is_a_proximal_gradient_step() -> None:
    vectors = [random_params(50 + i, dtype=torch.float32) for i in range(3)]
    taus = [flat(t) for t in vectors]
    t_count, lr, alpha = 3, 0.5, 0.1
    grad_delta = np.zeros_like(taus[0])
    for i in range(t_count):  # d/d delta of mean_{i != j} |cos(tau_i - delta, tau_j - delta)| at delta = 0
        for j in range(t_count):
            if i != j:
                a, b = taus[i], taus[j]
                na, nb = np.linalg.norm(a), np.linalg.norm(b)
                cos = a @ b / (na * nb)
                d_a = b / (na * nb) - cos * a / na**2
                d_b = a / (na * nb) - cos * b / nb**2
                grad_delta -= np.sign(cos) * (d_a + d_b) / (t_count * (t_count - 1))
    step = -lr * grad_delta
    expected = max(0.0, 1 - lr * alpha / np.linalg.norm(step)) * step
    delta, history = redundant_vector(vectors, alpha=alpha, lr=lr, steps=1)
    np.testing.assert_allclose(flat(delta), expected, atol=1e-6)
    assert history[0] == pytest.approx(np_orthogonality(taus, np.zeros_like(taus[0])), rel=1e-5)


def correlated_vectors(tasks: int) -> tuple[ParamDict, list[ParamDict]]:
    """Task vectors of norm ~1.5 (CLIP-like, where the default alpha acts) sharing one component."""
    shared = random_params(7, dtype=torch.float32, scale=0.1)
    return shared, [shared + random_params(60 + i, dtype=torch.float32, scale=0.05) for i in range(tasks)]


@pytest.mark.parametrize("cosine", ["global", "per_tensor"])
def test_awd_objective_decreases_and_finds_the_shared_component(cosine: str) -> None:
    shared, vectors = correlated_vectors(4)
    delta, history = redundant_vector(vectors, alpha=0.1, lr=0.01, steps=300, cosine=cosine)
    if cosine == "global":  # smooth away from zero cosines: proximal descent is monotone
        assert all(later <= earlier + 1e-6 for earlier, later in zip(history, history[1:]))
    assert history[-1] < 0.8 * history[0]
    assert ParamDict(delta).cosine(shared) > 0.7


def test_awd_merges_the_disentangled_vectors_with_its_base_method() -> None:
    pool = pool_from_vectors(random_params(12, dtype=torch.float32), correlated_vectors(3)[1])
    base, taus = np_vectors(pool)
    vectors = [pool.finetuned(t) - pool.base() for t in pool.tasks]
    delta, _ = redundant_vector(vectors, 0.1, 0.01, 300)
    d = {k: v.double().numpy() for k, v in delta.items()}
    merged = Awd(AwdParams(scaling_factor=0.4)).merge(pool)
    assert_params_close(merged, {k: base[k] + 0.4 * sum(tau[k] - d[k] for tau in taus) for k in base}, atol=1e-5)
    assert any(np.abs(v).max() > 0 for v in d.values())


@pytest.mark.parametrize("base_method", ["task_arithmetic", "ties"])
def test_awd_with_huge_alpha_reduces_to_its_base_method(base_method: str) -> None:
    pool = random_pool(3, seed=13, dtype=torch.float32)
    merged = Awd(AwdParams(alpha=1e6, steps=20, base_method=base_method, scaling_factor=0.5, k=0.4)).merge(pool)
    if base_method == "ties":
        expected = Ties(TiesParams(k=0.4, scaling_factor=0.5)).merge(pool)
    else:
        expected = TaskArithmetic(TaskArithmeticParams(0.5)).merge(pool)
    assert merged.allclose(expected, rtol=0, atol=1e-6)


# -------------------------------------------------------------------------- shared properties
def test_weight_matrix_rule() -> None:
    matrix = torch.zeros(3, 4)
    assert is_weight_matrix("vision_model.encoder.layers.0.self_attn.q_proj.weight", matrix)
    assert is_weight_matrix("encoder.block.0.layer.0.SelfAttention.q.lora_A.default.weight", matrix)
    assert not is_weight_matrix("vision_model.embeddings.position_embedding.weight", matrix)
    assert not is_weight_matrix("shared.weight", matrix)
    assert not is_weight_matrix("text_projection.weight", matrix)
    assert not is_weight_matrix("layers.0.bias", torch.zeros(3))
    assert not is_weight_matrix("patch.weight", torch.zeros(3, 4, 2, 2))


ONE_MODEL_IN_ONE_MODEL_OUT: list[Method] = [
    SimpleAverage(),
    TaskArithmetic(TaskArithmeticParams(1.0)),
    Ties(TiesParams(k=1.0, scaling_factor=1.0)),
    Dare(DareParams(p=0.0, scaling_factor=1.0)),
    Dare(DareParams(p=0.0, base_method="ties", scaling_factor=1.0)),
    Cart(),
    Tsv(),
]


@pytest.mark.parametrize("method", ONE_MODEL_IN_ONE_MODEL_OUT, ids=lambda m: f"{m.name}-{m.params}")
def test_one_model_in_that_model_out(method: Method) -> None:
    pool = random_pool(1, seed=30)
    assert method.merge(pool).allclose(pool.finetuned("t0"), atol=1e-10)


IDENTICAL_IN_IDENTICAL_OUT: list[Method] = [
    SimpleAverage(),
    TaskArithmetic(TaskArithmeticParams(1.0 / 3)),
    Ties(TiesParams(k=1.0, scaling_factor=1.0)),
    Dare(DareParams(p=0.0, base_method="ties", scaling_factor=1.0)),
    Cart(),
]


@pytest.mark.parametrize("method", IDENTICAL_IN_IDENTICAL_OUT, ids=lambda m: f"{m.name}-{m.params}")
def test_identical_models_in_that_model_out(method: Method) -> None:
    base, theta = random_params(31), random_params(32)
    pool = StaticPool(base, {f"t{i}": theta for i in range(3)})
    assert method.merge(pool).allclose(theta, atol=1e-10)
