"""Property: whatever words a command gets, fusionbench answers with a result or one ``error:`` line and
exit status 2 having written nothing, never a traceback or an internal error (every verb, the dummy world, in process)."""

from __future__ import annotations

from pathlib import Path

from contract_helpers import tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusionbench.cli.main import main

KEYS = ["method", "modelpool", "taskpool", "method.k", "method.scaling_factor", "method.p", "taskpool.limit", "taskpool.batch_size",
        "taskpool.examples", "taskpool.tasks", "modelpool.tasks", "seed", "split", "device", "plugins", "subsets", "grid.k",
        "grid.scaling_factor", "workers", "threads", "store", "format", "lambdas", "scaling_factor", "tasks", "nonsense", "method.k.x",
        "output", "paradigms", "batch_size", "steps", "warmup", "micro_batch_size", "limit", "save_every",
        "lora.r", "lora.targets", "recipe", "out", "grid", "reduced", "ray.actors", "executor", "selection_split",
        "overwrite", "save_format", "stream", "src", "trust_pickle"]
VALUES = st.one_of(
    st.sampled_from(["ties", "task_arithmetic", "dummy", "dumy", "nan", "inf", "-inf", "1e400", "9" * 30, "-1", "0", "0.5", "[0.1,",
                     "[a,b]", "[]", "[alpha,alpha]", "[alpha,beta]", "${oc.env:NO_SUCH_VAR}", "a_file/x", "~nosuchuser/x", "", "[[1]]",
                     "{a: 1}", "null", "true", "test", "bogus", "pairs", "size=9"]),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
WORDS = st.lists(st.tuples(st.sampled_from(KEYS), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=4)
VERBS = st.sampled_from(["run", "merge", "sweep", "results", "results compare", "analyze scaling", "analyze cosine", "analyze disentanglement",
                         "analyze interference", "list", "mini status", "mini clean", "profile", "finetune", "convert", "leaderboard validate",
                         "leaderboard build", "leaderboard publish"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(verb=VERBS, words=WORDS)
def test_any_words_get_a_result_or_one_error_line(verb: str, words: list[str], tmp_path: Path, isolated_home: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    out = [f"output_dir={tmp_path / 'out'}"]
    base = {  # enough to make the command valid, or (profile, finetune: their expensive work) to fail only after every word is read
        "run": ["method=ties", "modelpool=dummy", *out], "merge": ["method=ties", "modelpool=dummy", f"out={tmp_path / 'merged'}"],
        "convert": [f"src={tmp_path / 'a_file'}", f"out={tmp_path / 'converted.safetensors'}"], "sweep": ["method=ties", "modelpool=dummy", "subsets=pairs", "grid.k=[0.2]", *out],
        "analyze scaling": ["modelpool=dummy", "lambdas=[0,1]", *out], "analyze cosine": ["modelpool=dummy", *out],
        "analyze disentanglement": ["modelpool=dummy", "tasks=alpha,beta", "grid=[0,1]", *out], "analyze interference": ["modelpool=dummy", *out],
        "profile": [f"output={tmp_path / 'a_file'}/p.json"], "finetune": [f"model={tmp_path / 'no_model'}", "task=x", "mode=full"],
        "leaderboard validate": [str(tmp_path / "a_file")], "leaderboard build": [f"out={tmp_path / 'board.json'}"],
        "leaderboard publish": [f"out={tmp_path / 'board.json'}"],
    }.get(verb, [])
    capsys.readouterr()
    before = tree(tmp_path, isolated_home)
    code = main([*verb.split(), *base, *words])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code in (0, 2), err[-1500:]
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err[-1500:]
        assert tree(tmp_path, isolated_home) == before, err  # a refused command writes nothing (the reusable cache aside)
