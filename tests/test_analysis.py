"""fusionbench analyze: task-vector cosine matrices, weight disentanglement error, scaling curves and interference on the dummy pool."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import pytest
import torch

from fusionbench.analysis import analyses as analysis
from fusionbench.api.errors import FusionBenchError
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool, TaskPoolConfig
from fusionbench.cli.main import main
from fusionbench.taskpools.dummy import DummyTaskPool, DummyTaskPoolConfig
from fusionbench.utils.dummy_world import DUMMY_TASKS, teacher

ANCHORS = Path("/work/shared/reference/anchors.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str, str]:
    code = main(list(words))
    out, err = capsys.readouterr()
    return code, out, err


def task_vector(task: str) -> np.ndarray:
    base, tuned = teacher(None, 0), teacher(task, 0)
    return np.concatenate([(tuned[k] - base[k]).double().numpy().ravel() for k in base])


def predictions(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return (x @ params["weight"].T + params["bias"]).argmax(-1)


def dummy_base_and_task_vectors() -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    """The dummy pool's theta_0 and its task vectors, from the teachers directly."""
    base = teacher(None, 0)
    return base, {t: {k: teacher(t, 0)[k] - base[k] for k in base} for t in DUMMY_TASKS}


def validation_accuracy(params: dict[str, torch.Tensor], task: str) -> float:
    """Accuracy of the dummy linear model ``params`` on ``task``'s validation split, by hand."""
    x, y = DummyTaskPool(DummyTaskPoolConfig(type="dummy", name="dummy"))._data(task, "validation")
    return float((predictions(params, x) == y).float().mean())


# ------------------------------------------------------------------ cosine
def test_cosine_matrix_of_the_dummy_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "analyze", "cosine", "modelpool=dummy", f"output_dir={tmp_path}")
    assert code == 0, err
    vectors = [task_vector(t) for t in DUMMY_TASKS]
    expected = np.array([[a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for b in vectors] for a in vectors])
    with (tmp_path / "cosine.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["task", *DUMMY_TASKS] and [r[0] for r in rows[1:]] == DUMMY_TASKS
    np.testing.assert_allclose(np.array([[float(v) for v in r[1:]] for r in rows[1:]]), expected, atol=1e-6)
    result = json.loads((tmp_path / "cosine.json").read_text())
    np.testing.assert_allclose(result["cosine"], expected, atol=1e-12)
    offdiag = expected[~np.eye(4, dtype=bool)].mean()
    assert result["mean_offdiag"] == pytest.approx(offdiag) and result["paper_mean_offdiag"] is None
    assert f"mean off-diagonal cosine similarity: {offdiag:.3f}\n" in out and "paper" not in out
    assert (tmp_path / "cosine.png").read_bytes().startswith(PNG_MAGIC)
    assert "type: dummy" in (tmp_path / "config.yaml").read_text()


def test_paper_value_is_printed_when_family_and_mode_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool = tmp_path / "clip-vit-base-patch16_full.yaml"  # a full-mode pool of family clip-vit-base-patch16
    pool.write_text("type: dummy\ntaskpool: dummy\ntasks: [alpha, beta, gamma]\nseed: 0\n")
    code, out, _ = cli(capsys, "analyze", "cosine", f"modelpool={pool}", f"output_dir={tmp_path / 'out'}")
    assert code == 0 and "(paper, clip-vit-base-patch16 full: 0.202)" in out
    assert json.loads((tmp_path / "out" / "cosine.json").read_text())["paper_mean_offdiag"] == 0.202


@pytest.mark.skipif(not ANCHORS.is_file(), reason="the project's reference anchors are not in this checkout")
def test_paper_values_match_the_reference_anchors() -> None:
    anchors = json.loads(ANCHORS.read_text())["llora_paper"]["cosine_similarity_mean_offdiag"]
    assert analysis.PAPER_COSINE_MEAN_OFFDIAG == {k: v for k, v in anchors.items() if not k.startswith("_")}


def test_gram_accumulates_chunks_in_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "_CHUNK", 7)
    g = torch.Generator().manual_seed(0)
    vectors = [ParamDict(a=torch.randn(5, 9, generator=g), b=torch.randn(30, generator=g)) for _ in range(3)]
    flat = np.stack([v.flatten().double().numpy() for v in vectors])
    np.testing.assert_allclose(analysis.gram(vectors).numpy(), flat @ flat.T, rtol=1e-12)


class VectorPool:
    """Just enough of a model pool for cosine_matrix: fixed task vectors."""

    def __init__(self, vectors: dict[str, ParamDict]) -> None:
        self.vectors = vectors
        self.tasks = list(vectors)

    def task_vector(self, task: str) -> ParamDict:
        return self.vectors[task]


def test_zero_task_vector_has_cosine_zero() -> None:
    pool = VectorPool({"a": ParamDict(w=torch.tensor([1.0, 0.0])), "b": ParamDict(w=torch.tensor([1.0, 1.0])), "z": ParamDict(w=torch.zeros(2))})
    matrix = analysis.cosine_matrix(pool)  # type: ignore[arg-type]
    np.testing.assert_allclose(matrix, np.array([[1, 2**-0.5, 0], [2**-0.5, 1, 0], [0, 0, 0]]), atol=1e-12)
    assert analysis.mean_offdiag(matrix) == pytest.approx(2 * 2**-0.5 / 6)


# ---------------------------------------------------------- disentanglement
def expected_xi(a: str, b: str, grid: list[float], limit: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 3 by hand: total disagreement and task a's term."""
    taskpool = DummyTaskPool(DummyTaskPoolConfig(type="dummy", name="dummy", limit=limit))
    base = teacher(None, 0)
    tau = {t: {k: teacher(t, 0)[k] - base[k] for k in base} for t in (a, b)}
    data = {t: taskpool._data(t, "test")[0] for t in (a, b)}
    xi, term_a = np.zeros((len(grid), len(grid))), np.zeros((len(grid), len(grid)))
    for i, l1 in enumerate(grid):
        for j, l2 in enumerate(grid):
            both = {k: base[k] + l1 * tau[a][k] + l2 * tau[b][k] for k in base}
            only = {a: {k: base[k] + l1 * tau[a][k] for k in base}, b: {k: base[k] + l2 * tau[b][k] for k in base}}
            terms = [int((predictions(both, data[t]) != predictions(only[t], data[t])).sum()) / len(data[t]) for t in (a, b)]
            xi[i, j], term_a[i, j] = sum(terms), terms[0]
    return xi, term_a


@pytest.mark.parametrize("limit", [None, 100])
def test_disentanglement_error_matches_eq3(limit: Optional[int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = [-1.0, 0.0, 0.5, 1.0]
    words = ["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,gamma", "grid=[-1,0,0.5,1]", f"output_dir={tmp_path}"]
    code, out, err = cli(capsys, *words, *([f"taskpool.limit={limit}"] if limit else []))
    assert code == 0, err
    result = json.loads((tmp_path / "disentanglement.json").read_text())
    xi, term_a = expected_xi("alpha", "gamma", grid, limit)
    assert result["tasks"] == ["alpha", "gamma"] and result["grid"] == grid
    np.testing.assert_allclose(result["xi"], xi, atol=1e-12)
    np.testing.assert_allclose(result["per_task"]["alpha"], term_a, atol=1e-12)
    assert result["xi"][1][1] == 0.0  # theta_0 against itself
    assert [row[1] for row in result["per_task"]["alpha"]] == [0.0] * 4  # l2 = 0: the two-task model is task a's own
    counts = np.array(result["xi"]) * (limit or 512)
    assert np.allclose(counts, np.round(counts), atol=1e-9)  # disagreements counted over limit (or all 512) examples
    assert (tmp_path / "disentanglement.png").read_bytes().startswith(PNG_MAGIC)
    assert "weight disentanglement error of alpha and gamma on dummy (full), 4x4 grid" in out


def test_disagreement_counts_differing_predictions() -> None:
    assert analysis.disagreement(torch.tensor([0, 1, 2, -1]), torch.tensor([0, 2, 2, -1])) == 0.25
    nan = float("nan")
    assert analysis.disagreement(torch.tensor([1.5, nan, nan, 2.0]), torch.tensor([1.5, nan, 3.0, 2.5])) == 0.5


def test_tasks_may_be_a_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "analyze", "disentanglement", "modelpool=dummy", "tasks=[beta,delta]", "grid=[0,1]", f"output_dir={tmp_path}")
    assert code == 0, err
    assert json.loads((tmp_path / "disentanglement.json").read_text())["tasks"] == ["beta", "delta"]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["analyze"], r"analyze what\? Choose one of: cosine, disentanglement"),
        (["analyze", "cosin", "modelpool=dummy"], r"Did you mean 'cosine'\?"),
        (["analyze", "cosine"], r"missing modelpool: name one with modelpool=OPTION"),
        (["analyze", "cosine", "modelpool=dummy", "modelpool.tasks=[alpha]"], r"pool 'dummy' has 1 task\(s\); the cosine matrix needs at least 2"),
        (["analyze", "cosine", "modelpool=dummy", "grid=[1]"], r"unknown key 'grid'"),
        (["analyze", "disentanglement", "modelpool=dummy"], r"needs two tasks: tasks=a,b with tasks of the pool: alpha, beta, delta, gamma"),
        (["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha"], r"tasks=alpha must name two different tasks, e\.g\. tasks=alpha,beta"),
        (["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,alpha"], r"must name two different tasks"),
        (["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,gama"], r"pool has no task 'gama'\. Did you mean 'gamma'\?"),
        (["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,beta", "grid=[]"], r"grid must be a non-empty list"),
        (["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,beta", "grid=[a]"], r"invalid value for grid"),
        (["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,beta", "split=dev"], r"split='dev' is not a split"),
        (["analyze", "scaling", "modelpool=dummy", "lambdas=[]"], r"lambdas must be a non-empty list"),
        (["analyze", "scaling", "modelpool=dummy", "lambdas=[[1]]"], r"lambdas must be a non-empty list of finite numbers \(got lambdas=\[\[1\]\]\)"),
        (["analyze", "disentanglement", "modelpool=dummy", "tasks=alpha,beta", "grid=[[0],[1]]"], r"grid must be a non-empty list of finite numbers"),
        (["analyze", "scaling", "modelpool=dummy", "split=dev"], r"split='dev' is not a split"),
        (["analyze", "scalng", "modelpool=dummy"], r"Did you mean 'scaling'\?"),
        (["analyze", "interferance", "modelpool=dummy"], r"Did you mean 'interference'\?"),
        (["analyze", "interference", "modelpool=dummy", "scaling_factor=nan"], r"scaling_factor=nan must be a finite number"),
        (["analyze", "interference", "modelpool=dummy", "scaling_factor=[0.3]"], r"scaling_factor"),
        (["analyze", "interference", "modelpool=dummy", "split=dev"], r"split='dev' is not a split"),
    ],
)
def test_bad_input_is_one_clear_line(words: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *words)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "outputs").exists()


class NoPredictions(TaskPool):
    """A task pool that keeps the default predict()."""

    name = "plain"
    description = "test double"

    def all_tasks(self) -> list[str]:
        return ["alpha"]

    def evaluate(self, model: Any, tasks: list[str], split: str = "test") -> dict[str, Any]:
        return {}

    def batches(self, task: str, split: str, batch_size: int, limit: Optional[int] = None) -> Iterator[Any]:
        return iter(())

    def loss(self, model: Any, batch: Any, task: str) -> torch.Tensor:
        return torch.zeros(())


# ------------------------------------------------------------------ scaling
def test_scaling_curves_match_a_hand_computation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lambdas = [0.0, 0.3, 1.0]
    code, out, err = cli(capsys, "analyze", "scaling", "modelpool=dummy", "lambdas=[0,0.3,1]", "split=validation", f"output_dir={tmp_path}")
    assert code == 0, err
    result = json.loads((tmp_path / "scaling.json").read_text())
    base, tau = dummy_base_and_task_vectors()

    for task in DUMMY_TASKS:
        alone = [validation_accuracy({k: base[k] + lam * tau[task][k] for k in base}, task) for lam in lambdas]
        summed = [validation_accuracy({k: base[k] + lam * sum(tau[t][k] for t in DUMMY_TASKS) for k in base}, task) for lam in lambdas]
        np.testing.assert_allclose(result["alone"][task], alone, atol=1e-6)
        np.testing.assert_allclose(result["sum"][task], summed, atol=1e-6)
        assert result["alone"][task][0] == result["sum"][task][0]  # lambda 0: both are the base
        assert result["alone"][task][-1] == 1.0  # lambda 1 alone: the fine-tuned teacher itself
    assert result["mean_sum"][1] == pytest.approx(np.mean([result["sum"][t][1] for t in DUMMY_TASKS]))
    rows = list(csv.reader((tmp_path / "scaling.csv").read_text().splitlines()))
    assert rows[0] == ["curve", "task", "0", "0.3", "1"] and len(rows) == 1 + 2 * len(DUMMY_TASKS)
    assert (tmp_path / "scaling.png").read_bytes().startswith(PNG_MAGIC)
    assert "written to" in out and "scaling.png" in out


def test_scaling_of_a_one_task_pool_has_equal_curves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "analyze", "scaling", "modelpool=dummy", "modelpool.tasks=[gamma]", "lambdas=[0,0.5,1]", f"output_dir={tmp_path}")
    assert code == 0, err
    result = json.loads((tmp_path / "scaling.json").read_text())
    assert result["tasks"] == ["gamma"] and result["alone"] == result["sum"]


# ------------------------------------------------------------------ interference
def test_interference_matches_a_hand_computation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "analyze", "interference", "modelpool=dummy", "scaling_factor=0.4", "split=validation", f"output_dir={tmp_path}")
    assert code == 0, err
    result = json.loads((tmp_path / "interference.json").read_text())
    base, tau = dummy_base_and_task_vectors()

    merged = {k: base[k] + 0.4 * sum(tau[t][k] for t in DUMMY_TASKS) for k in base}
    for scored in DUMMY_TASKS:
        at_base = validation_accuracy(base, scored)
        single = {t: validation_accuracy({k: base[k] + 0.4 * tau[t][k] for k in base}, scored) for t in DUMMY_TASKS}
        assert result["base"][scored] == pytest.approx(at_base)
        assert result["single"][scored] == pytest.approx(
            {t: validation_accuracy({k: base[k] + 0.4 * tau[scored][k] for k in base}, t) for t in DUMMY_TASKS}
        )
        assert result["own"][scored] == pytest.approx(single[scored] - at_base)
        assert result["cross"][scored] == pytest.approx(sum(single[t] - at_base for t in DUMMY_TASKS if t != scored))
        assert result["additive"][scored] == pytest.approx(at_base + sum(single[t] - at_base for t in DUMMY_TASKS))
        assert result["sum"][scored] == pytest.approx(validation_accuracy(merged, scored))
    assert result["mean_sum"] == pytest.approx(np.mean(list(result["sum"].values())))
    rows = list(csv.reader((tmp_path / "interference.csv").read_text().splitlines()))
    assert rows[0][:3] == ["task", "base", f"change_by_{DUMMY_TASKS[0]}"] and len(rows) == 1 + len(DUMMY_TASKS)
    assert (tmp_path / "interference.png").read_bytes().startswith(PNG_MAGIC)
    assert "additive" in out and "interference.png" in out


def test_interference_of_a_one_task_pool_is_its_own_gain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "analyze", "interference", "modelpool=dummy", "modelpool.tasks=[gamma]", f"output_dir={tmp_path}")
    assert code == 0, err
    result = json.loads((tmp_path / "interference.json").read_text())
    assert result["scaling_factor"] == 0.3 and result["cross"] == {"gamma": 0.0}
    assert result["additive"]["gamma"] == pytest.approx(result["sum"]["gamma"]) == pytest.approx(result["single"]["gamma"]["gamma"])


def test_task_pools_without_predictions_say_so() -> None:
    pool = NoPredictions(TaskPoolConfig(type="plain", name="my_tasks"))
    with pytest.raises(FusionBenchError, match=r"^task pool 'my_tasks' \(plain\) does not expose predictions"):
        pool.predict(None, "alpha")


def test_dummy_predictions_are_the_evaluated_ones() -> None:
    taskpool = DummyTaskPool(DummyTaskPoolConfig(type="dummy", name="dummy"))
    model = torch.nn.Linear(16, 4)
    x, y = taskpool._data("beta", "validation")
    predicted = taskpool.predict(model, "beta", "validation")
    assert torch.equal(predicted, model(x).argmax(-1))
    assert taskpool.evaluate(model, ["beta"], "validation")["beta"].value == pytest.approx(float((predicted == y).float().mean()))
