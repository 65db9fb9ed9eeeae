"""Whether harder images of named classes give the shipped vision base room with near-tie errors (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/near_ties.py

The shipped world's room comes mostly from classes no pretraining caption names, on which the
base is confidently wrong. Real CLIP's zero-shot errors are mostly uncertain ones. For each task
this draws 300 images of its named classes (``vision_world.UNNAMED`` left out) at image
settings (hard, novel) from the task's own up to harder ones, classifies them zero-shot over the
named classes only (prompts: the task's templates, averaged), and prints the accuracy and the
mean top-class probability on the errors; the first row is the task as shipped (every class).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

import fusionbench
from fusionbench.mini import vision_domains
from fusionbench.mini.vision_tasks import VISION_TASKS
from fusionbench.mini.vision_world import TASK_RANGES, UNNAMED

SETTINGS = [((0.0, 0.4), (0.3, 1.0)), ((0.4, 0.8), (0.3, 1.0)), ((0.6, 1.0), (0.6, 1.0)), ((0.8, 1.0), (0.9, 1.0))]
N = 300


def zero_shot(model, task: str, classes: list[int], pixels: torch.Tensor) -> torch.Tensor:
    """(N, len(classes)) zero-shot class probabilities over ``classes``."""
    spec = VISION_TASKS[task]
    heads = []
    for k in classes:
        emb = model.encode_texts([t.format(c=spec.classnames[k]) for t in spec.templates])
        heads.append(torch.nn.functional.normalize(torch.nn.functional.normalize(emb, dim=-1).mean(0), dim=-1))
    image = torch.nn.functional.normalize(model.vision(pixels), dim=-1)
    return (model.logit_scale * image @ torch.stack(heads).T).softmax(-1)


def row(model, task: str, classes: list[int], hard: tuple[float, float], novel: tuple[float, float]) -> str:
    rng = np.random.default_rng(0)
    labels = np.array(classes)[rng.permutation(np.arange(N) % len(classes))]
    pixels = model.preprocess([Image.fromarray(x) for x in vision_domains.images(task, labels, rng, hard, novel)])
    with torch.no_grad():
        probs = zero_shot(model, task, classes, pixels)
    predicted = torch.tensor(classes)[probs.argmax(-1)]
    wrong = predicted != torch.from_numpy(labels)
    top = probs.max(-1).values
    return f"{100 * (1 - wrong.float().mean()):.1f} | {float(top[wrong].mean()) if wrong.any() else float('nan'):.2f}"


def main() -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    model = pool.model(pool.base())
    print("| task | classes | hard | novel | zero-shot accuracy | top-class probability on errors |\n|---|---|---|---|---|---|")
    for task, spec in VISION_TASKS.items():
        every = list(range(spec.num_classes))
        named = [k for k in every if k not in UNNAMED[task]]
        hard, novel = TASK_RANGES[task]
        print(f"| {task} | all (shipped) | {hard} | {novel} | {row(model, task, every, hard, novel)} |")
        for hard, novel in SETTINGS:
            print(f"| {task} | named | {hard} | {novel} | {row(model, task, named, hard, novel)} |")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
