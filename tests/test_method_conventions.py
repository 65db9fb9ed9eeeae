"""The official implementations' conventions (issue 17), each on inputs built to hit it, and the merge
engine's SVD helper and element-wise accumulation at the edges (chunk boundaries, forced SVD failures)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from method_helpers import StaticPool, pool_from_vectors, random_pool
from philox_reference import dare_draws
from test_methods_reference import np_ties
from test_methods_reference_svd import np_iso_cts, np_svd

from fusionbench.api.errors import MethodError, NonFiniteError
from fusionbench.api.params import ParamDict
from fusionbench.cli.main import main
from fusionbench.engine.merge import checked_merge
from fusionbench.methods import linalg
from fusionbench.methods.dare import Dare, DareParams
from fusionbench.methods.elementwise import CHUNK
from fusionbench.methods.iso_c import IsoC, IsoCParams
from fusionbench.methods.iso_cts import IsoCts, IsoCtsParams
from fusionbench.methods.simple_average import SimpleAverage
from fusionbench.methods.task_arithmetic import TaskArithmetic, TaskArithmeticParams
from fusionbench.methods.ties import Ties, TiesParams, kth_smallest_magnitude, ties_merge
from fusionbench.methods.tsv import Tsv, TsvParams


def one_tensor(values: list[float], dtype: torch.dtype = torch.float64) -> ParamDict:
    return ParamDict(w=torch.tensor(values, dtype=dtype))


# ----------------------------------------------------------------------------------------- TIES
TIED = [0.1, -0.2, 0.3, -0.4, 0.5, 0.6, 1.0, -1.0, 2.0, -3.0]  # N = 10, k = 0.2: int(k N) = 2


def kept(vector: ParamDict, k: float, keep: str) -> list[float]:
    """The entries one task's TIES keeps (with one task, TIES returns its trimmed vector)."""
    trimmed = ties_merge(vector.map(torch.zeros_like), [vector], k, 1.0, keep=keep)["w"]
    return sorted(float(x) for x in trimmed if x != 0)


def test_ties_official_rule_keeps_everything_tied_with_the_kthvalue_threshold() -> None:
    magnitudes = torch.tensor(TIED).abs()
    threshold = float(torch.kthvalue(magnitudes, 10 - 2).values)  # the official code's threshold
    assert threshold == 1.0
    assert kept(one_tensor(TIED), 0.2, "kthvalue") == [-3.0, -1.0, 1.0, 2.0]  # int(k N) + 1 = 3, plus the tie
    assert kept(one_tensor(TIED), 0.2, "topk") == [-3.0, 2.0]  # int(k N) = 2


def test_ties_official_rule_at_the_extremes() -> None:
    assert kept(one_tensor(TIED), 1.0, "kthvalue") == sorted(TIED)  # the official code raises; we keep all
    assert kept(one_tensor(TIED), 1.0, "topk") == sorted(TIED)
    assert kept(one_tensor(TIED), 0.05, "kthvalue") == [-3.0]  # int(k N) = 0: the official rule keeps the largest
    assert kept(one_tensor(TIED), 0.05, "topk") == []


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_kth_smallest_magnitude_is_kthvalue(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    vector = ParamDict(a=torch.randn(70_000, generator=g).to(dtype), b=torch.randn(40, 30, generator=g).to(dtype))
    vector["b"][:5] = 0.0  # exact zeros and (in bfloat16) many ties
    magnitudes = torch.cat([t.reshape(-1).abs().to(torch.float64 if dtype == torch.float64 else torch.float32) for t in vector.values()])
    for rank in [1, 2, 7_000, 35_000, magnitudes.numel() - 1, magnitudes.numel()]:
        assert kth_smallest_magnitude(vector, rank) == float(torch.kthvalue(magnitudes, rank).values)


def test_ties_on_fine_tuned_parameters_equals_ties_on_task_vectors_across_chunks() -> None:
    shapes = {"big.weight": (300, 250), "big.bias": (300,)}  # 75,000 entries: two chunks
    assert 300 * 250 > CHUNK
    pool = random_pool(3, seed=5, shapes=shapes, dtype=torch.float32)
    base = pool.base()
    taus = [{k: (pool.finetuned(t)[k] - base[k]).double().numpy() for k in shapes} for t in pool.tasks]
    merged = Ties(TiesParams(k=0.3, scaling_factor=0.6)).merge(pool)
    expected = np_ties(taus, 0.3, "mean")
    for name in shapes:
        np.testing.assert_allclose(merged[name].double().numpy(), base[name].double().numpy() + 0.6 * expected[name], atol=1e-6)


# ----------------------------------------------------------------------------------------- DARE
@pytest.mark.parametrize("strict", [True, False])
def test_dare_keeps_an_entry_whose_draw_equals_p_only_when_not_strict(strict: bool) -> None:
    draws = torch.from_numpy(dare_draws(4, 0, 0, 12))  # what DARE draws with seed 4 for the first tensor of the first task
    p = float(draws[5])  # a float32 value: the draw of entry 5 is exactly p
    tau = torch.arange(1.0, 13.0, dtype=torch.float64)
    pool = pool_from_vectors(one_tensor([0.0] * 12), [ParamDict(w=tau)])
    merged = Dare(DareParams(p=p, scaling_factor=1.0, seed=4, strict=strict)).merge(pool)["w"]
    keep = draws > p if strict else draws >= p
    torch.testing.assert_close(merged, torch.where(keep, tau / (1 - p), 0.0))
    assert bool(merged[5] == 0) == strict


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dare_draws_its_masks_in_float32_whatever_the_dtype(dtype: torch.dtype) -> None:
    tau = torch.ones(CHUNK + 100)  # two chunks, drawn in one sequence
    pool = pool_from_vectors(ParamDict(w=torch.zeros_like(tau).to(dtype)), [ParamDict(w=tau.to(dtype))])
    merged = Dare(DareParams(p=0.5, scaling_factor=0.5, seed=9)).merge(pool)["w"]
    draws = torch.from_numpy(dare_draws(9, 0, 0, tau.numel()))
    torch.testing.assert_close(merged.float(), (draws > 0.5).float())  # kept entries: 0.5 * 1 / (1 - 0.5) = 1


@pytest.mark.parametrize("strict", [True, False])
def test_dare_ties_draws_each_mask_by_task_and_tensor(strict: bool) -> None:
    shapes = {"big.weight": (300, 250), "big.bias": (300,)}  # the weight spans two chunks
    pool = random_pool(3, seed=13, shapes=shapes)
    base = pool.base()
    dropped = []
    for task_index, task in enumerate(pool.tasks):  # the draws of (task, tensor in key order), each tensor's whole
        dropped.append({})
        for stream, name in enumerate(shapes):
            tau = pool.finetuned(task)[name] - base[name]
            draws = torch.from_numpy(dare_draws(2, task_index, stream, tau.numel())).reshape(tau.shape)
            dropped[-1][name] = torch.where(draws > 0.4 if strict else draws >= 0.4, tau / 0.6, 0.0).numpy()
    expected = np_ties(dropped, 1.0, "mean")
    merged = Dare(DareParams(p=0.4, base_method="ties", scaling_factor=0.9, seed=2, strict=strict)).merge(pool)
    for name in shapes:
        np.testing.assert_allclose(merged[name].numpy(), base[name].numpy() + 0.9 * expected[name], atol=1e-12)


# ------------------------------------------------------------------------------------------ TSV
def test_tsv_keeps_no_component_when_tasks_exceed_the_rank() -> None:
    shapes = {"layers.0.weight": (5, 2), "layers.0.bias": (5,)}  # rank 2 < 3 tasks
    pool = random_pool(3, seed=6, shapes=shapes)
    base = {k: v.numpy() for k, v in pool.base().items()}
    taus = [{k: pool.finetuned(t)[k].numpy() - base[k] for k in base} for t in pool.tasks]
    official = Tsv().merge(pool)
    np.testing.assert_allclose(official["layers.0.weight"].numpy(), base["layers.0.weight"], atol=0)
    parts = [np_svd(tau["layers.0.weight"]) for tau in taus]  # version 1: one component per task
    u_perp = scipy.linalg.polar(np.concatenate([u[:, :1] for u, _, _ in parts], axis=1))[0]
    v_perp = scipy.linalg.polar(np.concatenate([v[:, :1] for _, _, v in parts], axis=1))[0]
    expected = base["layers.0.weight"] + (u_perp * np.array([s[0] for _, s, _ in parts])) @ v_perp.T
    np.testing.assert_allclose(Tsv(TsvParams(min_rank=1)).merge(pool)["layers.0.weight"].numpy(), expected, atol=1e-9)
    for merged in (official, Tsv(TsvParams(min_rank=1)).merge(pool)):
        np.testing.assert_allclose(merged["layers.0.bias"].numpy(), base["layers.0.bias"] + np.mean([t["layers.0.bias"] for t in taus], axis=0))


# -------------------------------------------------------------------------------------- Iso-CTS
@pytest.mark.parametrize(("rounding", "common", "specific"), [("half_even", 10, 0), ("half_up", 6, 1)])
def test_iso_cts_rounds_a_half_way_subspace_size(rounding: str, common: int, specific: int) -> None:
    shapes = {"layers.0.weight": (12, 10)}  # r = 10, T = 4, f = 0.8: (10 - 8) / 4 = 0.5 per task
    pool = random_pool(4, seed=7, shapes=shapes)
    base = pool.base()["layers.0.weight"].numpy()
    taus = [pool.finetuned(t)["layers.0.weight"].numpy() - base for t in pool.tasks]
    merged = IsoCts(IsoCtsParams(scaling_factor=1.0, rounding=rounding)).merge(pool)["layers.0.weight"]
    np.testing.assert_allclose(merged.numpy(), base + np_iso_cts(taus, common, specific), atol=1e-9)


# --------------------------------------------------------------------- 2-D position embeddings
@pytest.mark.parametrize("method", [IsoC(IsoCParams(scaling_factor=1.0)), IsoCts(IsoCtsParams(scaling_factor=1.0))], ids=["iso_c", "iso_cts"])
def test_a_2d_position_embedding_is_factorised_by_default_and_averaged_by_the_weights_rule(method: object) -> None:
    name = "vision_model.embeddings.position_embedding.weight"
    pool = random_pool(3, seed=8, shapes={name: (7, 5)})
    taus = [pool.finetuned(t)[name] - pool.base()[name] for t in pool.tasks]
    official = method.merge(pool)[name] - pool.base()[name]  # type: ignore[attr-defined]
    singular = torch.linalg.svdvals(official)
    torch.testing.assert_close(singular, torch.full_like(singular, float(singular.mean())))  # isotropic: factorised
    method.params.factorise = "weights"  # type: ignore[attr-defined]
    averaged = method.merge(pool)[name] - pool.base()[name]  # type: ignore[attr-defined]
    torch.testing.assert_close(averaged, sum(taus) / 3)


# ------------------------------------------------------------------------------------ SVD helper
def test_svd_factorises_the_wide_orientation(monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[tuple[int, ...]] = []
    real = torch.linalg.svd

    def recording(matrix: torch.Tensor, *args: object, **kwargs: object) -> object:
        shapes.append(tuple(matrix.shape))
        return real(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", recording)
    tall = torch.randn(9, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, s, v = linalg.svd(tall)
    assert shapes == [(4, 9)] and u.shape == (9, 4) and v.shape == (4, 4)
    torch.testing.assert_close((u * s) @ v.mT, tall)
    torch.testing.assert_close(u.mT @ u, torch.eye(4, dtype=torch.float64))


def failing_svd(fails: str) -> object:
    """torch.linalg.svd that fails to converge for float32 inputs ("float32") or for every input ("all")."""
    real = torch.linalg.svd

    def svd(matrix: torch.Tensor, *args: object, **kwargs: object) -> object:
        if fails == "all" or matrix.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge (forced)")
        return real(matrix, *args, **kwargs)

    return svd


@pytest.mark.parametrize("fails", ["float32", "all"])
def test_svd_retries_in_float64_then_with_gesvd(monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    matrix = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    expected = np.linalg.svd(matrix.double().numpy(), compute_uv=False)
    monkeypatch.setattr(torch.linalg, "svd", failing_svd(fails))
    u, s, v = linalg.svd(matrix)
    assert u.dtype == s.dtype == v.dtype == torch.float32
    np.testing.assert_allclose(s.numpy(), expected, rtol=1e-6)
    torch.testing.assert_close((u * s) @ v.mT, matrix, atol=1e-5, rtol=0)


def test_an_svd_that_never_converges_is_one_error_naming_the_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gesvd(*args: object, **kwargs: object) -> object:
        raise scipy.linalg.LinAlgError("SVD did not converge (forced)")

    monkeypatch.setattr(torch.linalg, "svd", failing_svd("all"))
    monkeypatch.setattr(scipy.linalg, "svd", no_gesvd)
    pool = random_pool(2, seed=9, dtype=torch.float32)
    with pytest.raises(MethodError, match=r"^tensor 'layers.0.weight' cannot be factorised: the SVD of its 8x6 task matrix "
                                          r"did not converge in float32, in float64 or with the gesvd driver"):
        checked_merge(IsoC(), pool)


# ------------------------------------------------------------------- element-wise accumulation
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_task_arithmetic_and_average_accumulate_across_chunks(dtype: torch.dtype) -> None:
    shapes = {"big.weight": (300, 250), "big.bias": (300,)}
    pool = random_pool(3, seed=10, shapes=shapes, dtype=dtype)
    base = pool.base()
    thetas = [pool.finetuned(t) for t in pool.tasks]
    for name in shapes:  # what version 1 computed: differences in the dtype, summed by torch.stack(...).sum(0)
        summed = torch.stack([theta[name] - base[name] for theta in thetas]).sum(dim=0)
        torch.testing.assert_close(TaskArithmetic(TaskArithmeticParams(0.4)).merge(pool)[name], base[name] + 0.4 * summed)
        mean = torch.stack([theta[name].double() for theta in thetas]).mean(dim=0).to(dtype)
        torch.testing.assert_close(SimpleAverage().merge(pool)[name], mean)


def test_a_merge_that_overflows_from_finite_inputs_names_the_method() -> None:
    base = ParamDict(w=torch.zeros(3), b=torch.zeros(2))
    big = ParamDict(w=torch.tensor([3e38, 1.0, 2.0]), b=torch.zeros(2))
    pool = StaticPool(base, {"t0": big, "t1": big})
    with pytest.raises(NonFiniteError, match=r"merged by method 'task_arithmetic'.*NaN or Inf in tensor 'w' \(1 of 2 tensors\)"):
        checked_merge(TaskArithmetic(TaskArithmeticParams(1.0)), pool)


@pytest.mark.parametrize("method", [TaskArithmetic(), Ties(), Dare()], ids=lambda m: m.name)
def test_a_non_finite_base_is_named_when_the_output_is_not_finite(method: object) -> None:
    pool = random_pool(2, seed=12)
    base = ParamDict(pool.base())
    base["layers.0.bias"] = base["layers.0.bias"].clone()
    base["layers.0.bias"][2] = float("nan")
    finetuned = {task: pool.finetuned(task) for task in pool.tasks}  # finite: theta_t - theta_0 is NaN only through the base
    with pytest.raises(NonFiniteError, match=r"^base parameters contain NaN or Inf in tensor 'layers.0.bias' \(1 of 5 tensors\)"):
        method.merge(StaticPool(base, finetuned))  # type: ignore[attr-defined]


def test_list_methods_names_every_convention_with_its_default(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one table row per parameter
    assert main(["list", "methods"]) == 0
    rows = capsys.readouterr().out.splitlines()
    for method, parameter, default in [("ties", "keep", "kthvalue"), ("dare", "strict", "True"), ("tsv", "factorise", "all_2d"),
                                       ("tsv", "min_rank", "0"), ("iso_c", "factorise", "all_2d"), ("iso_cts", "factorise", "all_2d"),
                                       ("iso_cts", "rounding", "half_even"), ("awd", "keep", "kthvalue")]:
        assert any([cell.strip() for cell in row.split("│")[1:4]] == [method, parameter, default] for row in rows), (method, parameter)


def test_ties_on_half_precision_trims_ties_at_the_threshold_exactly() -> None:
    values = [0.125, -0.25, 0.375, -0.5, 0.625, 0.75, 1.0, -1.0, 2.0, -3.0]  # exact in bfloat16; threshold 1.0, tied
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        assert kept(one_tensor(values, dtype), 0.2, "kthvalue") == [-3.0, -1.0, 1.0, 2.0]
        assert kept(one_tensor(values, dtype), 0.2, "topk") == [-3.0, 2.0]
