"""DARE: Drop And REscale (Yu et al., "Language Models are Super Mario", ICML 2024).

Each task-vector entry is dropped with probability p (Bernoulli mask) and the survivors
are rescaled by 1 / (1 - p), so every entry keeps its expectation:
tau'_t = m_t * tau_t / (1 - p), m_t ~ Bernoulli(1 - p). The tau'_t are then merged by
``base_method="task_arithmetic"`` (theta_0 + lambda * sum_t tau'_t) or ``base_method="ties"`` (sign
election and disjoint merge of the tau'_t; DARE replaces TIES's magnitude trim, as in
peft's ``dare_ties``).

Masks come from one ``torch.Generator`` seeded with ``seed``, drawn on the CPU in float32
(whatever the parameters' dtype) task by task (pool order) and tensor by tensor (key order):
results are reproducible per seed, identical across devices, and the global RNG is never
touched. An entry is kept when its draw u > p (``strict=True``: the official code's
``rand > p``, the default since version 2) or u >= p (``strict=False``, version 1); they
differ only where u equals p exactly, and with p = 0 strict drops the rare draws u = 0 (2^-24
of the entries), as the official code does.
Defaults: p = 0.5, base_method task_arithmetic, lambda = the base method's default (0.3 for task
arithmetic, 1.0 for TIES), merge_func mean, seed 0, strict. No dropped task vector is stored
(``fusionbench.methods.elementwise``): with task arithmetic they are summed in place, chunk by
chunk; with TIES each tensor is merged chunk by chunk from every task at once, each task's
masks drawn from the generator state recorded, in a first pass over the draws, at that task
and tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import check_choice, load_inputs
from fusionbench.methods.elementwise import CHUNK, accumulation_dtype, chunks, finite_or_blame, task_vector_chunk
from fusionbench.methods.ties import BASE_METHODS, MERGE_FUNCS, base_scaling, disjoint_merge


def keep_mask(count: int, p: float, generator: torch.Generator, strict: bool = True, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``count`` entries, 1.0 where u > p (``strict``) or u >= p, else 0.0; u ~ U[0, 1) drawn in float32 on the CPU.

    Float arithmetic (u - p > 0 is u > p; u >= p is u minus the float below p > 0), several
    times cheaper than a boolean mask.
    """
    bar = torch.tensor(p, dtype=torch.float32)
    bar = bar if strict else torch.nextafter(bar, torch.tensor(-1.0))
    draws = torch.rand(count, generator=generator, dtype=torch.float32, out=out)
    return draws.sub_(bar).clamp_(min=0).sign_()


def drop_and_rescale_(tensor: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """In place: entries where ``keep`` is 0 become 0 (a NaN stays NaN); the others are divided by (1 - p)."""
    return tensor.mul_(keep.to(tensor.device)).div_(1.0 - p)


def _draw_states(base: ParamDict, tasks: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """The generator's state at the first draw of each (task, tensor), in draw order (task, tensor, entry).

    mt19937 cannot jump ahead, so the draws are made and dropped; what is kept is one state a
    tensor and task (5 KiB each), not the masks.
    """
    generator, draws = torch.Generator().manual_seed(seed), torch.empty(CHUNK, dtype=torch.float32)
    states: list[dict[str, torch.Tensor]] = []
    for _ in range(tasks):
        states.append({})
        for name, tensor in base.items():
            states[-1][name] = generator.get_state()
            for part in chunks(tensor.numel()):
                torch.rand(part.stop - part.start, generator=generator, out=draws[: part.stop - part.start])
    return states


def dare_sums(base: ParamDict, vectors: Sequence[ParamDict], p: float, seed: int, strict: bool, finetuned: bool) -> dict[str, torch.Tensor]:
    """sum_t m_t * tau_t / (1 - p) per tensor, accumulated in place in the masks' draw order (task, tensor, chunk)."""
    generator = torch.Generator().manual_seed(seed)
    sums = {name: torch.zeros(tensor.shape, dtype=accumulation_dtype(tensor.dtype), device=tensor.device) for name, tensor in base.items()}
    draws = torch.empty(CHUNK, dtype=torch.float32)
    for vector in vectors:
        for name, total in sums.items():
            flat, target = vector[name].reshape(-1), total.view(-1)
            flat_base = base[name].reshape(-1) if finetuned else None
            scratch = torch.empty(min(CHUNK, flat.numel()), dtype=flat.dtype, device=flat.device)
            for part in chunks(flat.numel()):
                n = part.stop - part.start
                keep = keep_mask(n, p, generator, strict, draws[:n])
                tau = task_vector_chunk(scratch[:n], flat, flat_base, part)
                target[part].add_(tau.mul_(keep.to(tau.device)), alpha=1.0 / (1.0 - p))
    return sums


def dare_ties_tensor(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], states: Sequence[torch.Tensor], p: float, strict: bool,
    scaling_factor: float, merge_func: str, finetuned: bool,
) -> torch.Tensor:
    """theta_0 + lambda * disjoint_merge(drop_and_rescale(tau_t)) of one tensor, chunk by chunk; task t's
    masks are drawn from its generator ``states[t]``, so they are those of the draw order."""
    generators = [torch.Generator().set_state(state) for state in states]
    flat_base, flats = base.reshape(-1), [vector.reshape(-1) for vector in vectors]
    merged = torch.empty(base.numel(), dtype=base.dtype, device=base.device)
    width = min(merged.numel(), CHUNK)
    stack, scratch = (torch.empty(len(vectors), width, dtype=base.dtype, device=base.device) for _ in range(2))
    draws = torch.empty(width, dtype=torch.float32)
    for part in chunks(merged.numel()):
        n = part.stop - part.start
        taus = stack[:, :n]
        for tau, flat, generator in zip(taus, flats, generators):
            task_vector_chunk(tau, flat, flat_base if finetuned else None, part)
            drop_and_rescale_(tau, keep_mask(n, p, generator, strict, draws[:n]), p)
        disjoint_merge(taus, merge_func, merged[part], scratch[:, :n])
    return merged.view(base.shape).mul_(scaling_factor).add_(base)


def dare_merge(
    base: ParamDict,
    vectors: Sequence[ParamDict],
    p: float,
    seed: int,
    base_method: str = "task_arithmetic",
    scaling_factor: float = 0.3,
    merge_func: str = "mean",
    strict: bool = True,
    finetuned: bool = False,
) -> ParamDict:
    """Drop-and-rescale every task vector, then merge with task arithmetic or TIES (k = 1: sign election and
    disjoint merge). With ``finetuned`` the vectors are the theta_t; no dropped task vector is stored."""
    if base_method == "ties":
        states = _draw_states(base, len(vectors), seed)
        return ParamDict(
            {
                name: dare_ties_tensor(
                    tensor, [vector[name] for vector in vectors], [task[name] for task in states], p, strict,
                    scaling_factor, merge_func, finetuned,
                )
                for name, tensor in base.items()
            }
        )
    sums = dare_sums(base, vectors, p, seed, strict, finetuned)
    return ParamDict({name: sums[name].to(tensor.dtype).mul_(scaling_factor).add_(tensor) for name, tensor in base.items()})


@dataclass
class DareParams:
    p: float = param(0.5, "probability of dropping each task-vector entry, in [0, 1)")
    base_method: str = param("task_arithmetic", "merge applied after dropping: task_arithmetic or ties")
    scaling_factor: Optional[float] = param(None, "lambda; null: the base method's default (0.3 / 1.0)")
    merge_func: str = param("mean", "with base_method=ties: disjoint merge divisor, mean or sum")
    seed: int = param(0, "seed of the drop masks' torch.Generator")
    strict: bool = param(True, "keep an entry when u > p (true, the official code) or u >= p (false); u drawn in float32")


class Dare(Method):
    """Random drop with rescaling, then task arithmetic or TIES."""

    name = "dare"
    description = "DARE: drop task-vector entries with prob. p, rescale by 1/(1-p), then TA or TIES"
    reference = "Yu et al., Language Models are Super Mario, ICML 2024 (arXiv 2311.03099)"
    version = "2"
    Params = DareParams
    grid = {"p": [0.1, 0.5, 0.9], "scaling_factor": [0.1, 0.3, 0.5, 0.7, 1.0]}

    def validate(self) -> None:
        check_range(self.name, "p", self.params.p, 0.0, 1.0, high_open=True)
        check_choice(self.name, "base_method", self.params.base_method, BASE_METHODS)
        check_choice(self.name, "merge_func", self.params.merge_func, MERGE_FUNCS)
        if self.params.scaling_factor is not None:
            check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, thetas = load_inputs(self, pool, finite=False)
        p = self.params
        scaling = base_scaling(p.base_method, p.scaling_factor)
        merged = dare_merge(base, thetas, p.p, p.seed, p.base_method, scaling, p.merge_func, p.strict, finetuned=True)
        return finite_or_blame(merged, thetas, pool.tasks, base)
