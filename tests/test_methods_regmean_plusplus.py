"""RegMean++ (issue 19): with one Linear layer it is RegMean, with one task it returns that task, and on a two-block
model the second block's Grams are those of the merged first block's outputs (least squares on stacked features)."""

from __future__ import annotations

from pathlib import Path

import torch
from method_helpers import dummy_pools
from test_methods_data_based import TASKS, dummy_taskpool
from test_methods_data_based_text import text_world
from torch import nn

from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import DataUse
from fusionbench.engine.memory_pool import ParamDictPool
from fusionbench.methods.regmean import RegMean, RegMeanParams
from fusionbench.methods.regmean_plusplus import RegMeanPlusPlus


def test_with_one_linear_layer_it_is_regmean() -> None:
    pool, taskpool = dummy_pools()
    params = RegMeanParams(examples_per_task=64)
    assert RegMeanPlusPlus(params).merge(pool, taskpool).allclose(RegMean(params).merge(pool, taskpool), rtol=0, atol=0)


def test_with_one_task_it_returns_that_task(tmp_path: Path) -> None:
    pool, taskpool, _ = text_world(tmp_path)  # a tiny T5: two encoder and two decoder blocks, the LM head outside them
    single = pool.subset(["one"])
    assert RegMeanPlusPlus(RegMeanParams(examples_per_task=8, batch_size=3)).merge(single, taskpool).allclose(pool.finetuned("one"), rtol=1e-4, atol=1e-6)


class TwoBlocks(nn.Module):
    """x -> tanh(layers[0] x) -> layers[1]: two blocks of one Linear each."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(16, 6), nn.Linear(6, 4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](torch.tanh(self.layers[0](x)))


def test_the_second_blocks_inputs_come_from_the_merged_first_block() -> None:
    module = TwoBlocks()
    generator = torch.Generator().manual_seed(0)
    base = ParamDict({n: p.detach().clone() for n, p in module.named_parameters()})
    finetuned = {t: ParamDict({n: p + 0.3 * torch.randn(p.shape, generator=generator) for n, p in base.items()}) for t in TASKS}

    def write(params: ParamDict) -> nn.Module:
        with torch.no_grad():
            for name, p in module.named_parameters():
                p.copy_(params[name])
        return module

    pool = ParamDictPool(base=base, finetuned=finetuned, model=write, name="two-blocks")
    taskpool = dummy_taskpool()
    merged = RegMeanPlusPlus(RegMeanParams(alpha=1.0, examples_per_task=50)).merge(pool, taskpool)
    inputs = {t: torch.cat([b[0] for b in taskpool.examples(t, DataUse("train", 50, labels=False), 50, "x")]).double() for t in TASKS}

    def least_squares(features: dict[str, torch.Tensor], name: str) -> torch.Tensor:
        """argmin_W sum_t ||X_t W^T - X_t W_t^T||^2 by lstsq on the stacked rows."""
        stacked = torch.cat([features[t] for t in TASKS])
        targets = torch.cat([features[t] @ finetuned[t][name].double().T for t in TASKS])
        return torch.linalg.lstsq(stacked, targets).solution.T

    first = least_squares(inputs, "layers.0.weight")
    bias = torch.stack([finetuned[t]["layers.0.bias"].double() for t in TASKS]).mean(0)
    hidden = {t: torch.tanh(inputs[t] @ first.T + bias) for t in TASKS}  # the merged first block's outputs
    torch.testing.assert_close(merged["layers.0.weight"].double(), first, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(merged["layers.1.weight"].double(), least_squares(hidden, "layers.1.weight"), rtol=1e-4, atol=1e-5)
    regmean = RegMean(RegMeanParams(alpha=1.0, examples_per_task=50)).merge(pool, taskpool)
    assert not torch.allclose(regmean["layers.1.weight"], merged["layers.1.weight"], atol=1e-3)  # RegMean feeds each candidate's own first block
