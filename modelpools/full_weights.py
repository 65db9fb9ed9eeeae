"""Full mode of the transformers pools: every floating parameter of the fine-tuned module is the ParamDict.

Task vectors are theta_t - theta_0 (Ilharco et al., ICLR 2023). Checkpoints are safetensors (names and
shapes checked from the headers when the pool is built) or weights-only torch pickles (loaded then, so
a bad file fails before any work); tied weights are read through their aliases.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, Optional

from torch import nn

from fusionbench.api.errors import CheckpointError
from fusionbench.api.params import ParamDict
from fusionbench.models.checkpoints import Resolved, load_state_dict, match_state_keys, tensor_shapes


class FullWeights:
    """The full-mode half of ``TransformersModelPool``: theta_0 from the resident module, theta_t from the checkpoints."""

    config: Any
    _resident: nn.Module
    _base: ParamDict
    _base_loc: Resolved
    _locs: dict[str, Resolved]
    _hint: str
    _cache: dict[str, ParamDict]
    _where: Callable[[str], str]

    @abstractmethod
    def _arch_signature(self, path: Path) -> Optional[dict[str, Any]]:
        """Architecture fields of the model saved at ``path`` (None when it has no config.json)."""

    def _init_full(self) -> None:
        """theta_0 and the tied-weight aliases; every checkpoint checked against them (see the module docstring)."""
        self._base = ParamDict(
            {
                n: p.detach().float() if p.is_meta else p.detach().float().cpu().clone()
                for n, p in self._resident.named_parameters()
                if p.is_floating_point()
            }
        )
        groups: dict[int, list[str]] = {}
        for n, p in self._resident.named_parameters(remove_duplicate=False):
            groups.setdefault(id(p), []).append(n)
        self._aliases = {names[0]: names[1:] for names in groups.values() if len(names) > 1}
        ours = self._arch_signature(self._base_loc.path)
        for task, loc in self._locs.items():
            self._check_arch(task, ours)
            shapes = tensor_shapes(loc.path)
            if shapes is not None:  # safetensors: validate names and shapes now, from the header only
                self._full_mapping(shapes, self._where(task))
            else:  # a torch pickle: load it now (refused unless weights-only) so bad files fail before any work
                params = self._read_full(task)
                if self.config.cache_finetuned:
                    self._cache[task] = params

    def _read_full(self, task: str) -> ParamDict:
        """theta_t of ``task`` (parameters its checkpoint lacks are the base's)."""
        state = load_state_dict(self._locs[task].path)
        mapping = self._full_mapping({k: tuple(v.shape) for k, v in state.items()}, self._where(task))
        return ParamDict({n: state[mapping[n]].float() if n in mapping else base for n, base in self._base.items()})

    def _full_mapping(self, found: dict[str, tuple[int, ...]], where: str) -> dict[str, str]:
        """Map resident parameter names to the checkpoint keys holding them (tied weights via aliases)."""
        return match_state_keys(
            {n: tuple(t.shape) for n, t in self._base.items()}, found, where, self._hint, self._aliases,
            ignore={n for n, _ in self._resident.named_buffers()},
        )

    def _check_arch(self, task: str, ours: Optional[dict[str, Any]]) -> None:
        """A CheckpointError when ``task``'s config.json describes another architecture than the base's (``ours``)."""
        theirs = self._arch_signature(self._locs[task].path)
        if theirs is None or ours is None:
            return
        diff = [k for k in ours if k in theirs and theirs[k] != ours[k]]
        if diff:
            k = diff[0]
            raise CheckpointError(
                f"{self._where(task)} is built on another base model ({k}={theirs[k]!r}, base has {ours[k]!r}); "
                f"mixed base models in one pool: {self._hint}"
            )
