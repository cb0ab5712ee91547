"""Every command line lstmkit suggests to its user, built here and nowhere else.

An error or a result that tells the user what to run next ("continue it with: ...")
gets the line from one of these functions, so that a renamed flag is changed in one
place, and every line is spelled the way this user runs lstmkit (``python cli.py`` from
a checkout, ``lstmkit`` once installed) with their ``--runs-dir``. Standard library only:
any module may import it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

# The checkout's entry point (``python cli.py``); an installed lstmkit has none beside it.
CHECKOUT_CLI = Path(__file__).resolve().parents[1] / "cli.py"
DEFAULT_RUNS_ROOT = Path("runs")


def command(*words, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    """A command line for the user to run next, shell-quoted and spelled the way they run
    lstmkit: ``python cli.py ...`` when this process is the checkout's ``cli.py``,
    otherwise ``lstmkit ...`` (the installed console script). ``--runs-dir`` is added only
    when ``runs_root`` is not the default, so the line stays short."""
    words = [str(word) for word in words]
    if Path(runs_root) != DEFAULT_RUNS_ROOT:
        words += ["--runs-dir", str(runs_root)]
    script = sys.argv[0] if sys.argv and sys.argv[0] else ""
    # As typed (cli.py, ../lstmkit/cli.py), so the line works where the user typed theirs.
    invocation = ["python", script] if script and Path(script).resolve() == CHECKOUT_CLI else ["lstmkit"]
    return shlex.join([*invocation, *words])


def _run_id(run: str | Path) -> str:
    name = Path(run).name
    return name.removesuffix(".partial")


def first_run(runs_root: str | Path = DEFAULT_RUNS_ROOT, task_name: str = "TASK") -> str:
    """Start a smoke-test run (a new user's first command)."""
    return command("train", task_name, "--preset", "tiny", "--data", "PATH", runs_root=runs_root)


def train(task_name: str, runs_root: str | Path = DEFAULT_RUNS_ROOT, *, data: str | None = None,
          config: str | Path | None = None) -> str:
    """Train a new run (with the data and config file given)."""
    words = [*(["--data", data] if data else []), *(["--config", config] if config else [])]
    return command("train", task_name, *words, runs_root=runs_root)


def resume_run(task_name: str, run: str | Path, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    """Continue the unfinished run ``run`` (its folder or id)."""
    return command("train", task_name, "--resume", _run_id(run), runs_root=runs_root)


def evaluate_run(task_name: str, run: str | Path, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    return command("evaluate", task_name, "--run", _run_id(run), runs_root=runs_root)


def export_run(task_name: str, run: str | Path, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    return command("export", task_name, "--run", _run_id(run), runs_root=runs_root)


def start_search(task_name: str, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    return command("tune", task_name, runs_root=runs_root)


def resume_search(task_name: str, search: str | Path, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    return command("tune", task_name, "--resume", Path(search).name, runs_root=runs_root)


def search_chief(task_name: str, oracle: str, *, resume: str | None = None,
                 runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    """Start (or, with ``resume``, continue) the chief of a distributed search."""
    words = ["--resume", resume] if resume else []
    return command("tune", task_name, *words, "--role", "chief", "--oracle", oracle, runs_root=runs_root)


def search_worker(task_name: str, oracle: str, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> str:
    return command("tune", task_name, "--role", "worker", "--oracle", oracle, "--worker-id", "ID",
                   runs_root=runs_root)


def help_for(*verb: str) -> str:
    return command(*verb, "--help")
