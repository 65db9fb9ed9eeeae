"""Would another random generator bring DARE to 3x the bandwidth floor? A measurement, not a method.

``python perf/dare_generator_probe.py [block|tower] [ROUNDS]`` times, interleaved and fastest of
ROUNDS (default 5), on ``merge_workload``'s eight ViT-B/16-shaped tasks with one torch thread:
the floor, the shipped DARE (p = 0.5, task arithmetic; masks from torch's mt19937 ``torch.rand``)
and a probe of the cheapest alternative this project found. The probe draws 32-bit integers from
NumPy's PCG64 (``BitGenerator.random_raw``, two draws a 64-bit word: about a sixth of
``torch.rand``'s cost a draw here), keeps an entry when its draw exceeds floor(p 2^32), and adds
the kept differences with one ``addcmul_``. It changes every mask, so it is not a DARE this
project ships; it prints each figure as a ratio to the floor and, for the probe, the share of
its time in each step (generate, compare, bool to float, difference, multiply-add).
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
import torch
from merge_workload import METHODS, bandwidth_floor, random_vit_pool

from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.methods.elementwise import CHUNK, chunks, task_vector_chunk

STEPS = ("generate", "compare", "to float", "difference", "multiply-add")


def pcg64_dare(pool: ModelPool, steps: dict[str, float], p: float = 0.5, scaling_factor: float = 0.3) -> ParamDict:
    """theta_0 + lambda sum_t m_t tau_t / (1 - p) with m_t from PCG64 32-bit draws; time per step into ``steps``."""
    base, thetas = pool.base(), [pool.finetuned(task) for task in pool.tasks]
    generator, bar = np.random.PCG64(0), np.uint32(int(p * 2**32))
    kept, keep, scratch = np.empty(CHUNK, dtype=bool), torch.empty(CHUNK), torch.empty(CHUNK)
    sums = {name: torch.zeros(tensor.shape) for name, tensor in base.items()}
    for theta in thetas:
        for name, total in sums.items():
            flat, target, flat_base = theta[name].reshape(-1), total.view(-1), base[name].reshape(-1)
            for part in chunks(flat.numel()):
                n, clock = part.stop - part.start, [time.perf_counter()]

                def lap(step: str) -> None:
                    clock.append(time.perf_counter())
                    steps[step] += clock[-1] - clock[-2]

                words = generator.random_raw((n + 1) // 2)
                lap("generate")
                np.greater(words.view(np.uint32)[:n], bar, out=kept[:n])
                lap("compare")
                keep[:n].copy_(torch.from_numpy(kept[:n]))
                lap("to float")
                tau = task_vector_chunk(scratch[:n], flat, flat_base, part)
                lap("difference")
                target[part].addcmul_(tau, keep[:n], value=1.0 / (1.0 - p))
                lap("multiply-add")
    return ParamDict({name: total.mul_(scaling_factor).add_(base[name]) for name, total in sums.items()})


def main(scope: str, rounds: int) -> None:
    torch.set_num_threads(1)
    pool = random_vit_pool(scope)
    steps = dict.fromkeys(STEPS, 0.0)
    calls: dict[str, Callable[[], object]] = {
        "floor": lambda: bandwidth_floor(pool, True),
        "shipped DARE": lambda: METHODS["dare"].merge(pool),
        "PCG64 probe": lambda: pcg64_dare(pool, steps),
    }
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    floor = best["floor"]
    for name, seconds in best.items():
        print(f"{name:14s} {seconds:8.3f} s  {seconds / floor:5.2f}x the floor")
    total = sum(steps.values())
    print("probe steps (all rounds): " + ", ".join(f"{step} {value / total:.0%}" for step, value in steps.items()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "block", int(sys.argv[2]) if len(sys.argv) > 2 else 5)
