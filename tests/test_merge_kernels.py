"""Philox (``fusionbench.methods.philox``) against its known answers and a NumPy transcription, and the compiled
kernels (``fusionbench.methods.kernels``) against the torch path they replace (kernels switched off)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from philox_reference import dare_draws, philox4x32
from test_merge_engine_identity import assert_equal_or_close, in_task_order, inputs, naive_dare_task_arithmetic, naive_dare_ties, naive_ties

from fusionbench.methods import kernels, philox
from fusionbench.methods.dare import dare_merge, keep_mask
from fusionbench.methods.task_arithmetic import task_arithmetic_merge
from fusionbench.methods.ties import ties_merge

# Random123's known-answer vectors for Philox4x32-10: (counter, key) -> four words
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0), (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, words", KNOWN_ANSWERS)
def test_philox_gives_the_known_answers(counter: tuple[int, ...], key: tuple[int, int], words: tuple[int, ...]) -> None:
    assert tuple(int(w) for w in philox.philox4x32(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32))) == words
    assert tuple(int(w) for w in philox4x32(np.array([counter], dtype=np.uint32), key)[0]) == words


@pytest.mark.parametrize("seed", [0, 7, 2**40 + 3])
def test_draws_equal_the_numpy_transcription_from_any_block(seed: int) -> None:
    block = 4 * philox.LANES
    for size in (2 * block + 1003, 1003, 1, 6):  # whole blocks and a last one of 1003 entries (four runs of 251, the fourth 250)
        whole = dare_draws(seed, 2, 5, size)
        assert torch.equal(philox.uniforms(seed, 2, 5, 0, size, size), torch.from_numpy(whole)), size
    whole = dare_draws(seed, 2, 5, 2 * block + 1003)
    assert torch.equal(philox.uniforms(seed, 2, 5, block, block + 1003, 2 * block + 1003), torch.from_numpy(whole[block:]))
    assert torch.equal(philox.uniforms(seed, 2, 5, 0, 1000, 2 * block + 1003), torch.from_numpy(whole[:1000]))  # part of a block
    assert not torch.equal(philox.uniforms(seed, 3, 5, 0, 1003, 1003), torch.from_numpy(dare_draws(seed, 2, 5, 1003)))  # another task
    assert not torch.equal(philox.uniforms(seed, 2, 6, 0, 1003, 1003), torch.from_numpy(dare_draws(seed, 2, 5, 1003)))  # another tensor
    for start in (3, 500, philox.LANES):
        with pytest.raises(ValueError):
            philox.uniforms(seed, 2, 5, start, 10, 2 * block)


def test_a_counters_four_words_feed_four_runs_of_its_block() -> None:
    lanes = philox.LANES
    words = philox4x32(np.array([[lanes + 7, 0, 5, 2], [2 * lanes + 1, 0, 5, 2]], dtype=np.uint32), (3, 0))
    expected = ((words >> np.uint32(8)).astype(np.float64) / (1 << 24)).astype(np.float32)
    draws = philox.uniforms(3, 2, 5, 0, 8 * lanes + 10, 8 * lanes + 10).numpy()
    assert [draws[4 * lanes + k * lanes + 7] for k in range(4)] == list(expected[0])  # counter 7 of the second, whole block
    assert [draws[8 * lanes + k * 3 + 1] for k in range(3)] == list(expected[1][:3])  # counter 1 of the last block: 10 entries, w = 3


def test_a_keep_mask_keeps_each_entry_with_probability_one_minus_p() -> None:
    kept = keep_mask(0, 1, 2, 0, 400_000, 400_000, 0.3).double()
    assert abs(kept.mean().item() - 0.7) < 5 * (0.3 * 0.7 / 400_000) ** 0.5
    assert abs(kept[1:].mul(kept[:-1]).mean().item() - 0.49) < 0.01  # neighbours independent


@pytest.fixture
def torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "compiled", lambda base, vectors: False)


# The torch path sums over tasks with torch.sum(dim=0), which may group the last entries of a chunk by the CPU's
# vector width: float32 through it is held to closeness, the kernels (tested exactly elsewhere) to nothing less.
@pytest.mark.usefixtures("torch_path")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_torch_path_computes_what_the_kernels_compute(dtype: torch.dtype) -> None:
    base, thetas = inputs(5, dtype, tasks=4)
    for name, t in base.items():  # the torch path's sum runs in task order here too: equal
        expected = in_task_order(torch.stack([theta[name] - t for theta in thetas])) * 0.3 + t
        assert torch.equal(task_arithmetic_merge(base, thetas, 0.3, finetuned=True)[name], expected)
    assert_equal_or_close(ties_merge(base, thetas, 0.2, 0.7, "mean", finetuned=True), naive_ties(base, thetas, 0.2, 0.7, "mean", "kthvalue"), exact=False)
    assert_equal_or_close(
        dare_merge(base, thetas, 0.3, 4, "task_arithmetic", 0.3, finetuned=True), naive_dare_task_arithmetic(base, thetas, 0.3, 4, True, 0.3), exact=False
    )
    assert_equal_or_close(
        dare_merge(base, thetas, 0.3, 4, "ties", 0.9, finetuned=True), naive_dare_ties(base, thetas, 0.3, 4, True, 0.9, "mean"), exact=False
    )
