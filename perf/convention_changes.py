"""How much each official-code convention changes a merge: version 2 defaults against the version 1 setting.

``python perf/convention_changes.py`` merges the benchmark workload (``merge_workload``: one
ViT-B/16 encoder block, eight random tasks; Iso-CTS on the first four, where its rounding
matters) both ways and prints, per convention, how many entries differ and the largest change.
"""

from __future__ import annotations

import torch
from merge_workload import random_vit_pool

from fusionbench.api.params import ParamDict
from fusionbench.methods.dare import Dare, DareParams
from fusionbench.methods.iso_cts import IsoCts, IsoCtsParams
from fusionbench.methods.ties import Ties, TiesParams


def difference(new: ParamDict, old: ParamDict) -> str:
    changed = sum(int((new[k] != old[k]).sum()) for k in new)
    largest = max(float((new[k].double() - old[k].double()).abs().max()) for k in new)
    return f"{changed:,} of {new.numel():,} entries changed, largest change {largest:.2g}"


if __name__ == "__main__":
    torch.set_num_threads(1)
    pool = random_vit_pool("block")
    print("ties keep=kthvalue vs topk (k = 0.2):", difference(Ties().merge(pool), Ties(TiesParams(keep="topk")).merge(pool)))
    print("dare strict vs not (p = 0.5):", difference(Dare().merge(pool), Dare(DareParams(strict=False)).merge(pool)))
    pool._tasks = pool.tasks[:4]
    old = IsoCts(IsoCtsParams(rounding="half_up")).merge(pool)
    print("iso_cts rounding half_even vs half_up (4 tasks):", difference(IsoCts().merge(pool), old))
