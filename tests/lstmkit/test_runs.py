"""Command lines suggested to the user are spelled the way they run lstmkit."""

import sys
from pathlib import Path

import pytest

from lstmkit import runs
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
    assert runs.lstmkit_command("train", "sentiment") == f"{invocation} train sentiment"


def test_another_projects_cli_py_is_not_the_checkouts(monkeypatch, tmp_path):
    (tmp_path / "cli.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["cli.py"])
    assert runs.lstmkit_command("runs") == "lstmkit runs"


def test_the_runs_folder_is_named_only_when_not_the_default(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lstmkit"])
    assert runs.lstmkit_command("runs", runs_root="runs") == "lstmkit runs"
    assert runs.lstmkit_command("runs", runs_root=Path("runs")) == "lstmkit runs"
    assert runs.lstmkit_command("runs", runs_root="my runs") == "lstmkit runs --runs-dir 'my runs'"
    partial = Path("elsewhere/sentiment/20250101-120000-abcd.partial")
    assert (runs.resume_command("sentiment", partial, "elsewhere")
            == "lstmkit train sentiment --resume 20250101-120000-abcd --runs-dir elsewhere")
