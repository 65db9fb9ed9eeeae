"""`fusionbench convert`."""

from __future__ import annotations


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.models.convert import ConvertArgs, convert

    out, count = convert(ConvertArgs(**compose(words, ConvertArgs, groups=())))  # type: ignore[arg-type]
    print(f"wrote {count} tensors to {out}; point the pool's entry at it")
    return 0


HELP = """\
usage: fusionbench convert src=FILE out=FILE trust_pickle=BOOL

Convert a pickled checkpoint (a whole module saved with torch.save, as the task_vectors and
TALL-masks releases ship their nonlinear_finetuned.pt / finetuned.pt files) into a safetensors
state dict (out: a new .safetensors file) that every model pool reads. Pools refuse pickles
that need code to load; this separate step unpickles one file, which runs code stored in it:
only convert files you trust, and say so by setting trust_pickle to true. The classes that
pickled it must be importable (put that repository on PYTHONPATH).

keys (defaults shown):
{keys}
"""


def usage() -> str:
    """HELP with the keys of ``ConvertArgs`` filled in."""
    from fusionbench.cli.keys import keys_help
    from fusionbench.models.convert import ConvertArgs

    return HELP.format(keys=keys_help(ConvertArgs, skip=()))
