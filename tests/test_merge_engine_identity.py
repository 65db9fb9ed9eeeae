"""The chunked element-wise engine (issue 17) against naive whole-tensor implementations on random inputs.

The naive forms below follow the methods' definitions with whole tensors: every draw of a task's
tensor at once, the trim threshold from ``torch.kthvalue`` on all magnitudes concatenated, all
task vectors stacked, and each formula written out. The engine streams chunk by chunk, draws
once, selects the threshold from a sampled bracket and draws DARE's masks block by block, and must give equal
results (``torch.equal``: the same value in every entry) wherever the arithmetic is the same.
"""

from __future__ import annotations

import math

import pytest
import torch
from method_helpers import StaticPool
from philox_reference import dare_draws

from fusionbench.api.params import ParamDict
from fusionbench.methods import selection
from fusionbench.methods.dare import dare_merge
from fusionbench.methods.elementwise import CHUNK
from fusionbench.methods.selection import kth_smallest_magnitudes
from fusionbench.methods.simple_average import SimpleAverage
from fusionbench.methods.task_arithmetic import task_arithmetic_merge
from fusionbench.methods.ties import ties_merge

# a tensor over two chunks with a ragged end (not a multiple of 8 or 16), small ones and a scalar
SHAPES = {"a.weight": (3, CHUNK // 2 + 5), "a.bias": (13,), "b": (CHUNK + 3,), "c": (), "d": (CHUNK // 2 + 20_000,)}
# DARE draws in blocks of 4 x 8192 entries (four runs of 8192): every tensor ends in a partial block, "d" in one whose
# first two runs are whole, its third partial and its fourth empty
HALF = (torch.float16, torch.bfloat16)


def inputs(seed: int, dtype: torch.dtype, tasks: int) -> tuple[ParamDict, list[ParamDict]]:
    """A random base (std 0.02) and fine-tuned parameters (base + std 1e-3, every seventh entry unchanged)."""
    g = torch.Generator().manual_seed(seed)
    base = ParamDict({n: (0.02 * torch.randn(s, generator=g, dtype=torch.float64)).to(dtype) for n, s in SHAPES.items()})
    thetas = []
    for _ in range(tasks):
        theta = {}
        for name, shape in SHAPES.items():
            tau = 1e-3 * torch.randn(shape, generator=g, dtype=torch.float64)
            tau.view(-1)[::7] = 0.0
            theta[name] = (base[name].double() + tau).to(dtype)
        thetas.append(ParamDict(theta))
    return base, thetas


def accumulation(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in HALF else dtype


def naive_keep(seed: int, task: int, stream: int, shape: torch.Size, p: float, strict: bool) -> torch.Tensor:
    """DARE's keep mask of one whole tensor from the NumPy Philox (``philox_reference``): u > p, or u >= p, in float32."""
    draws = torch.from_numpy(dare_draws(seed, task, stream, math.prod(shape))).reshape(shape)
    bar = torch.tensor(p, dtype=torch.float32)
    return draws > bar if strict else draws >= bar


def naive_dare_task_arithmetic(base: ParamDict, thetas: list[ParamDict], p: float, seed: int, strict: bool, scale: float) -> ParamDict:
    """theta_0 + (lambda / (1 - p)) * sum_t m_t * tau_t, every mask drawn whole, the sum in task order (float32 for
    half types), rounded, then scaled and offset in the tensors' dtype."""
    merged = ParamDict()
    for stream, (name, t) in enumerate(base.items()):
        kept = torch.stack([(theta[name] - t) * naive_keep(seed, task, stream, t.shape, p, strict) for task, theta in enumerate(thetas)])
        merged[name] = in_task_order(kept) * (scale / (1.0 - p)) + t
    return merged


def naive_threshold(tau: dict[str, torch.Tensor], k: float, keep: str) -> torch.Tensor:
    """The trim threshold of one task vector: torch.kthvalue over all its magnitudes (float64 or float32)."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tau.values()) else torch.float32
    magnitudes = torch.cat([t.reshape(-1).abs().to(dtype) for t in tau.values()])
    total, kept = magnitudes.numel(), int(k * magnitudes.numel())
    if keep == "kthvalue":
        return torch.kthvalue(magnitudes, max(1, total - kept)).values
    return torch.kthvalue(magnitudes, total - kept + 1).values if kept else torch.tensor(math.inf, dtype=dtype)


def in_task_order(rows: torch.Tensor) -> torch.Tensor:
    """sum_t rows[t], added from the first task to the last in the accumulation dtype, rounded once to the rows'
    dtype (torch's sum over dim 0 may group the last entries of a row otherwise, by the CPU's vector width)."""
    total = rows[0].to(accumulation(rows.dtype))
    for row in rows[1:]:
        total = total + row.to(total.dtype)
    return total.to(rows.dtype)


def naive_disjoint(stack: torch.Tensor, merge_func: str) -> torch.Tensor:
    """Elect gamma = sign(sum_t tau_t); sum (or average) the entries whose sign is gamma's."""
    gamma = torch.sign(in_task_order(stack))
    agree = stack * gamma > 0
    total = in_task_order(torch.where(agree, stack, 0.0))
    return total if merge_func == "sum" else total / agree.sum(0).clamp(min=1)


def naive_ties(base: ParamDict, thetas: list[ParamDict], k: float, scale: float, merge_func: str, keep: str) -> ParamDict:
    taus = [{name: theta[name] - t for name, t in base.items()} for theta in thetas]
    thresholds = [naive_threshold(tau, k, keep) for tau in taus]
    merged = ParamDict()
    for name, t in base.items():
        trimmed = [torch.where(tau[name].abs().to(thr.dtype) >= thr, tau[name], 0.0) for tau, thr in zip(taus, thresholds)]
        merged[name] = naive_disjoint(torch.stack(trimmed), merge_func) * scale + t
    return merged


def naive_dare_ties(base: ParamDict, thetas: list[ParamDict], p: float, seed: int, strict: bool, scale: float, merge_func: str) -> ParamDict:
    merged = ParamDict()
    for stream, (name, t) in enumerate(base.items()):
        dropped = [(theta[name] - t) * naive_keep(seed, task, stream, t.shape, p, strict) / (1.0 - p) for task, theta in enumerate(thetas)]
        merged[name] = naive_disjoint(torch.stack(dropped), merge_func) * scale + t
    return merged


def assert_equal_or_close(ours: ParamDict, naive: ParamDict, exact: bool) -> None:
    for name in naive:
        assert ours[name].dtype == naive[name].dtype and ours[name].shape == naive[name].shape, name
        if exact:
            assert torch.equal(ours[name], naive[name]), f"{name}: largest difference {(ours[name] - naive[name]).abs().max()}"
        else:
            torch.testing.assert_close(ours[name], naive[name])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_task_arithmetic_and_simple_average_equal_the_naive_form(dtype: torch.dtype) -> None:
    base, thetas = inputs(4, dtype, tasks=5)
    arithmetic = task_arithmetic_merge(base, thetas, 0.3, finetuned=True)
    average = SimpleAverage().merge(StaticPool(base, {f"t{i}": theta for i, theta in enumerate(thetas)}))
    for name, t in base.items():
        expected = in_task_order(torch.stack([theta[name] - t for theta in thetas])) * 0.3 + t
        assert_equal_or_close(ParamDict({name: arithmetic[name]}), ParamDict({name: expected}), exact=dtype != torch.float16)
        mean = in_task_order(torch.stack([theta[name] for theta in thetas])) * (1 / 5)
        assert_equal_or_close(ParamDict({name: average[name]}), ParamDict({name: mean}), exact=dtype != torch.float16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("strict", [True, False])
def test_dare_task_arithmetic_equals_the_naive_form(dtype: torch.dtype, strict: bool) -> None:
    base, thetas = inputs(1, dtype, tasks=3)
    for p in (0.0, 0.3, 0.9):
        ours = dare_merge(base, thetas, p, 5, "task_arithmetic", 0.3, strict=strict, finetuned=True)
        assert_equal_or_close(ours, naive_dare_task_arithmetic(base, thetas, p, 5, strict, 0.3), exact=True)


# torch's half-precision sums over the task dimension group their terms by the width summed; float16
# results can therefore differ in the last bit between a chunk and a whole tensor (float32, float64 and
# bfloat16 sums do not), so float16 is held to closeness.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tasks", [1, 3, 8, 11])  # the kernels take tasks eight at a time: 11 is a whole group and a padded one
def test_ties_equals_the_naive_form(dtype: torch.dtype, tasks: int) -> None:
    base, thetas = inputs(2, dtype, tasks)
    for k, keep, merge_func in [(0.2, "kthvalue", "mean"), (0.05, "topk", "mean"), (0.5, "kthvalue", "sum"), (1.0, "kthvalue", "mean")]:
        ours = ties_merge(base, thetas, k, 0.7, merge_func, keep, finetuned=True)
        assert_equal_or_close(ours, naive_ties(base, thetas, k, 0.7, merge_func, keep), exact=dtype != torch.float16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("merge_func", ["mean", "sum"])
@pytest.mark.parametrize("tasks", [4, 11])  # eight tasks a sweep: one padded group; a whole group and a padded one
def test_dare_ties_equals_the_naive_form(dtype: torch.dtype, merge_func: str, tasks: int) -> None:
    base, thetas = inputs(3, dtype, tasks)
    for p, strict in [(0.5, True), (0.2, False)]:
        ours = dare_merge(base, thetas, p, 11, "ties", 0.9, merge_func, strict, finetuned=True)
        assert_equal_or_close(ours, naive_dare_ties(base, thetas, p, 11, strict, 0.9, merge_func), exact=dtype != torch.float16)


# ------------------------------------------------------------------------ the threshold's select
def magnitudes_of(vector: ParamDict) -> torch.Tensor:
    return torch.cat([t.reshape(-1).abs().to(torch.float64 if t.dtype == torch.float64 else torch.float32) for t in vector.values()])


def select_cases() -> list[ParamDict]:
    g = torch.Generator().manual_seed(4)
    spread = ParamDict(w=torch.randn(300, 700, generator=g), b=torch.randn(50, generator=g))
    tied = ParamDict(w=torch.full((200_000,), -0.5), b=torch.ones(3))  # one value everywhere: a bracket of ties
    steps = ParamDict(w=torch.randint(-3, 4, (120_000,), generator=g).double(), b=torch.zeros(9, dtype=torch.float64))
    with_nan = ParamDict(w=torch.randn(90_000, generator=g), b=torch.tensor([math.nan, math.inf, 0.0]))
    halves = ParamDict(w=torch.randn(70_000, generator=g).to(torch.bfloat16), b=torch.randn(40, generator=g).to(torch.float16))
    return [spread, tied, steps, with_nan, halves]


@pytest.mark.parametrize("case", range(5), ids=["spread", "tied", "steps", "nan", "half"])
def test_kth_smallest_magnitudes_is_kthvalue(case: int) -> None:
    vector = select_cases()[case]
    magnitudes = magnitudes_of(vector)
    total = magnitudes.numel()
    ranks = [1, 2, total // 3, total - total // 5, total - 3, total]
    finite = int(magnitudes.isfinite().sum())
    for rank in [r for r in ranks if r <= finite]:  # kthvalue's place for NaN is not specified
        assert kth_smallest_magnitudes([vector], [rank]) == [float(torch.kthvalue(magnitudes, rank).values)], rank


def test_the_joint_pass_gives_each_vector_its_own_rank() -> None:
    g = torch.Generator().manual_seed(8)
    origin = ParamDict(w=torch.randn(400, 300, generator=g))
    vectors = [ParamDict(w=origin["w"] + scale * torch.randn(400, 300, generator=g)) for scale in (1e-3, 2.0, 0.1)]
    ranks = [7, 60_000, 119_000]
    expected = [float(torch.kthvalue((v["w"] - origin["w"]).abs().reshape(-1), r).values) for v, r in zip(vectors, ranks)]
    assert kth_smallest_magnitudes(vectors, ranks, origin) == expected


def test_the_bracket_answers_ordinary_inputs_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_radix(*args: object) -> float:
        raise AssertionError("the radix select ran")

    monkeypatch.setattr(selection, "_radix_select", no_radix)
    vector = select_cases()[0]
    rank = magnitudes_of(vector).numel() * 4 // 5
    assert kth_smallest_magnitudes([vector], [rank]) == [float(torch.kthvalue(magnitudes_of(vector), rank).values)]


@pytest.mark.parametrize("bracket", [(0.0, 1e-9), (5.0, math.inf), (0.0, math.inf)], ids=["below", "above", "everything"])
def test_a_bracket_that_misses_or_overflows_falls_back_to_the_radix_select(
    monkeypatch: pytest.MonkeyPatch, bracket: tuple[float, float]
) -> None:
    calls = []
    radix = selection._radix_select

    def counted(*args: object) -> float:
        calls.append(1)
        return radix(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(selection, "_bracket", lambda *args: bracket)
    monkeypatch.setattr(selection, "_radix_select", counted)
    vector = select_cases()[0]
    rank = magnitudes_of(vector).numel() // 2
    assert kth_smallest_magnitudes([vector], [rank]) == [float(torch.kthvalue(magnitudes_of(vector), rank).values)]
    assert calls == [1]
