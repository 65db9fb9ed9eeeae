"""The linear algebra of the SVD-based methods (CART, TSV, Iso-C, Iso-CTS): one SVD for all of them.

:func:`svd` factorises the wide orientation of a matrix (rows <= columns; a tall matrix is
transposed and its factors swapped), as the official TSV / Iso code does for ViT weights:
LAPACK's divide-and-conquer SVD converges on a nearly orthonormal 768x3072 matrix where it
can fail on its 3072x768 transpose in float32. On a convergence failure it retries in float64,
then with the QR-iteration driver ``gesvd`` (cuSOLVER's on a GPU, scipy's LAPACK on a CPU);
only then it raises :class:`SvdDidNotConverge`, which :func:`naming` turns into one
MethodError line naming the tensor.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import scipy.linalg
import torch

from fusionbench.api.errors import MethodError

Factors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class SvdDidNotConverge(RuntimeError):
    """Every SVD attempt of :func:`svd` failed to converge."""


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float64 for float64 inputs, float32 otherwise (SVD is undefined for half types)."""
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def _gesvd(wide: torch.Tensor) -> Factors:
    """U, S, V^T of ``wide`` in float64 with the QR-iteration driver gesvd."""
    if wide.is_cuda:
        return torch.linalg.svd(wide.double(), full_matrices=False, driver="gesvd")
    u, s, vh = scipy.linalg.svd(wide.double().numpy(), full_matrices=False, lapack_driver="gesvd")
    return torch.from_numpy(u), torch.from_numpy(s), torch.from_numpy(vh)


def _wide_svd(wide: torch.Tensor) -> Optional[Factors]:
    """U, S, V^T of ``wide``: as it is, then in float64, then with gesvd; None when none converges."""
    attempts = [lambda: torch.linalg.svd(wide, full_matrices=False)]
    if wide.dtype != torch.float64:
        attempts.append(lambda: torch.linalg.svd(wide.double(), full_matrices=False))
    attempts.append(lambda: _gesvd(wide))
    for attempt in attempts:
        try:
            u, s, vh = attempt()
        except (torch.linalg.LinAlgError, scipy.linalg.LinAlgError):
            continue
        return u.to(wide.dtype), s.to(wide.dtype), vh.to(wide.dtype)
    return None


def svd(matrix: torch.Tensor) -> Factors:
    """Thin SVD (U, S, V) with ``matrix = U diag(S) V^T``; V's columns are right singular vectors."""
    tall = matrix.shape[0] > matrix.shape[1]
    factors = _wide_svd(matrix.mT if tall else matrix)
    if factors is None:
        rows, cols = matrix.shape
        raise SvdDidNotConverge(
            f"the SVD of its {rows}x{cols} task matrix did not converge in {str(matrix.dtype).replace('torch.', '')}, "
            f"in float64 or with the gesvd driver"
        )
    u, s, vh = factors
    return (vh.mT, s, u) if tall else (u, s, vh.mT)


@contextmanager
def naming(name: str) -> Iterator[None]:
    """Turn a :class:`SvdDidNotConverge` raised inside into a MethodError naming tensor ``name``."""
    try:
        yield
    except SvdDidNotConverge as exc:
        raise MethodError(
            f"tensor {name!r} cannot be factorised: {exc}; its task vectors hold extreme or degenerate values "
            f"(check that tensor in the fine-tuned checkpoints), or choose a method that does not factorise it"
        ) from None


def low_rank(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """Best rank-``rank`` approximation of ``matrix`` (truncated SVD)."""
    u, s, v = svd(matrix)
    return (u[:, :rank] * s[:rank]) @ v[:, :rank].mT


def orthogonalise(basis: torch.Tensor) -> torch.Tensor:
    """Closest matrix with orthonormal columns (orthogonal Procrustes): basis = P D Q^T -> P Q^T."""
    p, _, q = svd(basis)
    return p @ q.mT
