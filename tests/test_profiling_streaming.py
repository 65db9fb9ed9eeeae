"""Streaming element-wise merges over safetensors checkpoints equal the in-memory ParamDict merges."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from fusionbench.api.errors import ParamMismatchError
from fusionbench.api.params import ParamDict
from fusionbench.methods.simple_average import stream_average
from fusionbench.methods.task_arithmetic import stream_task_arithmetic, task_arithmetic_merge
from fusionbench.models.streaming import SafetensorsWriter, save_tensors, tensor_layout


def checkpoints(tmp_path: Path, count: int = 4) -> tuple[list[ParamDict], list[Path]]:
    """A base and ``count - 1`` fine-tuned checkpoints with mixed shapes and dtypes, saved as safetensors."""
    g = torch.Generator().manual_seed(0)
    base = ParamDict({
        "layer.weight": torch.randn(17, 9, generator=g),
        "layer.bias": torch.randn(17, generator=g),
        "scalar": torch.randn((), generator=g),
        "empty": torch.zeros(3, 0),
        "half": torch.randn(5, 2, generator=g).to(torch.bfloat16),
        "double": torch.randn(4, generator=g, dtype=torch.float64),
    })
    dicts = [base] + [base.map(lambda t: t + torch.randn(t.shape, generator=g).to(t.dtype)) for _ in range(count - 1)]
    paths = []
    for i, params in enumerate(dicts):
        paths.append(tmp_path / f"model{i}.safetensors")
        params.save(paths[-1])
    return dicts, paths


def test_streamed_task_arithmetic_equals_the_in_memory_merge(tmp_path: Path) -> None:
    (base, *finetuned), (base_path, *paths) = checkpoints(tmp_path)
    out = stream_task_arithmetic(base_path, paths, tmp_path / "merged.safetensors", scaling_factor=0.3)
    expected = task_arithmetic_merge(base, [theta - base for theta in finetuned], 0.3)
    got = load_file(str(out))  # safetensors' own reader accepts the streamed file
    assert list(got) == list(tensor_layout(base_path))
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name


def test_streamed_average_equals_the_in_memory_mean(tmp_path: Path) -> None:
    dicts, paths = checkpoints(tmp_path, count=3)
    got = ParamDict.load(stream_average(paths, tmp_path / "mean.safetensors"))
    assert got.allclose(ParamDict.mean(dicts), rtol=1e-2, atol=1e-6)  # bfloat16 entries round differently
    assert ParamDict({k: v for k, v in got.items() if v.dtype == torch.float32}).allclose(
        ParamDict({k: v for k, v in ParamDict.mean(dicts).items() if v.dtype == torch.float32}), rtol=1e-6, atol=1e-7)


def test_mismatched_checkpoints_and_misuse_of_the_writer_are_errors(tmp_path: Path) -> None:
    _, paths = checkpoints(tmp_path, count=2)
    ParamDict({"layer.weight": torch.zeros(17, 8)}).save(tmp_path / "odd.safetensors")
    with pytest.raises(ParamMismatchError, match="odd.safetensors.*does not match.*at tensor"):
        stream_average([paths[0], tmp_path / "odd.safetensors"], tmp_path / "x.safetensors")
    layout = {"a": (torch.float32, (2,)), "b": (torch.float32, (3,))}
    with pytest.raises(ValueError, match="expected tensor 'a'"):
        with SafetensorsWriter(tmp_path / "w.safetensors", layout) as writer:
            writer.write("b", torch.zeros(3))
    with pytest.raises(ValueError, match="closed before tensor 'b' was written"):
        with SafetensorsWriter(tmp_path / "w.safetensors", layout) as writer:
            writer.write("a", torch.zeros(2))
    with SafetensorsWriter(tmp_path / "w.safetensors", layout, metadata={"k": "v"}) as writer:
        writer.write("a", torch.ones(2))
        writer.write("b", torch.arange(3.0))
    assert torch.equal(load_file(str(tmp_path / "w.safetensors"))["b"], torch.arange(3.0))


def test_save_tensors_writes_the_same_bytes_for_the_same_content(tmp_path: Path) -> None:
    """safetensors' save_file orders metadata by a hash map; built artefacts must be checksummable."""
    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.tensor([1, 2], dtype=torch.int64)}
    save_tensors(tensors, tmp_path / "one.safetensors", {"format": "pt", "fusionbench.adapter": "lora", "fusionbench.format": "1"})
    save_tensors(dict(reversed(list(tensors.items()))), tmp_path / "two.safetensors", {"fusionbench.format": "1", "fusionbench.adapter": "lora", "format": "pt"})
    assert (tmp_path / "one.safetensors").read_bytes() == (tmp_path / "two.safetensors").read_bytes()
    with safe_open(str(tmp_path / "one.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt", "fusionbench.adapter": "lora", "fusionbench.format": "1"}
        assert all(torch.equal(handle.get_tensor(k), v) for k, v in tensors.items())
