"""The shipped leaderboard/ in headless Chromium: every published set of the package is a table of its own backbone,
checkpoint family, mode and task pool, its rows labelled "published" with their source, never among measured entries."""

from __future__ import annotations

import functools
import http.server
import threading
from typing import Any, Iterator

import pytest
from test_leaderboard_page import BOARD_DIR, QuietHandler, column, open_page, sections
from test_leaderboard_page import browser as browser  # noqa: F401  (the headless Chromium fixture)

from fusionbench.leaderboard import published_sets


@pytest.fixture(scope="module")
def shipped() -> Iterator[str]:
    """http://127.0.0.1:PORT/ serving leaderboard/ as shipped."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(BOARD_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def normalized_average(row: dict[str, Any], finetuned: dict[str, Any]) -> float:
    """The row's score relative to the set's individual fine-tuned row: per task where it has tasks, else its average."""
    if row["average"] is not None:
        return row["average"] / (sum(finetuned["tasks"].values()) / len(finetuned["tasks"]))
    return sum(v / finetuned["tasks"][t] for t, v in row["tasks"].items()) / len(row["tasks"])


def test_every_published_set_is_shown_in_its_familys_table(browser: Any, shipped: str) -> None:  # noqa: F811
    open_page(browser, f"{shipped}/")
    found = sections(browser)
    for s in published_sets():
        title = f"{s['family']} ({s['checkpoint_family']} checkpoints), {s['mode']} fine-tuning, task pool {s['taskpool']}: published"
        table = found[title]  # no shipped entry measures these benchmarks: each set has its own table
        assert column(table, "method") == [f"published: {r['label']}" for r in s["rows"]]
        assert set(column(table, "version")) == {"published"}
        cells = [tr.find_elements("tag name", "td")[0].get_attribute("title") for tr in table.find_elements("css selector", "tbody tr")]
        assert cells == [r["source"] for r in s["rows"]]
        if s["checkpoint_family"] == "task-vectors-openclip" and s["family"] == "clip-vit-base-patch32":
            finetuned = s["rows"][0]
            assert column(table, "average") == [f"{normalized_average(r, finetuned):.3f}" for r in s["rows"]]
    for title, table in found.items():  # the measured tables (the mini world's local pools) hold no published row
        if not title.endswith(": published"):
            assert not [m for m in column(table, "method") if m.startswith("published:")], title
