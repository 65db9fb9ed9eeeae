"""The merge engine's workload: eight random task checkpoints of ViT-B/16 shape, the memory-bandwidth
floor they are merged against, and a fresh-process probe of a merge's extra peak memory.

``SCOPES``: ``block`` is one ViT-B/16 encoder block (7,087,872 parameters: q, k, v, out
768x768, fc1 3072x768, fc2 768x3072, biases, two layer norms), the routine size on a small CPU;
``tower`` is the whole vision transformer (85,799,424 parameters). The base is N(0, 0.02^2), each
fine-tuned model the base plus N(0, 0.001^2), float32.

Run as a script, ``python perf/merge_workload.py METHOD SCOPE`` builds the workload, merges it
once with METHOD's defaults through ``Method.merge`` and prints, as JSON, the merge's extra peak
RSS (the kernel's high-water mark, reset just before the merge, minus the RSS then), the bytes
of one model, and the RSS that loading the compiled kernels added before (``runtime``: a merge
of a two-entry pool first, once a process, as the package's import is). Run it with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors go back
to the kernel and the high-water mark sees every allocation.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from bench_helpers import vit_b16_recipe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' in-memory pool
from method_helpers import StaticPool  # noqa: E402

from fusionbench.api.method import Method  # noqa: E402
from fusionbench.api.modelpool import ModelPool  # noqa: E402
from fusionbench.api.params import ParamDict  # noqa: E402
from fusionbench.methods import philox  # noqa: E402
from fusionbench.methods.dare import Dare, DareParams  # noqa: E402
from fusionbench.methods.simple_average import SimpleAverage  # noqa: E402
from fusionbench.methods.task_arithmetic import TaskArithmetic  # noqa: E402
from fusionbench.methods.ties import Ties, trim_thresholds  # noqa: E402
from fusionbench.profiling.workload import build_model  # noqa: E402

TASKS = 8
SCOPES = {"block": "encoder.layers.0.", "tower": ""}
METHODS: dict[str, Method] = {
    "simple_average": SimpleAverage(), "task_arithmetic": TaskArithmetic(), "dare": Dare(), "ties": Ties(),
    "dare_ties": Dare(DareParams(base_method="ties")),
}
FLOOR_CHUNK = 1 << 16


def random_vit_pool(scope: str) -> StaticPool:
    """A base and TASKS fine-tuned parameter sets with the shapes of ``SCOPES[scope]``, held in memory."""
    _, root = build_model(vit_b16_recipe(), "meta", 0)
    shapes = {name: p.shape for name, p in root.named_parameters() if name.startswith(SCOPES[scope])}
    g = torch.Generator().manual_seed(0)
    base = ParamDict({name: 0.02 * torch.randn(shape, generator=g) for name, shape in shapes.items()})
    finetuned = {f"t{i}": ParamDict({n: t + 1e-3 * torch.randn(t.shape, generator=g) for n, t in base.items()}) for i in range(TASKS)}
    return StaticPool(base, finetuned)


def model_bytes(pool: ModelPool) -> int:
    return sum(t.numel() * t.element_size() for t in pool.base().values())


def bandwidth_floor(pool: ModelPool, chunked: bool) -> ParamDict:
    """Sum the base and every fine-tuned model with ``torch.add`` into one output: T + 1 models read, one written.

    ``chunked`` adds FLOOR_CHUNK entries at a time, so each output chunk stays in the cache while
    the T + 1 inputs stream past it; otherwise each output tensor is re-read from memory T times.
    """
    base, thetas = pool.base(), [pool.finetuned(task) for task in pool.tasks]
    out = ParamDict()
    for name, tensor in base.items():
        flat, flats, result = tensor.reshape(-1), [theta[name].reshape(-1) for theta in thetas], torch.empty(tensor.numel())
        parts = [slice(i, i + FLOOR_CHUNK) for i in range(0, tensor.numel(), FLOOR_CHUNK)] if chunked else [slice(None)]
        for part in parts:
            target = torch.add(flat[part], flats[0][part], out=result[part])
            for other in flats[1:]:
                target.add_(other[part])
        out[name] = result.view(tensor.shape)
    return out


def dare_draws(pool: ModelPool) -> None:
    """The draws DARE's masks need (one float32 per entry and task, Philox4x32-10) into a reused buffer."""
    draws = np.empty(FLOOR_CHUNK, dtype=np.float32)
    for task in range(len(pool.tasks)):
        for stream, tensor in enumerate(pool.base().values()):
            for start in range(0, tensor.numel(), FLOOR_CHUNK):
                philox.fill_uniforms(0, task, stream, start, tensor.numel(), draws[: min(FLOOR_CHUNK, tensor.numel() - start)])


def ties_thresholds(pool: ModelPool) -> list[float]:
    """TIES's trim thresholds (k = 0.2, the official rule) of every task, alone."""
    base = pool.base()
    return trim_thresholds([pool.finetuned(task) for task in pool.tasks], 0.2, "kthvalue", base)


def _status(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", open("/proc/self/status").read(), re.M)
    assert match, field
    return int(match.group(1)) * 1024


def extra_peak_bytes(method: Method, pool: ModelPool) -> int:
    """Peak RSS during ``method.merge(pool)`` above the RSS before it (Linux: /proc/self/clear_refs resets the peak)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = _status("VmRSS")
    merged = method.merge(pool)
    peak = _status("VmHWM")
    del merged
    return peak - before


def runtime_bytes(method: Method) -> int:
    """RSS that loading the compiled kernels adds (Numba's runtime and the cached machine code, once a process): a
    merge of a two-entry pool before the measured one, as importing the package is before it."""
    before = _status("VmRSS")
    base = ParamDict(w=torch.zeros(2))
    method.merge(StaticPool(base, {f"t{i}": ParamDict(w=torch.full((2,), float(i + 1))) for i in range(TASKS)}))
    return _status("VmRSS") - before


if __name__ == "__main__":
    torch.set_num_threads(1)
    workload = random_vit_pool(sys.argv[2])
    runtime = runtime_bytes(METHODS[sys.argv[1]])
    print(json.dumps({"extra": extra_peak_bytes(METHODS[sys.argv[1]], workload), "model": model_bytes(workload), "runtime": runtime}))
