"""What each ``fusionbench analyze`` command finds, as dataclasses: ``to_dict`` is the JSON file it writes
(cosine.json, disentanglement.json, scaling.json, interference.json); ``output_dir`` is where it went."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

Curves = dict[str, list[float]]  # task -> one value per coefficient
PerTask = dict[str, float]  # task -> value


class _Written:
    """The JSON file of an analysis: the dataclass's fields but ``output_dir``."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        del data["output_dir"]
        return data  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CosineResult(_Written):
    """Cosine similarity of every pair of task vectors (L-LoRA paper, Figs. 2/8), beside the paper's mean when it has one."""

    modelpool: str
    family: str  # benchmark family, to find the paper's figure
    mode: str
    tasks: list[str]
    cosine: list[list[float]]
    mean_offdiag: float
    paper_mean_offdiag: Optional[float]
    output_dir: Optional[str] = None


@dataclass(frozen=True)
class _Evaluated(_Written):
    """What the analyses that evaluate merged models name: pool, mode, task pool, split, tasks."""

    modelpool: str
    mode: str
    taskpool: str
    split: str
    tasks: list[str]


@dataclass(frozen=True)
class DisentanglementResult(_Evaluated):
    """Weight disentanglement error xi(l1, l2) of two tasks over a grid (paper, Eq. 3 and Fig. 6), and each task's term."""

    grid: list[float]
    xi: list[list[float]]
    per_task: dict[str, list[list[float]]]
    mean_xi: float
    output_dir: Optional[str] = None


@dataclass(frozen=True)
class ScalingResult(_Evaluated):
    """Each task's score along its own task vector (``alone``) and along the sum of all (``sum``), per lambda."""

    lambdas: list[float]
    alone: Curves
    sum: Curves
    mean_alone: list[float]
    mean_sum: list[float]
    output_dir: Optional[str] = None


@dataclass(frozen=True)
class InterferenceResult(_Evaluated):
    """At one lambda: each task vector's own gain, its changes to the others, their additive prediction, the measured sum."""

    scaling_factor: float
    single: dict[str, PerTask]  # task vector added -> task scored -> score
    base: PerTask
    own: PerTask
    cross: PerTask
    additive: PerTask
    sum: PerTask
    mean_base: float
    mean_own: float
    mean_cross: float
    mean_additive: float
    mean_sum: float
    output_dir: Optional[str] = None
