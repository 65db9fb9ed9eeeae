"""Philox4x32-10 (Salmon et al., SC 2011) written out in NumPy, whole arrays at a time: the independent
expectation for DARE's draws (``fusionbench.methods.kernels``). Its known-answer vectors are Random123's."""

from __future__ import annotations

import numpy as np

LOW = np.uint64(0xFFFFFFFF)
MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
KEY_STEPS = (np.uint64(0x9E3779B9), np.uint64(0xBB67AE85))


def philox4x32(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Rows of four 32-bit counter words (N x 4) under a two-word key to rows of four random words."""
    c = [counters[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0, p1 = c[0] * MULTIPLIERS[0], c[2] * MULTIPLIERS[1]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & LOW, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & LOW]
        k0, k1 = (k0 + KEY_STEPS[0]) & LOW, (k1 + KEY_STEPS[1]) & LOW
    return np.stack(c, axis=1).astype(np.uint32)


def dare_draws(seed: int, task: int, stream: int, count: int, lanes: int = 8192) -> np.ndarray:
    """The float32 draws of the ``count`` entries of (task, tensor ``stream``): entry e of block b = e // (4 lanes), at
    offset r = e % (4 lanes) in it, is word r // w of the counter (b lanes + r % w, 0, stream, task) under the key (seed
    low word, seed high word), its top 24 bits times 2^-24; w = lanes for a whole block, ceil(n / 4) for a last block
    of n entries."""
    entries = np.arange(count, dtype=np.int64)
    block, offset = entries // (4 * lanes), entries % (4 * lanes)
    size = np.minimum(4 * lanes, count - block * 4 * lanes)
    w = np.where(size == 4 * lanes, lanes, (size + 3) // 4)
    counter = (block * lanes + offset % w).astype(np.uint64)
    counters = np.stack([counter & LOW, counter >> np.uint64(32), np.full_like(counter, stream), np.full_like(counter, task)], axis=1)
    words = philox4x32(counters, (seed & 0xFFFFFFFF, seed >> 32))[np.arange(count), offset // w]
    return ((words >> np.uint32(8)).astype(np.float64) / (1 << 24)).astype(np.float32)
