"""leaderboard/index.html in real headless Chromium, served by python's http.server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from fusionbench import leaderboard as lb

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip("needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BOARD_DIR = Path(__file__).resolve().parents[1] / "leaderboard"
TASKS = ["alpha", "beta"]
EVIL = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"


def entry(
    name: str, scores: dict[str, float], protocol: str = "single_run", by_size: dict[str, float] | None = None, checkpoints: str = "local"
) -> dict[str, Any]:
    """A schema-valid entry whose fine-tuned scores are 0.8, so normalised = score / 0.8."""
    tasks = {
        t: {"metric": "accuracy", "score": s, "n": 400, "stderr": (s * (1 - s) / 400) ** 0.5, "normalized": s / 0.8, "finetuned": 0.8, "pretrained": 0.3}
        for t, s in scores.items()
    }
    mean = lambda key: sum(r[key] for r in tasks.values()) / len(tasks)  # noqa: E731
    out: dict[str, Any] = {
        "schema": lb.ENTRY_SCHEMA,
        "benchmark": {"family": "tiny", "checkpoint_family": checkpoints, "mode": "lora", "modelpool": "tiny_lora", "taskpool": "tiny", "tasks": TASKS, "split": "test", "limit": None, "protocol": protocol},
        "method": {"name": name, "version": "1", "reference": "a paper", "parameters": {"scaling_factor": 0.3}},
        "tasks": tasks,
        "average": {k: mean(k) for k in ("score", "normalized", "finetuned", "pretrained")},
        "cost": {"merge_seconds": 0.1, "eval_seconds": 0.2, "peak_memory_bytes": 1000},
        "provenance": {"source": "run_report", "packages": {"python": "3.11", "torch": "2.3"}, "git_revision": None, "device": "cpu", "date": "2025-01-01T00:00:00+00:00", "seed": 0, "config_hash": "0" * 64},
    }
    if protocol == "subset_sweep":
        out["benchmark"].update(subsets="all", selection_split="validation")
        out["method"].update(parameters={}, grid={"scaling_factor": [0.3, 0.5]})
        stats = {k: {"mean": v, "std": 0.01, "n": 1} for k, v in (by_size or {}).items()}
        out["sweep"] = {"subsets": len(stats), "table1": {"mean": sum(s["mean"] for s in stats.values()) / len(stats), "std": 0.02, "n": len(stats)}, "by_size": stats}
        out["cost"] = {"wall_seconds": 3.0, "evaluations": 10, "computed": 10}
        out["provenance"]["source"] = "sweep_summary"
    assert lb.problem(out) is None, lb.problem(out)
    return out


SINGLE = [
    entry("average_it", {"alpha": 0.40, "beta": 0.64}),  # normalised mean 0.65
    entry(EVIL, {"alpha": 0.72, "beta": 0.32}),  # normalised mean 0.65 (a hair below average_it in floating point)
    entry("arith", {"alpha": 0.56, "beta": 0.72}),  # 0.80
]
OTHER_FAMILY = [entry("best_elsewhere", {"alpha": 0.79, "beta": 0.79}, checkpoints="task-vectors-openclip")]  # never ranked with SINGLE
PUBLISHED = [
    {"family": "tiny", "checkpoint_family": "local", "mode": "lora", "taskpool": "tiny", "rows": [
        {"method": "finetuned", "label": "individual fine-tuned", "tasks": {"alpha": 80.0, "beta": 80.0}, "average": None, "source": "a model card"},
        {"method": "ta", "label": "task arithmetic", "tasks": {"alpha": 56.0, "beta": 72.0}, "average": 64.0, "source": "a paper, table 2"},
    ]},
    {"family": "tiny", "checkpoint_family": "fusionbench-hf", "mode": "lora", "taskpool": "tiny", "rows": [  # no entry measures it yet
        {"method": "iso", "label": "Iso-C", "tasks": {}, "average": 90.0, "source": "another paper"},
    ]},
]
SWEEP = [
    entry("arith", {"alpha": 0.5, "beta": 0.6}, "subset_sweep", {"2": 0.7}),
    entry("ties_like", {"alpha": 0.6, "beta": 0.6}, "subset_sweep", {"2": 0.75}),
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """http://127.0.0.1:PORT/ serving /board/ (the page with test data) and /empty/ (the page without data)."""
    root = tmp_path_factory.mktemp("site")
    for folder in ("board", "empty"):
        (root / folder).mkdir()
        for name in ("index.html", "leaderboard.js", "schema.json"):
            shutil.copy(BOARD_DIR / name, root / folder / name)
    board = {"schema": lb.LEADERBOARD_SCHEMA, "updated": "2025-01-02T00:00:00+00:00", "entries": SINGLE + SWEEP + OTHER_FAMILY, "published": PUBLISHED}
    assert lb.problem(board, "leaderboard") is None
    (root / "board" / "leaderboard.json").write_text(json.dumps(board))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def open_page(browser: Any, url: str) -> None:
    browser.get(url)
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("ready", "error"))


def sections(browser: Any) -> dict[str, Any]:
    return {s.find_element(By.TAG_NAME, "h2").text: s for s in browser.find_elements(By.CSS_SELECTOR, "section.benchmark")}


def column(section: Any, label: str) -> list[str]:
    headers = [th.text.rstrip(" ▲▼") for th in section.find_elements(By.CSS_SELECTOR, "thead th")]
    index = headers.index(label)
    return [row.find_elements(By.TAG_NAME, "td")[index].text for row in section.find_elements(By.CSS_SELECTOR, "tbody tr")]


def click_header(section: Any, label: str) -> None:
    next(b for b in section.find_elements(By.CSS_SELECTOR, "thead th button") if b.text == label).click()


def test_rows_render_per_benchmark(browser: Any, site: str) -> None:
    open_page(browser, f"{site}/board/")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "ready"
    found = sections(browser)
    assert list(found) == [
        "tiny (local checkpoints), lora fine-tuning, task pool tiny: single run",
        "tiny (local checkpoints), lora fine-tuning, task pool tiny: sweep over all subsets",
        "tiny (task-vectors-openclip checkpoints), lora fine-tuning, task pool tiny: single run",
        "tiny (fusionbench-hf checkpoints), lora fine-tuning, task pool tiny: published",  # published numbers only: after the measured
    ]
    single, sweep = found["tiny (local checkpoints), lora fine-tuning, task pool tiny: single run"], found["tiny (local checkpoints), lora fine-tuning, task pool tiny: sweep over all subsets"]
    # default order: normalised average, best first
    assert column(single, "method")[:3] == ["arith", "average_it", EVIL]
    assert column(single, "average")[:3] == ["0.800", "0.650", "0.650"]
    assert column(single, "alpha")[:3] == ["0.700", "0.500", "0.900"]
    assert column(sweep, "method") == ["ties_like", "arith", "published: individual fine-tuned", "published: task arithmetic"]
    assert column(sweep, "all subsets") == ["0.750 ± 0.020", "0.700 ± 0.020", "–", "–"]
    assert "6 entries in 3 benchmarks (model pools: tiny_lora)" in browser.find_element(By.ID, "status").text


def test_sorting_and_views(browser: Any, site: str) -> None:
    open_page(browser, f"{site}/board/")
    single = sections(browser)["tiny (local checkpoints), lora fine-tuning, task pool tiny: single run"]
    click_header(single, "beta")
    assert column(single, "method")[:3] == ["arith", "average_it", EVIL]  # 0.90, 0.80, 0.40
    assert single.find_element(By.XPATH, ".//th[.//button[text()='beta']]").get_attribute("aria-sort") == "descending"
    click_header(single, "beta")
    assert column(single, "method")[:3] == [EVIL, "average_it", "arith"]
    click_header(single, "method")
    assert column(single, "method")[:3] == [EVIL, "arith", "average_it"]
    # absolute scores, standard error on hover
    single.find_element(By.CSS_SELECTOR, "input[value='score']").click()
    click_header(single, "alpha")
    assert column(single, "alpha")[:3] == ["0.720", "0.560", "0.400"]
    cell = single.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")[4]
    assert cell.get_attribute("title").startswith("accuracy 0.7200 ± 0.0224 (stderr, n=400)")


def test_markup_in_data_is_shown_as_text(browser: Any, site: str) -> None:
    open_page(browser, f"{site}/board/")
    single = sections(browser)["tiny (local checkpoints), lora fine-tuning, task pool tiny: single run"]
    assert EVIL in column(single, "method")
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('main script, main img').length") == 0


def test_plot_of_normalised_score_by_number_of_tasks(browser: Any, site: str) -> None:
    open_page(browser, f"{site}/board/")
    sweep = sections(browser)["tiny (local checkpoints), lora fine-tuning, task pool tiny: sweep over all subsets"]
    plot = sweep.find_element(By.CSS_SELECTOR, "svg.plot")
    assert len(plot.find_elements(By.CSS_SELECTOR, "g.series polyline")) == 2
    assert [t.text for t in plot.find_elements(By.CSS_SELECTOR, "g.legend text")] == ["arith", "ties_like"]
    titles = browser.execute_script("return [...arguments[0].querySelectorAll('circle title')].map(t => t.textContent)", plot)
    assert titles == ["arith, 2 tasks: 0.700 ± 0.010 over 1 subsets", "ties_like, 2 tasks: 0.750 ± 0.010 over 1 subsets"]
    assert not sections(browser)["tiny (local checkpoints), lora fine-tuning, task pool tiny: single run"].find_elements(By.TAG_NAME, "svg")


def test_missing_data_is_explained(browser: Any, site: str) -> None:
    open_page(browser, f"{site}/empty/")
    status = browser.find_element(By.ID, "status").text
    assert "Could not load leaderboard.json (HTTP 404)" in status and "python -m http.server -d leaderboard" in status


def test_published_rows_sit_unranked_in_their_familys_table(browser: Any, site: str) -> None:
    open_page(browser, f"{site}/board/")
    found = sections(browser)
    single = found["tiny (local checkpoints), lora fine-tuning, task pool tiny: single run"]
    published = ["published: individual fine-tuned", "published: task arithmetic"]
    assert column(single, "method") == ["arith", "average_it", EVIL, *published]
    assert column(single, "version")[3:] == ["published", "published"]
    assert column(single, "average")[3:] == ["1.000", "0.800"]  # normalised by the published fine-tuned row
    click_header(single, "beta")
    click_header(single, "beta")  # ascending: the measured entries reorder, the published rows stay below them
    assert column(single, "method") == [EVIL, "average_it", "arith", *published]
    single.find_element(By.CSS_SELECTOR, "input[value='score']").click()
    assert column(single, "alpha")[3:] == ["0.800", "0.560"]
    row = single.find_elements(By.CSS_SELECTOR, "tbody tr.published")[1]
    assert row.find_elements(By.TAG_NAME, "td")[0].get_attribute("title") == "a paper, table 2"
    other = found["tiny (task-vectors-openclip checkpoints), lora fine-tuning, task pool tiny: single run"]
    assert column(other, "method") == ["best_elsewhere"]  # another checkpoint family: its own table, no published rows
    only = found["tiny (fusionbench-hf checkpoints), lora fine-tuning, task pool tiny: published"]
    assert column(only, "method") == ["published: Iso-C"] and column(only, "average") == ["–"]
    only.find_element(By.CSS_SELECTOR, "input[value='score']").click()
    assert column(only, "average") == ["0.900"]
