"""What the entropy AdaMerging minimises sees of each fine-tune, per task (issues 16 and 19).

    FUSIONBENCH_HOME=<a home with the built worlds> python research/mini_v5/entropy_gap.py mini_clip_full mini_vision7

AdaMerging (Yang et al., ICLR 2024) learns task arithmetic's coefficients by minimising the
mean Shannon entropy of the merged model's predictions on each task's unlabeled test inputs,
which serves only where a fine-tune that gains accuracy also lowers the entropy of its task's
predictions. For every task of the pool this prints, on the task's 500 test inputs, the mean
entropy of the pretrained and of the task's fine-tuned model (and their difference, the signal a
task's coefficient gets), the pretrained model's mean top-class probability, and both models'
accuracy. The class scores are the ones AdaMerging's objective reads (``data_based.class_scores``).
"""

from __future__ import annotations

import sys

import torch

import fusionbench
from fusionbench.api.taskpool import DataUse
from fusionbench.methods.adamerging import AdaMerging, entropy
from fusionbench.methods.data_based import class_scores, resident

EXAMPLES = 500  # the mini task pools' test split


def main(modelpool: str, taskpool: str) -> None:
    torch.set_num_threads(1)
    pool, data = fusionbench.load_pool(modelpool), fusionbench.load_taskpool(taskpool)
    model, module = resident(AdaMerging(), pool, pool.base())
    use = DataUse("test", EXAMPLES, labels=False, test_time_adaptation=True)
    inputs = {task: data.examples(task, use, EXAMPLES, "entropy_gap")[0] for task in pool.tasks}

    def entropy_and_confidence(params: fusionbench.ParamDict, task: str) -> tuple[float, float]:
        with torch.no_grad():
            logits = class_scores(data, model, module, pool.module_parameters(params), inputs[task], task)
        return float(entropy(logits)), float(torch.softmax(logits, -1).max(-1).values.mean())

    pretrained = data.evaluate(pool.model(pool.base()), pool.tasks, "test")
    print("| task | entropy, pretrained | entropy, fine-tuned | drop | top-class probability, pretrained | accuracy, pretrained | accuracy, fine-tuned |")
    print("|---|---|---|---|---|---|---|")
    for task in pool.tasks:
        base_entropy, confidence = entropy_and_confidence(pool.base(), task)
        tuned_entropy, _ = entropy_and_confidence(pool.finetuned(task), task)
        tuned = data.evaluate(pool.model(pool.finetuned(task)), [task], "test")[task].value
        print(
            f"| {task} | {base_entropy:.3f} | {tuned_entropy:.3f} | {base_entropy - tuned_entropy:.3f} | {confidence:.3f} "
            f"| {pretrained[task].value:.3f} | {tuned:.3f} |"
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
