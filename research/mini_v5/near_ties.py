"""Whether harder images of named classes give the shipped vision base room with near-tie errors (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/near_ties.py

The shipped world's room comes mostly from classes no pretraining caption names, on which the
base is confidently wrong. Real CLIP's zero-shot errors are mostly uncertain ones. For each task
this draws 300 images of its named classes (``vision_world.UNNAMED`` left out) at image
settings (hard, novel) from the task's own up to harder ones, classifies them zero-shot over the
named classes only (the task pool's zero-shot head, its rows for those classes), and prints the accuracy and the
mean top-class probability on the errors; the first row is the task as shipped (every class).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import fusionbench
from fusionbench.api.families import ZeroShotImageModel
from fusionbench.mini import vision_domains
from fusionbench.mini.vision_tasks import VISION_TASKS
from fusionbench.mini.vision_world import TASK_RANGES, UNNAMED

SETTINGS = [((0.0, 0.4), (0.3, 1.0)), ((0.4, 0.8), (0.3, 1.0)), ((0.6, 1.0), (0.6, 1.0)), ((0.8, 1.0), (0.9, 1.0))]
N = 300


def row(model: ZeroShotImageModel, head: torch.Tensor, task: str, classes: list[int], hard: tuple[float, float], novel: tuple[float, float]) -> str:
    """Zero-shot accuracy over ``classes`` (rows of the task's ``head``) and mean top-class probability on the errors."""
    rng = np.random.default_rng(0)
    labels = np.array(classes)[rng.permutation(np.arange(N) % len(classes))]
    pixels = model.preprocess([Image.fromarray(x) for x in vision_domains.images(task, labels, rng, hard, novel)])
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.vision(pixels).float(), dim=-1)
        probs = (model.logit_scale * image @ head[classes].T).softmax(-1)
    predicted = torch.tensor(classes)[probs.argmax(-1)]
    wrong = predicted != torch.from_numpy(labels)
    top = probs.max(-1).values
    return f"{100 * (1 - wrong.float().mean()):.1f} | {float(top[wrong].mean()) if wrong.any() else float('nan'):.2f}"


def main() -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    taskpool = fusionbench.load_taskpool("mini_vision7")
    model = pool.model(pool.base())
    print("| task | classes | hard | novel | zero-shot accuracy | top-class probability on errors |\n|---|---|---|---|---|---|")
    for task, spec in VISION_TASKS.items():
        every = list(range(spec.num_classes))
        named = [k for k in every if k not in UNNAMED[task]]
        head = taskpool.zero_shot_head(model, task)
        hard, novel = TASK_RANGES[task]
        print(f"| {task} | all (shipped) | {hard} | {novel} | {row(model, head, task, every, hard, novel)} |")
        for hard, novel in SETTINGS:
            print(f"| {task} | named | {hard} | {novel} | {row(model, head, task, named, hard, novel)} |")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
