"""The ``fusionbench`` command: ``fusionbench VERB key=value ...``; one module per verb in ``fusionbench.cli``.

The error contract lives here, for every verb: a FusionBenchError (the user's to fix) is one
line, ``error: ...``, and exit status 2; anything else raised while a command runs (a bug, or
a plugin's code) is one line too, naming the exception and where it was raised, with exit
status 1; Ctrl-C is ``interrupted`` and exit status 130. ``--debug`` (or ``FUSIONBENCH_DEBUG=1``)
shows the traceback instead. A reader that closes standard output early (``fusionbench list
methods | head``) ends the command quietly with status 141, as SIGPIPE ends Unix tools.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from fusionbench.api.errors import ConfigError, FusionBenchError, choices_text, did_you_mean, raised_at
from fusionbench.cli import analyze, convert, finetune, leaderboard, list_, merge, mini, profile, results, run, sweep
from fusionbench.utils.quiet import quiet_libraries

DEBUG_FLAG = "--debug"


@dataclass(frozen=True)
class Verb:
    summary: str
    module: ModuleType  # has HELP and handle(words) -> exit status

    @property
    def handler(self) -> Callable[[list[str]], int]:
        return self.module.handle  # type: ignore[no-any-return]


VERBS: dict[str, Verb] = {
    "run": Verb("merge a model pool with a method and evaluate it", run),
    "merge": Verb("merge a model pool with a method and save the merged model (no evaluation)", merge),
    "sweep": Verb("every task subset x hyper-parameter grid, normalised scores, resumable", sweep),
    "results": Verb("query / export the result store; compare sweeps in the Table-1 layout", results),
    "list": Verb("list registered methods, model pools, task pools, model families or requirements", list_),
    "leaderboard": Verb("build, validate and publish the leaderboard (leaderboard/)", leaderboard),
    "analyze": Verb("task-vector cosine matrix; weight disentanglement error; scores along task vectors; interference", analyze),
    "profile": Verb("cost tables: parameters, checkpoint size, it/s, peak memory (paper tables 3-4)", profile),
    "mini": Verb("build / inspect / remove the embedded CPU-scale benchmark world", mini),
    "finetune": Verb("fine-tune a CLIP / T5 base on one task: full, lora or llora", finetune),
    "convert": Verb("convert a pickled checkpoint (task_vectors / TALL-masks .pt) to safetensors, opt-in", convert),
}


def verb_help(name: str) -> str:
    module = VERBS[name].module
    return module.usage() if hasattr(module, "usage") else str(module.HELP)


def main_help() -> str:
    lines = [
        "usage: fusionbench VERB [key=value ...] [--debug]",
        "",
        "FusionBench: benchmark multi-task model fusion (model merging) methods.",
        "",
        "verbs:",
        *(f"  {name:<12} {verb.summary}" for name, verb in VERBS.items()),
        "",
        "`fusionbench VERB --help` describes a verb's groups and options.",
        "A bad input is one `error:` line and exit status 2; --debug (or FUSIONBENCH_DEBUG=1) shows the traceback.",
        "Example: fusionbench run method=task_arithmetic modelpool=dummy method.scaling_factor=0.3",
    ]
    return "\n".join(lines)


def _dispatch(verb: str, words: list[str]) -> int:
    if verb not in VERBS:
        raise ConfigError(f"unknown verb {verb!r}.{did_you_mean(verb, VERBS)} Valid verbs: {choices_text(VERBS)}")
    if any(w in ("-h", "--help") for w in words):
        print(verb_help(verb))
        return 0
    quiet_libraries()
    return VERBS[verb].handler(words)


def _command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(main_help())
        return 0
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    return _dispatch(argv[0], argv[1:])


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit status (0 ok, 1 internal error, 2 bad input, 130 interrupted, 141 output closed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or bool(os.environ.get("FUSIONBENCH_DEBUG"))
    argv = [word for word in argv if word != DEBUG_FLAG]
    try:
        status = _command(argv)
        sys.stdout.flush()  # here, not at interpreter exit, so a closed pipe is seen by the handling below
        return status
    except FusionBenchError as exc:
        if debug:
            raise
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (see _terminate); Interrupted says what it left
        print("interrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return 130
    except (Exception, SystemExit) as exc:  # not the user's to fix: say so in one line, traceback on request
        if _stdout_closed(exc):
            return _end_quietly()
        if debug:
            raise
        message = _one_line(str(exc)) or "(no message)"
        print(f"error: internal error, {type(exc).__name__}: {message} (raised at {raised_at(exc)}); rerun with {DEBUG_FLAG} for the traceback", file=sys.stderr)
        return 1


def _stdout_closed(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a BrokenPipeError of standard output: a pipe of a worker
    that died is an internal error, not a reader that has read enough."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, BrokenPipeError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return False
    try:
        fd = sys.stdout.fileno()
        if os.path.samestat(os.fstat(fd), os.stat(os.devnull)):
            return True  # rich answers a broken pipe by pointing standard output at /dev/null and raising SystemExit(1)
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))  # a pipe whose reader has gone
    except (OSError, ValueError, AttributeError):  # no file descriptor (a caller's stdout), or no poll on this platform
        return False


def _end_quietly() -> int:
    """Point standard output at /dev/null (the interpreter's last flush must not fail again) and return 128 + SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (``timeout``, a cluster's scheduler) ends a command as Ctrl-C does: cleanly, resumable."""
    raise KeyboardInterrupt


def _one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line, cut to ``limit`` characters (a pasted 60,000-character value is not echoed whole)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 20] + f" ... ({len(flat)} characters)"
