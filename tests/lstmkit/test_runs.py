"""Command lines suggested to the user are spelled the way they run lstmkit; the lock that
tells a run being trained from a killed one."""

import sys
from pathlib import Path

import pytest

from lstmkit import hints, runs
from lstmkit.errors import UserError
from tests.conftest import ROOT


@pytest.mark.parametrize("argv0, invocation", [
    ("cli.py", "python cli.py"),  # python cli.py ... from the checkout
    (str(ROOT / "cli.py"), f"python {ROOT / 'cli.py'}"),  # the checkout's cli.py, by its path
    ("/usr/local/bin/lstmkit", "lstmkit"),  # the installed console script
    ("", "lstmkit"),  # an embedded interpreter
])
def test_a_command_is_spelled_as_lstmkit_was_run(monkeypatch, argv0, invocation):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [argv0, "train", "sentiment"])
    assert hints.command("train", "sentiment") == f"{invocation} train sentiment"


def test_another_projects_cli_py_is_not_the_checkouts(monkeypatch, tmp_path):
    (tmp_path / "cli.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["cli.py"])
    assert hints.command("runs") == "lstmkit runs"


def test_the_runs_folder_is_named_only_when_not_the_default(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lstmkit"])
    assert hints.command("runs", runs_root="runs") == "lstmkit runs"
    assert hints.command("runs", runs_root=Path("runs")) == "lstmkit runs"
    assert hints.command("runs", runs_root="my runs") == "lstmkit runs --runs-dir 'my runs'"
    partial = Path("elsewhere/sentiment/20250101-120000-abcd.partial")
    assert (hints.resume_run("sentiment", partial, "elsewhere")
            == "lstmkit train sentiment --resume 20250101-120000-abcd --runs-dir elsewhere")


def test_a_run_being_trained_is_told_from_a_killed_one_by_its_lock(tmp_path):
    """A live process holds the run's training lock; the OS lets go of it when the
    process dies, kill -9 included, so a killed run is never taken for a live one."""
    import os
    import signal
    import socket
    import subprocess

    run_dir = tmp_path / "20250101-120000-abcd.partial"
    run_dir.mkdir()
    assert runs.training_process(run_dir) is None  # never trained (or by an older lstmkit)
    with runs.TrainingLock(run_dir):
        owner = runs.training_process(run_dir)
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        with pytest.raises(UserError, match=f"being trained right now by process {os.getpid()} on "):
            runs.TrainingLock(run_dir).acquire()
    assert runs.training_process(run_dir) is None

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lstmkit import runs; lock = runs.TrainingLock(sys.argv[1]); "
         "lock.acquire(); print('locked', flush=True); time.sleep(60)", str(run_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert runs.training_process(run_dir)["pid"] == holder.pid
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert runs.training_process(run_dir) is None
    finally:
        holder.kill()
        holder.wait()
