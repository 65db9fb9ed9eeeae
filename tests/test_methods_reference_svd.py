"""The SVD-based fusion methods (CART, TSV, Iso-C, Iso-CTS) against an independent reference: their formulas
computed by hand in numpy and scipy, and the properties the papers state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from method_helpers import MATRICES, SHAPES, assert_params_close, np_vectors, pool_from_vectors, random_pool

from fusionbench.api.params import ParamDict
from fusionbench.methods.cart import Cart, CartParams
from fusionbench.methods.iso_c import IsoC, IsoCParams
from fusionbench.methods.iso_cts import IsoCts, IsoCtsParams, subspace_sizes
from fusionbench.methods.simple_average import SimpleAverage
from fusionbench.methods.tsv import Tsv, TsvParams


def np_svd(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    return u, s, vt.T


# ----------------------------------------------------------------------------------------- CART
def test_cart_hand_computed() -> None:
    pool = random_pool(3, seed=14)
    thetas = [{k: v.numpy() for k, v in pool.finetuned(t).items()} for t in pool.tasks]
    expected = {}
    for k in SHAPES:
        avg = np.mean([th[k] for th in thetas], axis=0)
        if k in MATRICES:
            rank = max(1, math.floor(0.3 * min(avg.shape)))
            low = []
            for th in thetas:
                u, s, v = np_svd(th[k] - avg)
                low.append((u[:, :rank] * s[:rank]) @ v[:, :rank].T)
            expected[k] = avg + 1.7 * np.sum(low, axis=0)
        else:
            expected[k] = avg
    assert_params_close(Cart(CartParams(rho=0.3, scaling_factor=1.7)).merge(pool), expected)


@pytest.mark.parametrize("scaling_factor", [0.5, 2.0, 7.0])
def test_cart_with_full_rank_is_the_weight_average(scaling_factor: float) -> None:
    pool = random_pool(4, seed=15)
    merged = Cart(CartParams(rho=1.0, scaling_factor=scaling_factor)).merge(pool)
    assert merged.allclose(SimpleAverage().merge(pool), atol=1e-10)


# ------------------------------------------------------------------------------------------ TSV
def factorised_names(rule: str) -> tuple[str, ...]:
    """The tensors of SHAPES the SVD-based methods factorise under ``rule`` (all_2d adds the position embedding)."""
    return tuple(k for k, shape in SHAPES.items() if len(shape) == 2) if rule == "all_2d" else MATRICES


@pytest.mark.parametrize("rule", ["all_2d", "weights"])
def test_tsv_hand_computed_with_polar_orthogonalisation(rule: str) -> None:
    pool = random_pool(3, seed=16)
    base, taus = np_vectors(pool)
    expected = {}
    for k in SHAPES:
        if k in factorised_names(rule):
            rank = min(SHAPES[k]) // 3
            parts = [np_svd(tau[k]) for tau in taus]
            u_hat = np.concatenate([u[:, :rank] for u, _, _ in parts], axis=1)
            v_hat = np.concatenate([v[:, :rank] for _, _, v in parts], axis=1)
            s_hat = np.concatenate([s[:rank] for _, s, _ in parts])
            u_perp, v_perp = scipy.linalg.polar(u_hat)[0], scipy.linalg.polar(v_hat)[0]
            expected[k] = base[k] + 0.9 * (u_perp * s_hat) @ v_perp.T
        else:
            expected[k] = base[k] + 0.9 * np.mean([tau[k] for tau in taus], axis=0)
    assert_params_close(Tsv(TsvParams(scaling_factor=0.9, factorise=rule)).merge(pool), expected)


def test_tsv_with_one_task_returns_its_vector() -> None:
    pool = random_pool(1, seed=17)
    assert Tsv().merge(pool).allclose(pool.finetuned("t0"), atol=1e-10)


def test_tsv_keeps_orthogonal_low_rank_tasks_exactly() -> None:
    # Two rank-3 task matrices on disjoint row and column spaces: the top r/T = 3 components
    # of each are the whole matrix and orthogonalisation changes nothing, so TSV = the sum.
    g = torch.Generator().manual_seed(0)
    q_rows, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    q_cols, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    spectrum = torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64))
    taus = [q_rows[:, 3 * i : 3 * i + 3] @ spectrum @ q_cols[:, 3 * i : 3 * i + 3].T for i in range(2)]
    base = ParamDict({"layers.0.weight": torch.zeros(8, 6, dtype=torch.float64)})
    merged = Tsv().merge(pool_from_vectors(base, [ParamDict({"layers.0.weight": t}) for t in taus]))
    torch.testing.assert_close(merged["layers.0.weight"], taus[0] + taus[1])


# ---------------------------------------------------------------------------------------- Iso-C
def np_iso_c(taus: list[np.ndarray]) -> np.ndarray:
    u, s, v = np_svd(np.sum(taus, axis=0))
    return s.mean() * u @ v.T


@pytest.mark.parametrize("rule", ["all_2d", "weights"])
def test_iso_c_hand_computed_with_a_flat_spectrum(rule: str) -> None:
    pool = random_pool(3, seed=18)
    base, taus = np_vectors(pool)
    merged = IsoC(IsoCParams(scaling_factor=1.3, factorise=rule)).merge(pool)
    names = factorised_names(rule)
    expected = {
        k: base[k] + 1.3 * (np_iso_c([t[k] for t in taus]) if k in names else np.mean([t[k] for t in taus], axis=0))
        for k in SHAPES
    }
    assert_params_close(merged, expected)
    for k in names:
        singular = torch.linalg.svdvals((merged[k] - pool.base()[k]) / 1.3)
        summed = sum(torch.from_numpy(t[k]) for t in taus)
        torch.testing.assert_close(singular, torch.full_like(singular, float(torch.linalg.svdvals(summed).mean())))


# -------------------------------------------------------------------------------------- Iso-CTS
@pytest.mark.parametrize(
    ("rank", "tasks", "fraction", "rounding", "sizes"),
    [
        (768, 8, 0.8, "half_even", (616, 19)),  # floor(614.4) = 614; 154 / 8 = 19.25 -> 19 per task
        (768, 4, 0.8, "half_even", (616, 38)),  # 154 / 4 = 38.5: half to even -> 38 (the official code)
        (768, 4, 0.8, "half_up", (612, 39)),
        (6, 4, 0.8, "half_even", (6, 0)),  # 2 / 4 = 0.5 -> 0: common subspace only
        (6, 4, 0.8, "half_up", (2, 1)),
        (6, 3, 0.8, "half_even", (3, 1)),  # 2 / 3 rounds to 1
        (5, 4, 0.8, "half_even", (5, 0)),  # 1 / 4 rounds to 0: common subspace only
        (3, 4, 0.5, "half_up", (3, 0)),  # 2 / 4 rounds up to 1, but 4 tasks x 1 > rank 3
        (10, 2, 0.8, "half_even", (8, 1)),
        (8, 3, 1.0, "half_even", (8, 0)),
        (4, 1, 0.5, "half_even", (2, 2)),
        (14, 4, 0.5, "half_even", (6, 2)),  # 7 / 4 = 1.75 -> 2 either way
    ],
)
def test_iso_cts_subspace_sizes(rank: int, tasks: int, fraction: float, rounding: str, sizes: tuple[int, int]) -> None:
    assert subspace_sizes(rank, tasks, fraction, rounding) == sizes


def np_iso_cts(taus: list[np.ndarray], common: int, specific: int) -> np.ndarray:
    u, s, v = np_svd(np.sum(taus, axis=0))
    us, ss, vs = [u[:, :common]], [s[:common]], [v[:, :common]]
    for tau in taus:
        projector = u[:, :common] @ u[:, :common].T
        u_t, s_t, v_t = np_svd(tau - projector @ tau)
        us.append(u_t[:, :specific])
        ss.append(s_t[:specific])
        vs.append(v_t[:, :specific])
    u_star = scipy.linalg.polar(np.concatenate(us, axis=1))[0]
    v_star = scipy.linalg.polar(np.concatenate(vs, axis=1))[0]
    return np.concatenate(ss).mean() * u_star @ v_star.T


def test_iso_cts_hand_computed_with_a_flat_spectrum() -> None:
    shapes = {"layers.0.weight": (16, 12), "layers.0.bias": (16,)}
    pool = random_pool(3, seed=19, shapes=shapes)
    base, taus = np_vectors(pool)
    merged = IsoCts(IsoCtsParams(scaling_factor=1.5, common_fraction=0.5)).merge(pool)
    common, specific = 6, 2  # r = 12: floor(0.5 * 12) = 6 common, (12 - 6) / 3 = 2 per task
    expected_matrix = np_iso_cts([t["layers.0.weight"] for t in taus], common, specific)
    assert_params_close(
        merged,
        {
            "layers.0.weight": base["layers.0.weight"] + 1.5 * expected_matrix,
            "layers.0.bias": base["layers.0.bias"] + 1.5 * np.mean([t["layers.0.bias"] for t in taus], axis=0),
        },
    )
    singular = np.linalg.svd(expected_matrix, compute_uv=False)
    np.testing.assert_allclose(singular, np.full(12, singular.mean()), rtol=1e-9)


def test_iso_cts_with_only_a_common_subspace_is_iso_c() -> None:
    pool = random_pool(4, seed=20)
    merged = IsoCts(IsoCtsParams(scaling_factor=1.2, common_fraction=1.0)).merge(pool)
    assert merged.allclose(IsoC(IsoCParams(scaling_factor=1.2)).merge(pool), atol=1e-10)
