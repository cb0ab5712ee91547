"""Shared test fixtures: the real data folder, the CLI entry point, one tiny trained run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = Path(os.environ.get("LSTMKIT_DATA", ROOT.parent / "shared" / "data"))
# Every task's tiny trained run, shared by the tasks' tests and the serving tests.
pytest_plugins = ["tests.task_runs"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder; every test that needs it (directly or through a session run
    trained on it) is skipped, with the reason, when it is absent."""
    if not (SHARED_DATA / "mr_polarity").is_dir():
        pytest.skip(f"needs the real data folder {SHARED_DATA} (../shared/data next to the repository, "
                    "or set $LSTMKIT_DATA to it): not found")
    return SHARED_DATA


@pytest.fixture
def run_cli(capfd):
    """Run ``cli.main(args)`` in-process; return (exit code, stdout, stderr) as the
    terminal would show them (file-descriptor level, so library logs count too)."""
    from lstmkit import cli

    def run(*args):
        code = 0
        try:
            cli.main(list(map(str, args)))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capfd.readouterr()
        return code, captured.out, captured.err

    return run


# Runs several CLI commands, in order, in one new process (see ``fresh_cli``).
_FRESH_DRIVER = """
import contextlib, io, json, sys
from lstmkit import cli
answers = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(args)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    answers.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(answers))
"""


def fresh_cli(*commands, timeout=600) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each command (a list of CLI arguments), all run in
    ONE new Python process, one after another, as ``python cli.py`` would run them.

    A new process is what shows a class that loading a run forgets to register (a
    process that trained a model has imported them all); every verb loads a run through
    ``lstmkit.run.Run.model``, so one new process per check is enough, and it pays for
    importing TensorFlow once instead of once per verb."""
    import json
    import subprocess

    arguments = json.dumps([[str(arg) for arg in command] for command in commands])
    result = subprocess.run([sys.executable, "-c", _FRESH_DRIVER, arguments], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                                            "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return [tuple(answer) for answer in json.loads(result.stdout.strip().splitlines()[-1])]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, shared_data):
    """One tiny sentiment run on a 400-sentence slice of MR, trained once per session."""
    from lstmkit import cli

    runs = tmp_path_factory.mktemp("runs")
    try:
        cli.main(["train", "sentiment", "--preset", "tiny", "--data", str(shared_data / "mr_polarity"),
                  "--runs-dir", str(runs), "--seed", "7"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    (run_dir,) = (runs / "sentiment").iterdir()
    return run_dir


@pytest.fixture
def tfds_data_dir(monkeypatch, tmp_path):
    """An empty TFDS data folder in place of ~/tensorflow_datasets."""
    from tensorflow_datasets.core import constants

    folder = tmp_path / "tfds"
    folder.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(folder))
    # TFDS reads the variable once, at import: patch the value it read too.
    monkeypatch.setattr(constants, "DATA_DIR", str(folder))
    return folder


@pytest.fixture
def offline(monkeypatch, tfds_data_dir):
    """No TensorFlow Datasets download host and an empty TFDS data folder."""
    import socket

    from lstmkit import data

    # A loopback port nobody listens on stands in for an unreachable download host.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    monkeypatch.setattr(data, "DOWNLOAD_PROBE", ("127.0.0.1", port))
