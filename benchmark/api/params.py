"""ParamDict: an ordered mapping of parameter name -> tensor, with the algebra of model merging.

A ParamDict lives in a pool's *trainable parameter space*: every floating parameter of a
fully fine-tuned module, or the adapter parameters (lora_A, lora_B) of a LoRA / L-LoRA
pool. A task vector is ``finetuned - base`` (Ilharco et al., ICLR 2023; L-LoRA paper,
appendix A). Every fusion method consumes and produces ParamDicts.

All operations return new ParamDicts; inputs are never mutated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch
from safetensors.torch import load_file, save_file

from fusionbench.api.errors import NonFiniteError, ParamMismatchError

_SHOW_KEYS = 5


def _names(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOW_KEYS])
    more = f" (+{len(keys) - _SHOW_KEYS} more)" if len(keys) > _SHOW_KEYS else ""
    return shown + more


def is_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry is finite; one cheap reduction first (NaN and Inf propagate through a sum),
    the exact entry-wise test only when the sum is not finite (it may have overflowed)."""
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


class ParamDict(dict[str, torch.Tensor]):
    """Name -> tensor mapping with element-wise arithmetic and vector views."""

    # ----------------------------------------------------------------- checks
    def check_compatible(self, other: Mapping[str, torch.Tensor]) -> None:
        """Raise ParamMismatchError naming the keys or shapes that differ from ``other``."""
        missing = self.keys() - other.keys()
        extra = other.keys() - self.keys()
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing in the other: {_names(missing)}")
            if extra:
                parts.append(f"only in the other: {_names(extra)}")
            raise ParamMismatchError("parameter names differ; " + "; ".join(parts))
        bad = [k for k in self if self[k].shape != other[k].shape]
        if bad:
            k = sorted(bad)[0]
            raise ParamMismatchError(
                f"shapes differ for {len(bad)} tensor(s), first {k}: "
                f"{tuple(self[k].shape)} vs {tuple(other[k].shape)}"
            )

    def assert_finite(self, label: str = "parameters") -> None:
        """Raise NonFiniteError naming the first tensor that holds NaN or Inf, and how many do."""
        bad = [name for name, tensor in self.items() if not is_finite(tensor)]
        if bad:
            raise NonFiniteError(f"{label} contain NaN or Inf in tensor {bad[0]!r} ({len(bad)} of {len(self)} tensors)")

    # -------------------------------------------------------------- algebra
    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> ParamDict:
        return ParamDict({k: fn(v) for k, v in self.items()})

    def zip_map(
        self, other: Mapping[str, torch.Tensor], fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    ) -> ParamDict:
        self.check_compatible(other)
        return ParamDict({k: fn(v, other[k]) for k, v in self.items()})

    def __add__(self, other: Mapping[str, torch.Tensor]) -> ParamDict:  # type: ignore[override]
        return self.zip_map(other, torch.add)

    def __sub__(self, other: Mapping[str, torch.Tensor]) -> ParamDict:
        return self.zip_map(other, torch.sub)

    def __mul__(self, scalar: float) -> ParamDict:
        return self.map(lambda v: v * scalar)

    __rmul__ = __mul__

    def __neg__(self) -> ParamDict:
        return self.map(torch.neg)

    @staticmethod
    def weighted_sum(dicts: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> ParamDict:
        """sum_i weights[i] * dicts[i], key by key."""
        if len(dicts) != len(weights):
            raise ValueError(f"weighted_sum got {len(dicts)} ParamDicts but {len(weights)} weights")
        if not dicts:
            raise ValueError("weighted_sum needs at least one ParamDict")
        first = ParamDict(dicts[0])
        for d in dicts[1:]:
            first.check_compatible(d)
        return ParamDict(
            {k: sum((w * d[k] for d, w in zip(dicts[1:], weights[1:])), weights[0] * first[k]) for k in first}
        )

    @staticmethod
    def mean(dicts: Sequence[Mapping[str, torch.Tensor]]) -> ParamDict:
        return ParamDict.weighted_sum(dicts, [1.0 / len(dicts)] * len(dicts))

    # --------------------------------------------------------- vector views
    def numel(self) -> int:
        return sum(v.numel() for v in self.values())

    def flatten(self) -> torch.Tensor:
        """Concatenate every tensor, in key order, into one 1-D vector."""
        return torch.cat([v.reshape(-1) for v in self.values()])

    def unflatten(self, vector: torch.Tensor) -> ParamDict:
        """Inverse of :meth:`flatten`, using this ParamDict's keys, shapes and dtypes as template."""
        if vector.dim() != 1 or vector.numel() != self.numel():
            raise ParamMismatchError(
                f"cannot unflatten a vector of shape {tuple(vector.shape)} into {self.numel()} parameters"
            )
        out, offset = ParamDict(), 0
        for k, v in self.items():
            out[k] = vector[offset : offset + v.numel()].reshape(v.shape).to(v.dtype)
            offset += v.numel()
        return out

    def cosine(self, other: Mapping[str, torch.Tensor]) -> float:
        """Global cosine similarity of the flattened vectors (0 when either is zero)."""
        self.check_compatible(other)
        a, b = self.flatten().double(), ParamDict(other).flatten().double()
        denom = a.norm() * b.norm()
        return float(a @ b / denom) if denom > 0 else 0.0

    def cosine_per_tensor(self, other: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Cosine similarity of each pair of tensors (0 when either is zero)."""
        self.check_compatible(other)
        out = {}
        for k, v in self.items():
            a, b = v.reshape(-1).double(), other[k].reshape(-1).double()
            denom = a.norm() * b.norm()
            out[k] = float(a @ b / denom) if denom > 0 else 0.0
        return out

    def allclose(self, other: Mapping[str, torch.Tensor], rtol: float = 1e-5, atol: float = 1e-8) -> bool:
        """True when keys and shapes match and every tensor is close within tolerance."""
        try:
            self.check_compatible(other)
        except ParamMismatchError:
            return False
        return all(torch.allclose(v, other[k].to(v.dtype), rtol=rtol, atol=atol) for k, v in self.items())

    def clone(self) -> ParamDict:
        return self.map(lambda v: v.detach().clone())

    def to(self, *args: object, **kwargs: object) -> ParamDict:
        return self.map(lambda v: v.to(*args, **kwargs))

    # -------------------------------------------------------------- storage
    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """Write as a safetensors file (tensors made contiguous)."""
        save_file({k: v.detach().contiguous() for k, v in self.items()}, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> ParamDict:
        """Read a safetensors file."""
        return cls(load_file(str(path), device=device))
