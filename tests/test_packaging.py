"""lstmkit as an installed package, not a checkout.

A wheel of the working tree, installed in a fresh virtual environment, must hold
lstmkit's namespace and nothing else, hold every module of the repository, and train
and predict from a folder outside the checkout. A task of another package, registered
only through the ``lstmkit.tasks`` entry-point group, must be found and run without
editing lstmkit; a broken registration must be one line of error.

Nothing here touches the network: the wheel is built without build isolation, and
the fresh environment borrows this one's installed dependencies.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
DECLARED_TASKS = list(PYPROJECT["project"]["entry-points"]["lstmkit.tasks"])
# Where the repository's packages land in the installed namespace.
INSTALLED_AS = {"lstmkit": "lstmkit", "tasks": "lstmkit/tasks"}
# Left behind by development and builds; not part of what a clean checkout builds from.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "runs", "saved_models",
                                    "__pycache__", ".pytest_cache")


def clean_environment() -> dict:
    """This process's environment without anything that adds to another Python's import path."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return environment


def run(command, cwd, timeout=120) -> subprocess.CompletedProcess:
    result = subprocess.run(list(map(str, command)), cwd=cwd, env=clean_environment(), capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of the working tree, built from a copy of it: an in-place build would leave
    build/ in the checkout, and a stale build/ puts deleted modules into the next wheel."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=lambda parent, names: NOT_SOURCE(parent, names)
                    if Path(parent) == ROOT else shutil.ignore_patterns("__pycache__")(parent, names))
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", folder / "dist", source], cwd=folder)
    (built,) = (folder / "dist").glob("lstmkit-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel, with this environment's site-packages
    behind its own for the dependencies (no download). A folder added by a .pth line is not
    scanned for .pth files, so the editable install's import hook here stays out."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", folder], cwd=folder.parent)
    python = folder / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
        cwd=folder.parent)
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=folder.parent).stdout.strip())
    (site_packages / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return folder


def top_level_names(paths) -> set[str]:
    return {path.split("/")[0] for path in paths if not path.split("/")[0].endswith(".dist-info")}


@pytest.mark.slow  # builds a wheel and a fresh venv
def test_the_wheel_installs_only_the_lstmkit_namespace(wheel, venv):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level_txt = archive.read(f"lstmkit-{VERSION}.dist-info/top_level.txt").decode().split()
    assert top_level_names(names) == {"lstmkit"}, "the wheel installs more than lstmkit (a 'tasks' or 'cli' of its own?)"
    assert top_level_txt == ["lstmkit"]

    probe = run([venv / "bin" / "python", "-c", (
        "import json, importlib.metadata as md\n"
        "dist = md.distribution('lstmkit')\n"
        "print(json.dumps({'files': [str(f) for f in dist.files], 'at': str(dist.locate_file('')),\n"
        "                  'entry_points': sorted(str(ep.dist.locate_file(''))\n"
        "                                         for ep in md.entry_points(group='lstmkit.tasks'))}))\n")],
        cwd=venv.parent)
    installed = json.loads(probe.stdout)
    site_packages = str(next((venv / "lib").glob("python3*/site-packages")))
    # This environment's editable lstmkit is visible too (its dist-info): the fresh copy must win.
    assert installed["at"] == site_packages
    assert set(installed["entry_points"]) == {site_packages}
    in_site_packages = [path for path in installed["files"] if not path.startswith("..")]
    assert top_level_names(in_site_packages) == {"lstmkit"}


@pytest.mark.slow  # builds a wheel and a fresh venv
def test_the_wheel_holds_every_module_of_the_repository(wheel):
    """pyproject.toml lists its packages one by one: a new sub-package must be added there."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    expected = set()
    for folder, installed_as in INSTALLED_AS.items():
        for module in (ROOT / folder).rglob("*.py"):
            expected.add(f"{installed_as}/{module.relative_to(ROOT / folder).as_posix()}")
    assert "lstmkit/tasks/sentiment/task.py" in expected
    assert sorted(expected - names) == []


@pytest.mark.slow  # builds a wheel and a fresh venv
def test_the_console_script_reports_its_version_and_lists_the_tasks(venv, tmp_path):
    version = run([venv / "bin" / "lstmkit", "--version"], cwd=tmp_path)
    assert version.stdout.strip() == f"lstmkit {VERSION}"
    shown = run([venv / "bin" / "lstmkit", "--help"], cwd=tmp_path).stdout
    (tasks_line,) = [line for line in shown.splitlines() if line.strip().startswith("Tasks:")]
    # setuptools writes entry_points.txt sorted, whatever the order in pyproject.toml.
    assert sorted(name.strip() for name in tasks_line.split(":", 1)[1].split(",")) == sorted(DECLARED_TASKS)


def write_sentences(path: Path, count: int = 80) -> None:
    """Short labelled sentences: enough for the tiny preset's validation and test splits."""
    good, bad = ["wonderful", "moving", "funny", "brilliant"], ["dull", "awful", "tedious", "clumsy"]
    things = ["film", "story", "cast", "ending", "script"]
    chooser = random.Random(0)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for index in range(count):
            words = good if index % 2 else bad
            writer.writerow([f"a {chooser.choice(words)} and {chooser.choice(words)} {chooser.choice(things)}",
                             index % 2])


@pytest.mark.slow  # builds a wheel and a fresh venv
def test_the_installed_package_trains_and_predicts_outside_the_checkout(venv, tmp_path):
    lstmkit_script = venv / "bin" / "lstmkit"
    imported = run([venv / "bin" / "python", "-c", "import lstmkit.tasks.sentiment.task as task, lstmkit; "
                    "print(lstmkit.__file__); print(task.__file__)"], cwd=tmp_path).stdout.split()
    assert all(Path(path).is_relative_to(venv) for path in imported), imported

    write_sentences(tmp_path / "sentences.csv")
    trained = run([lstmkit_script, "train", "sentiment", "--preset", "tiny", "--data", "sentences.csv",
                   "--runs-dir", "runs"], cwd=tmp_path, timeout=600)
    assert "test: " in trained.stdout
    (run_dir,) = (tmp_path / "runs" / "sentiment").iterdir()
    assert (run_dir / "config.json").is_file()

    predicted = run([lstmkit_script, "predict", "sentiment", "a wonderful and moving film", "--format", "json",
                     "--runs-dir", "runs"], cwd=tmp_path, timeout=300)
    (record,) = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert record["label"] in ("negative", "positive")
    assert sum(record["probabilities"].values()) == pytest.approx(1, abs=1e-4)


# --- a task of another package --------------------------------------------------------

THIRD_PARTY_MODULE = "lstmkit_reviews_example"
THIRD_PARTY_SOURCE = '''
"""Another package's task: the sentiment machinery under a name of its own."""
from lstmkit.tasks.sentiment.task import SentimentTask


class ReviewTask(SentimentTask):
    name = "reviews"


TASK = ReviewTask()
NOT_A_TASK = object()
'''


@pytest.fixture
def install_third_party(tmp_path, monkeypatch):
    """Install a package of tmp_path's own (its module and a dist-info declaring
    ``entry_points``) by putting tmp_path on sys.path, as pip would in site-packages."""

    def install(entry_points: dict[str, str]) -> None:
        (tmp_path / f"{THIRD_PARTY_MODULE}.py").write_text(THIRD_PARTY_SOURCE)
        dist_info = tmp_path / "lstmkit_reviews_example-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: lstmkit-reviews-example\nVersion: 1.0\n")
        lines = [f"{name} = {value}" for name, value in entry_points.items()]
        (dist_info / "entry_points.txt").write_text("[lstmkit.tasks]\n" + "\n".join(lines) + "\n")
        monkeypatch.syspath_prepend(str(tmp_path))

    yield install
    sys.modules.pop(THIRD_PARTY_MODULE, None)


def test_a_task_registered_by_another_package_is_found_and_run_by_the_cli(install_third_party, run_cli):
    from lstmkit.registry import get_task, task_names

    importlib.import_module("lstmkit.cli")  # before the package is installed, as in a long-lived process

    assert "reviews" not in task_names()
    install_third_party({"reviews": f"{THIRD_PARTY_MODULE}:TASK"})
    assert set(task_names()) == {*DECLARED_TASKS, "reviews"}
    task = get_task("reviews")
    assert task is sys.modules[THIRD_PARTY_MODULE].TASK and task.name == "reviews"

    code, out, err = run_cli("doctor", "reviews", "--preset", "tiny")
    assert code == 0, err
    assert out.startswith("model: ") and "parameters" in out


@pytest.mark.parametrize("name, value, message", [
    ("missing", "no_such_module_for_lstmkit:TASK", "cannot be loaded (No module named 'no_such_module_for_lstmkit')"),
    ("absent", f"{THIRD_PARTY_MODULE}:NO_SUCH_TASK", "cannot be loaded"),
    ("plain", f"{THIRD_PARTY_MODULE}:NOT_A_TASK", "is not an lstmkit.task.Task named 'plain'"),
    ("misnamed", f"{THIRD_PARTY_MODULE}:TASK", "is not an lstmkit.task.Task named 'misnamed'"),
], ids=["module-missing", "object-missing", "not-a-task", "name-mismatch"])
def test_a_broken_registration_is_one_line_of_error(install_third_party, run_cli, capfd, name, value, message):
    from lstmkit.errors import UserError
    from lstmkit.registry import get_task

    install_third_party({name: value})
    with pytest.raises(UserError) as raised:
        get_task(name)
    assert message in str(raised.value) and value in str(raised.value)
    assert "\n" not in str(raised.value)

    capfd.readouterr()  # TensorFlow's start-up lines, if loading the module imported it
    code, out, err = run_cli("doctor", name)
    assert code == 2
    assert err.strip().splitlines() == [f"Error: {raised.value}"]
