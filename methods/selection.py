"""The k-th smallest magnitude of a flattened task vector, exactly as ``torch.kthvalue`` finds it, at memory speed.

TIES (Yadav et al., NeurIPS 2023) trims each task vector at one threshold taken over all its
entries (the official code flattens the whole model), so the threshold is a selection over
tens of millions of magnitudes that must not be stored. :func:`kth_smallest_magnitude` makes it
in one pass: a strided sample of the magnitudes brackets the k-th one, the pass counts the
entries below the bracket and collects the few inside it (compiled code for float32 / float64 on
the CPU, ``ties_kernels.BracketCounts``; NumPy comparisons into boolean masks, counts and compaction
otherwise), and the answer is the right order statistic of those few. The counts prove the
bracket held; when it did not (an unlucky sample, NaN, a bracket crowded with ties) the radix
select answers instead, exactly as well, in two passes of 16-bit histograms.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from fusionbench.api.params import ParamDict
from fusionbench.methods import kernels, ties_kernels
from fusionbench.methods.elementwise import chunks, task_vector_chunk

DIGIT = 16  # bits of the magnitudes' patterns resolved per radix-select pass
PASS_CHUNK = 1 << 16  # entries per step of a pass over the magnitudes
SAMPLE_RUN = 16  # consecutive entries per sampled run: 64 bytes of float32, one cache line
SAMPLE_PER_ROOT = 32  # sample size = 32 sqrt(N): balances the sample's cost against the bracket's width
BRACKET_SIGMAS = 4.0  # half-width of the bracket, in standard deviations of the sample's order statistic


def magnitude_dtype(vector: ParamDict) -> torch.dtype:
    """float64 when the vector holds float64 tensors, else float32 (exact for every half type)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in vector.values()) else torch.float32


def _magnitudes(vector: ParamDict, origin: Optional[ParamDict], dtype: torch.dtype) -> Iterator[torch.Tensor]:
    """|tau| of every entry in ``dtype``, PASS_CHUNK at a time (one reused buffer a dtype); tau = vector - origin (the
    vector itself without origin), taken in the tensors' dtype."""
    width = min(PASS_CHUNK, max(t.numel() for t in vector.values()))
    buffers: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
    for name, tensor in vector.items():
        flat = tensor.detach().reshape(-1)
        base = None if origin is None else origin[name].detach().reshape(-1)
        key = (tensor.dtype, tensor.device)
        if key not in buffers:
            buffers[key] = torch.empty(width, dtype=tensor.dtype, device=tensor.device)
        buffer = buffers[key]
        for part in chunks(flat.numel(), PASS_CHUNK):
            yield task_vector_chunk(buffer[: part.stop - part.start], flat, base, part).abs_().to(dtype)


def _radix_select(vector: ParamDict, rank: int, origin: Optional[ParamDict], dtype: torch.dtype) -> float:
    """The ``rank``-th smallest magnitude: non-negative floats order as their bit patterns do, so the pattern is
    found DIGIT bits at a time, counted and never sorted (two passes for float32, four for float64)."""
    bits_dtype, width = (torch.int64, 64) if dtype == torch.float64 else (torch.int32, 32)
    prefix, mask = 0, (1 << DIGIT) - 1
    for shift in range(width - DIGIT, -1, -DIGIT):
        counts = torch.zeros(1 << DIGIT, dtype=torch.int64)
        for magnitudes in _magnitudes(vector, origin, dtype):
            bits = magnitudes.view(bits_dtype)
            if shift + DIGIT == width:  # the top digit (the sign bit of a magnitude is 0)
                digits = bits >> shift
            else:  # only the entries that share the digits found so far
                digits = (bits[(bits >> (shift + DIGIT)) == prefix] >> shift) & mask
            counts += torch.bincount(digits, minlength=1 << DIGIT).cpu()
        cumulative = counts.cumsum(0)
        digit = int(torch.searchsorted(cumulative, torch.tensor([rank]))[0])
        rank -= int(cumulative[digit] - counts[digit])
        prefix = (prefix << DIGIT) | digit
    return float(torch.tensor(prefix, dtype=bits_dtype).view(dtype))


def _bracket(vector: ParamDict, rank: int, total: int, origin: Optional[ParamDict], dtype: torch.dtype) -> tuple[float, float]:
    """(lo, hi) that hold the ``rank``-th smallest magnitude with high probability, from a sample of about
    SAMPLE_PER_ROOT sqrt(N) entries (every so many runs of SAMPLE_RUN consecutive entries of each tensor: whole
    cache lines); 0 and inf where the bracket reaches past the sample's ends."""
    every = max(1, total // int(SAMPLE_PER_ROOT * math.sqrt(total)))  # runs apart, SAMPLE_RUN entries a run
    parts = []
    for name, tensor in vector.items():
        usable = tensor.numel() // SAMPLE_RUN * SAMPLE_RUN
        picked = tensor.detach().reshape(-1)[:usable].view(-1, SAMPLE_RUN)[::every]
        if origin is not None:
            picked = picked - origin[name].detach().reshape(-1)[:usable].view(-1, SAMPLE_RUN)[::every]
        parts.append(picked.abs().to(dtype).reshape(-1))
    sample = torch.cat(parts).numpy()
    size, quantile = sample.size, rank / total
    centre, spread = quantile * size, BRACKET_SIGMAS * math.sqrt(size * quantile * (1 - quantile)) + 2
    low, high = math.floor(centre - spread), math.ceil(centre + spread)
    ends = [k - 1 for k in (low, high) if 1 <= k <= size]
    ordered = np.partition(sample, ends) if ends else sample  # both ends in one call: 2.4x faster than two
    return (float(ordered[low - 1]) if low >= 1 else 0.0), (float(ordered[high - 1]) if high <= size else math.inf)


def _bracketed_select(
    vectors: Sequence[ParamDict], ranks: Sequence[int], origin: Optional[ParamDict], dtypes: Sequence[torch.dtype]
) -> list[Optional[float]]:
    """Each vector's ``rank``-th smallest magnitude, found inside a sampled bracket in one joint pass (a chunk of the
    origin is read once for every vector), or None where the bracket missed it or held more than about 1/16 of the
    entries (then nothing more is collected for that vector)."""
    total = sum(t.numel() for t in vectors[0].values())
    brackets = [_bracket(vector, rank, total, origin, dtype) for vector, rank, dtype in zip(vectors, ranks, dtypes)]
    room = max(1 << 16, total // 16)
    if all(kernels.compiled(tensor, [vector[name] for vector in vectors]) for name, tensor in vectors[0].items()):
        below, filled, inside = _compiled_pass(vectors, brackets, room, origin)
    else:
        below, filled, inside = _chunked_pass(vectors, brackets, room, origin, dtypes)
    found: list[Optional[float]] = []
    for rank, count, size, candidates in zip(ranks, below, filled, inside):
        if size > room or not count < rank <= count + size:
            found.append(None)
        else:
            found.append(float(np.partition(candidates[:size], rank - count - 1)[rank - count - 1]))
    return found


def _compiled_pass(
    vectors: Sequence[ParamDict], brackets: Sequence[tuple[float, float]], room: int, origin: Optional[ParamDict]
) -> tuple[list[int], list[int], list[np.ndarray]]:
    """The joint pass in compiled code (``ties_kernels.BracketCounts``), tensor by tensor: the count below each bracket,
    how many magnitudes fell inside, and the first ``room`` of them."""
    dtype = next(iter(vectors[0].values())).detach().numpy().dtype
    counts = ties_kernels.BracketCounts([lo for lo, _ in brackets], [hi for _, hi in brackets], room, dtype)
    for name in vectors[0]:
        counts.add(None if origin is None else origin[name], [vector[name] for vector in vectors])
    return [int(count) for count in counts.below], [int(size) for size in counts.filled], list(counts.inside)


def _chunked_pass(
    vectors: Sequence[ParamDict], brackets: Sequence[tuple[float, float]], room: int, origin: Optional[ParamDict],
    dtypes: Sequence[torch.dtype],
) -> tuple[list[int], list[int], list[np.ndarray]]:
    """The joint pass chunk by chunk (torch differences, NumPy comparisons and compaction), as ``_compiled_pass``."""
    total = sum(t.numel() for t in vectors[0].values())
    below, filled = [0] * len(vectors), [0] * len(vectors)
    inside: list[list[np.ndarray]] = [[] for _ in vectors]
    width = min(PASS_CHUNK, total)
    under, within = np.empty(width, dtype=bool), np.empty(width, dtype=bool)
    streams = [_magnitudes(vector, origin, dtype) for vector, dtype in zip(vectors, dtypes)]
    for chunk in zip(*streams):
        for index, (magnitudes, (lo, hi)) in enumerate(zip(chunk, brackets)):
            if filled[index] > room:
                continue
            values = magnitudes.numpy()
            n = values.size
            np.less(values, lo, out=under[:n])
            np.less_equal(values, hi, out=within[:n])
            np.logical_xor(within[:n], under[:n], out=within[:n])  # lo <= |tau| <= hi (NaN in neither)
            below[index] += int(np.count_nonzero(under[:n]))
            inside[index].append(values[within[:n]])
            filled[index] += inside[index][-1].size
    return below, filled, [np.concatenate(parts) for parts in inside]


def kth_smallest_magnitudes(vectors: Sequence[ParamDict], ranks: Sequence[int], origin: Optional[ParamDict] = None) -> list[float]:
    """For each vector (all of one structure), its ``rank``-th smallest |entry| (1-indexed) over the flattened vector
    minus ``origin``: exactly what ``torch.kthvalue`` gives on the concatenated magnitudes, in float64 for a vector
    holding float64 tensors and float32 otherwise."""
    dtypes = [magnitude_dtype(vector) for vector in vectors]
    on_host = all(t.device.type == "cpu" for vector in vectors for t in vector.values())  # NumPy reads host memory
    if not vectors or not on_host or sum(t.numel() for t in vectors[0].values()) == 0:
        found: list[Optional[float]] = [None] * len(vectors)
    else:
        found = _bracketed_select(vectors, ranks, origin, dtypes)
    return [
        value if value is not None else _radix_select(vector, rank, origin, dtype)
        for value, vector, rank, dtype in zip(found, vectors, ranks, dtypes)
    ]


def kth_smallest_magnitude(vector: ParamDict, rank: int, origin: Optional[ParamDict] = None) -> float:
    """The ``rank``-th smallest |entry| of one vector (:func:`kth_smallest_magnitudes`)."""
    return kth_smallest_magnitudes([vector], [rank], origin)[0]
