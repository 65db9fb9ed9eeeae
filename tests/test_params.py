"""ParamDict algebra against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fusionbench.api.errors import ParamMismatchError
from fusionbench.api.params import ParamDict


def pd(**tensors: list) -> ParamDict:
    return ParamDict({k: torch.tensor(v, dtype=torch.float32) for k, v in tensors.items()})


A = pd(w=[[1.0, 2.0], [3.0, 4.0]], b=[1.0, -1.0])
B = pd(w=[[0.0, 1.0], [1.0, 0.0]], b=[2.0, 2.0])


def test_add_subtract_scale_by_hand() -> None:
    assert (A + B).allclose(pd(w=[[1.0, 3.0], [4.0, 4.0]], b=[3.0, 1.0]))
    assert (A - B).allclose(pd(w=[[1.0, 1.0], [2.0, 4.0]], b=[-1.0, -3.0]))
    assert (A * 0.5).allclose(pd(w=[[0.5, 1.0], [1.5, 2.0]], b=[0.5, -0.5]))
    assert (2 * A).allclose(A + A)
    assert (-A).allclose(A * -1)


def test_weighted_sum_and_mean_by_hand() -> None:
    out = ParamDict.weighted_sum([A, B], [2.0, -1.0])
    assert out.allclose(pd(w=[[2.0, 3.0], [5.0, 8.0]], b=[0.0, -4.0]))
    assert ParamDict.mean([A, B]).allclose(pd(w=[[0.5, 1.5], [2.0, 2.0]], b=[1.5, 0.5]))


def test_operations_do_not_mutate_inputs() -> None:
    before = A.clone()
    _ = A + B, A - B, A * 3, ParamDict.mean([A, B]), A.flatten()
    assert A.allclose(before, rtol=0, atol=0)


def test_flatten_is_key_ordered_and_unflatten_inverts_it() -> None:
    assert A.flatten().tolist() == [1.0, 2.0, 3.0, 4.0, 1.0, -1.0]
    vector = torch.arange(6, dtype=torch.float32)
    back = A.unflatten(vector)
    assert back["w"].tolist() == [[0.0, 1.0], [2.0, 3.0]] and back["b"].tolist() == [4.0, 5.0]
    assert A.unflatten(A.flatten()).allclose(A, rtol=0, atol=0)
    with pytest.raises(ParamMismatchError, match="cannot unflatten"):
        A.unflatten(torch.zeros(5))


def test_cosine_global_and_per_tensor_by_hand() -> None:
    a, b = A.flatten(), B.flatten()
    expected = float(a @ b) / (math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)))
    assert A.cosine(B) == pytest.approx(expected)
    per = A.cosine_per_tensor(B)
    assert per["w"] == pytest.approx(5.0 / (math.sqrt(30.0) * math.sqrt(2.0)))
    assert per["b"] == pytest.approx(0.0)
    assert A.cosine(A * 0) == 0.0  # zero vector: defined as 0


def test_allclose_tolerance() -> None:
    nudged = A + pd(w=[[1e-4, 0.0], [0.0, 0.0]], b=[0.0, 0.0])
    assert not A.allclose(nudged, rtol=0, atol=1e-6)
    assert A.allclose(nudged, rtol=0, atol=1e-3)
    assert not A.allclose(pd(w=[[1.0]]))  # different keys: not close, no exception


def test_mismatched_keys_are_named() -> None:
    other = pd(w=[[0.0, 0.0], [0.0, 0.0]], c=[0.0, 0.0])
    with pytest.raises(ParamMismatchError, match=r"missing in the other: b.*only in the other: c"):
        A + other


def test_mismatched_shapes_are_named() -> None:
    other = pd(w=[[0.0, 0.0, 0.0]], b=[0.0, 0.0])
    with pytest.raises(ParamMismatchError, match=r"first w: \(2, 2\) vs \(1, 3\)"):
        A - other


def test_assert_finite_names_the_tensor() -> None:
    with pytest.raises(ValueError, match="'b'"):
        pd(w=[[0.0]], b=[float("nan")]).assert_finite()


def test_safetensors_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p.safetensors"
    A.save(path, metadata={"kind": "test"})
    loaded = ParamDict.load(path)
    assert isinstance(loaded, ParamDict) and loaded.allclose(A, rtol=0, atol=0)
