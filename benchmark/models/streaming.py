"""Element-wise merges streamed tensor by tensor over safetensors checkpoints.

Element-wise merges (task arithmetic, averaging) need, for one tensor, that tensor of each
checkpoint and nothing else. :func:`stream_merge` therefore reads one
tensor name at a time from every checkpoint (``safetensors.safe_open``, each file mapped
only while that tensor is read), combines them, and appends the result to an output
safetensors file whose header is laid out up front from the names, dtypes and shapes.
Peak memory is a few tensors, not a few checkpoints (DESIGN: "Full checkpoints stream
tensor by tensor from safetensors for element-wise methods"); the result equals the
in-memory ``ParamDict`` merge. The methods give the combining function
(``fusionbench.methods.task_arithmetic.stream_task_arithmetic``,
``fusionbench.methods.simple_average.stream_average``); ``fusionbench merge stream=true`` writes whole
transformers models the same way (``fusionbench.modelpools.streamed``).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Callable, Mapping, Optional, Sequence

import torch
from safetensors import safe_open

from fusionbench.api.errors import ParamMismatchError

Layout = dict[str, tuple[torch.dtype, tuple[int, ...]]]  # name -> (dtype, shape), in file order

DTYPE_CODES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
_CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}


def tensor_layout(path: str | Path) -> Layout:
    """Names, dtypes and shapes of a safetensors file, read from its header only."""
    with safe_open(str(path), framework="pt") as handle:
        out: Layout = {}
        for name in handle.keys():
            piece = handle.get_slice(name)
            out[name] = (_CODE_DTYPES[piece.get_dtype()], tuple(piece.get_shape()))
    return out


def read_tensor(path: str | Path, name: str) -> torch.Tensor:
    """One tensor of a safetensors file; the file is mapped only while it is read."""
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name)


def _nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count * torch.empty((), dtype=dtype).element_size()


class SafetensorsWriter:
    """Writes a safetensors file one tensor at a time, in the order of ``layout``."""

    def __init__(self, path: str | Path, layout: Mapping[str, tuple[torch.dtype, tuple[int, ...]]],
                 metadata: Optional[Mapping[str, str]] = None) -> None:
        header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
        offset = 0
        for name, (dtype, shape) in layout.items():
            end = offset + _nbytes(dtype, shape)
            header[name] = {"dtype": DTYPE_CODES[dtype], "shape": list(shape), "data_offsets": [offset, end]}
            offset = end
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # the data section starts 8-byte aligned, as safetensors writes it
        self._layout = dict(layout)
        self._order = iter(self._layout)
        self._file: BinaryIO = open(path, "wb")
        self._file.write(struct.pack("<Q", len(encoded)) + encoded)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append ``name``'s data; names must come in layout order with the layout's dtype and shape."""
        expected = next(self._order, None)
        dtype, shape = self._layout.get(name, (None, None))
        if name != expected or tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise ValueError(f"expected tensor {expected!r} {dtype} {shape}, got {name!r} {tensor.dtype} {tuple(tensor.shape)}")
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        self._file.write(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")

    def close(self) -> None:
        missing = next(self._order, None)
        self._file.close()
        if missing is not None:
            raise ValueError(f"safetensors file closed before tensor {missing!r} was written")

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Optional[Mapping[str, str]] = None) -> None:
    """A safetensors file whose bytes depend on its content only: tensors in name order, metadata keys sorted.

    (safetensors' own ``save_file`` orders the metadata through a hash map, so two saves of equal
    content can differ byte for byte, which defeats checksums of built artefacts.)
    """
    names = sorted(tensors)
    layout = {name: (tensors[name].dtype, tuple(tensors[name].shape)) for name in names}
    with SafetensorsWriter(path, layout, dict(sorted(metadata.items())) if metadata else None) as writer:
        for name in names:
            writer.write(name, tensors[name])


def stream_merge(
    checkpoints: Sequence[str | Path],
    out: str | Path,
    combine: Callable[[list[torch.Tensor]], torch.Tensor],
    metadata: Optional[Mapping[str, str]] = None,
) -> Path:
    """``out[name] = combine([c[name] for c in checkpoints])`` for every tensor, one name at a time.

    All checkpoints must hold the same names and shapes (a ParamMismatchError names the
    first difference). The output keeps the first checkpoint's dtypes and tensor order.
    """
    if not checkpoints:
        raise ValueError("stream_merge needs at least one checkpoint")
    layouts = [tensor_layout(path) for path in checkpoints]
    first = layouts[0]
    for path, layout in zip(checkpoints[1:], layouts[1:]):
        odd = sorted(first.keys() ^ layout.keys()) or sorted(k for k in first if first[k][1] != layout[k][1])
        if odd:
            raise ParamMismatchError(f"checkpoint {str(path)!r} does not match {str(checkpoints[0])!r} at tensor {odd[0]!r}")
    with SafetensorsWriter(out, first, metadata) as writer:
        for name, (dtype, _) in first.items():
            writer.write(name, combine([read_tensor(path, name) for path in checkpoints]).to(dtype))
    return Path(out)

