"""RegMean++ (Nguyen et al., "RegMean++: Enhancing Effectiveness and Generalization of Regression
Mean for Model Merging", arXiv 2508.03121, 2025).

RegMean (``fusionbench.methods.regmean``) with every linear layer's input Grams taken where the
merged model feeds it. The model's blocks are processed in the order it runs them (a block is an
element of an outermost ``nn.ModuleList``, e.g. a transformer layer; a Linear outside every list
is a block of its own). For block b and task t the Grams of b's Linear layers come from running
the model whose earlier blocks, and every tensor outside the blocks, are the merge so far while
block b onward are theta_t's: b's inputs are the merged earlier blocks' outputs,
X_t^(b) = f_M^(b-1)(X_t^(b-1)) (the paper's cross-layer dependency), and the layers inside b see
the candidate's own block (intra-layer). Block b is then merged by RegMean's solve (its other
tensors averaged) and the next block follows. With one block this is RegMean; with one task, that
task. Costs one pass over the examples per block and task. Parameters and defaults as RegMean's.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.data_based import resident
from fusionbench.methods.regmean import RegMean, linear_layers, regmean_matrix, regmean_merge


def block_of(name: str, blocks: list[str]) -> Optional[str]:
    """The first of ``blocks`` (paths; "" is a root module that is one Linear) that ``name`` lies in, or None."""
    return next((path for path in blocks if path == "" or name.startswith(path + ".")), None)


class RegMeanPlusPlus(RegMean):
    """RegMean whose Grams are collected on the merged model, block by block."""

    name = "regmean_plusplus"
    description = "RegMean++: RegMean with each block's layer inputs taken from the already-merged earlier blocks"
    reference = "Nguyen et al., RegMean++: Enhancing Effectiveness and Generalization of Regression Mean for Model Merging, 2025 (arXiv 2508.03121)"
    version = "1"
    data_needs = "Linear layers' input Grams on the merged model, block by block; full pools, lora / llora with merge_space=delta"

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        data, _, thetas = self.inputs(pool, data)
        merged = regmean_merge(thetas, [{} for _ in thetas], self.params.alpha)  # every tensor averaged; blocks replace theirs
        module = resident(self, pool, thetas[0])[1]
        dense = pool.dense_weights()
        ordered = self.blocks(pool, data, thetas[0], module)
        owner = {name: block_of(dense.get(name, name), ordered) for name in thetas[0]}
        linear = linear_layers(pool, module)
        for b, block in enumerate(ordered):
            later = set(ordered[b:])
            layers = {name for name, path in owner.items() if path == block and name in linear}
            grams = []
            for task, theta in zip(pool.tasks, thetas):
                hybrid = ParamDict({name: theta[name] if owner[name] in later else merged[name] for name in theta})
                grams.append(self.grams(pool, data, task, hybrid, only=layers))
            for name in layers:
                merged[name] = regmean_matrix([theta[name] for theta in thetas], [g[name] for g in grams], self.params.alpha)
        return merged

    def blocks(self, pool: ModelPool, data: TaskPool, theta: ParamDict, module: nn.Module) -> list[str]:
        """The paths of the blocks holding Linear layers of the pool, in the order one forward pass first calls them."""
        lists = [f"{path}.{child}" for path, m in module.named_modules() if isinstance(m, nn.ModuleList) for child, _ in m.named_children()]
        outermost = [path for path in lists if block_of(path, lists) is None]
        order: list[str] = []
        paths = {id(layer): path for path, layer in module.named_modules()}

        def record(layer: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            path = paths[id(layer)]
            block = block_of(path + ".weight", outermost) or path
            if block not in order:
                order.append(block)

        layers = linear_layers(pool, module)
        handles = [layer.register_forward_pre_hook(record) for layer in layers.values()]
        try:
            model = resident(self, pool, theta)[0]
            with torch.no_grad():
                data.class_logits(model, data.examples(pool.tasks[0], self.data_use(), self.params.batch_size, self.name)[0], pool.tasks[0])
        finally:
            for handle in handles:
                handle.remove()
        return order
