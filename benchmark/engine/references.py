"""The reference scores every normalised result needs: each task's individual fine-tuned model and
the pretrained model, evaluated once and cached on disk by content (pool identity, task pool
identity, task, split), shared by ``run``, ``sweep`` and the analyses."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

from fusionbench.api.modelpool import ModelPool
from fusionbench.api.taskpool import TaskPool, TaskScore
from fusionbench.utils.cache import cached_json

KINDS = ("finetuned", "pretrained")


@dataclass
class References:
    """Per task: its fine-tuned model's score and the pretrained model's score."""

    finetuned: dict[str, TaskScore]
    pretrained: dict[str, TaskScore]
    computed: int  # evaluations run by this call; the others came from the cache


def reference_scores(
    pool: ModelPool, taskpool: TaskPool, tasks: list[str], split: str, on_score: Optional[Callable[[], None]] = None
) -> References:
    """Fine-tuned and pretrained scores of ``tasks`` on ``split``; ``on_score`` runs after each of the 2 x len(tasks)."""
    computed = 0

    def score(kind: str, task: str) -> TaskScore:
        def compute() -> dict[str, Any]:
            nonlocal computed
            computed += 1
            params = pool.finetuned(task) if kind == "finetuned" else pool.base()
            return asdict(taskpool.evaluate(pool.model(params), [task], split)[task])

        key = (kind, pool.identity(), taskpool.identity(), task, split)
        value = TaskScore(**cached_json("reference-scores", key, compute))
        if on_score is not None:
            on_score()
        return value

    finetuned = {t: score("finetuned", t) for t in tasks}
    pretrained = {t: score("pretrained", t) for t in tasks}
    return References(finetuned, pretrained, computed)
