"""The profile's rich tables: each figure beside the paper's and as a ratio to full fine-tuning."""

from __future__ import annotations

from typing import Callable, Optional

from rich.console import Console
from rich.table import Table

from fusionbench.profiling.figures import GIB, TABLE3, TABLE4
from fusionbench.profiling.result import Profile


def _cell(value: Optional[float], ratio: Optional[float], fmt: Callable[[float], str]) -> str:
    if value is None:
        return "-"
    return fmt(value) + (f" ({ratio:.2f}x)" if ratio is not None else "")


def table(profile: Profile, which: str) -> Table:
    """Table 3 or 4 (``which`` = "table3" | "table4"): per figure, the paper's row and ours, each with its ratio to full."""
    rows = TABLE3 if which == "table3" else TABLE4
    paradigms = profile.settings.paradigms
    paper, paper_ratio = getattr(profile.paper, which), getattr(profile.paper, f"{which}_ratio_to_full")
    ours, ours_ratio = profile.ours, profile.ours_ratio_to_full
    number = "3: fine-tuning statistics" if which == "table3" else "4: training and inference cost"
    key = profile.paper.source.get(f"{which}_key")
    title = (
        f"Table {number} - {profile.model} - ours: batch {profile.settings.batch_size} on {profile.device['name']}; "
        f"paper: {key + ', batch ' + str(profile.settings.paper_batch_size) if key else 'no published figures'}"
    )
    t = Table(title=title, caption="value (ratio to full fine-tuning of the same source)")
    t.add_column("figure")
    t.add_column("source")
    for p in paradigms:
        t.add_column(p, justify="right")
    for row in rows:
        if row.paper is not None:
            t.add_row(row.label, "paper", *(_cell(paper.get(p, {}).get(row.ours), paper_ratio.get(p, {}).get(row.ours), row.fmt) for p in paradigms))
        t.add_row("" if row.paper is not None else row.label, "ours",
                  *(_cell(ours[p].get(row.ours), ours_ratio.get(p, {}).get(row.ours), row.fmt) for p in paradigms), end_section=True)
    return t


def render(profile: Profile, console: Optional[Console] = None) -> None:
    """Print both tables and the notes needed to read them."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 132)
    console.print(table(profile, "table3"))
    console.print(table(profile, "table4"))
    notes = []
    if profile.device["type"] == "cpu":
        notes.append(f"CPU peak memory is the peak RSS of each measuring process; {profile.rss_floor_bytes / GIB:.2f} GiB of it "
                     f"is the floor of a process that only imports torch, transformers and peft.")
    paper_batch = profile.settings.paper_batch_size
    if paper_batch is not None and profile.settings.batch_size != paper_batch:
        notes.append("our batch differs from the paper's: compare ratios to full fine-tuning, not absolute figures.")
    if profile.model.startswith("clip"):
        notes.append("the paper's CLIP LoRA counts (294k) are LoRA on q_proj only; FusionBench's recipe adapts q_proj and v_proj.")
    if profile.model.startswith("flan-t5"):
        notes.append("the paper's Flan-T5 memory is per GPU of four; its L-LoRA totals include a stored copy of the wrapped base weights.")
    for note in notes:
        console.print(f"note: {note}")
