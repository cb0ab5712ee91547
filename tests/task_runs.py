"""Tiny trained runs of every task, each trained once per session on a slice of the real
data, for the tasks' own tests and for the ones that need every task (serving)."""

import collections
import tarfile
from pathlib import Path

import pytest

from lstmkit.data import read_fasta
from lstmkit.tasks.protein_ss import data as protein_data

SPEECH_ARCHIVE = "speech_commands_v002_test/speech_commands_test_set_v0.02.tar.xz"


def extract(archive: Path, keep, target: Path) -> list[Path]:
    """Copy the archive members ``keep(name)`` accepts under ``target`` (top folder dropped)."""
    written = []
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            name = "/".join(member.name.split("/")[1:])
            if member.isfile() and name.endswith(".wav") and keep(name):
                path = target / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(tar.extractfile(member).read())
                written.append(path)
    return written


@pytest.fixture(scope="session")
def netsurfp_small(shared_data, tmp_path_factory):
    """100 training, 25 validation and 25 test chains of the NetSurfP-2.0 files."""
    source = shared_data / "protein_netsurfp2_flip"
    labels = read_fasta((source / "sampled.fasta").read_text(), "sampled.fasta")
    wanted = {"VALIDATION=False": 100, "VALIDATION=True": 25, "SET=test": 25}
    keep = []
    for index, (header, _) in enumerate(labels):
        for marker in wanted:
            if marker in header and wanted[marker] > 0:
                wanted[marker] -= 1
                keep.append(index)
                break
    target = tmp_path_factory.mktemp("netsurfp")
    for name in protein_data.NETSURFP_FILES:
        records = read_fasta((source / name).read_text(), name)
        target.joinpath(name).write_text("".join(f">{records[i][0]}\n{''.join(records[i][1])}\n" for i in keep))
    return target


@pytest.fixture(scope="session")
def protein_run(tmp_path_factory, netsurfp_small):
    from lstmkit import cli

    runs = tmp_path_factory.mktemp("runs")
    try:
        cli.main(["train", "protein_ss", "--preset", "tiny", "--data", str(netsurfp_small), "--runs-dir", str(runs),
                  "--seed", "3", "--set", "train.epochs=3"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    (run_dir,) = (runs / "protein_ss").iterdir()
    return run_dir


@pytest.fixture(scope="session")
def speech_slice(shared_data, tmp_path_factory) -> Path:
    """Speech Commands layout: 8 clips of each of the 12 classes (96 clips), every
    40th file, so that (in the archive's name order) they come from many speakers."""
    target = tmp_path_factory.mktemp("speech") / "speech_commands"
    taken = collections.Counter()

    def keep(name):
        label = name.split("/")[0]
        taken[label] += 1
        return taken[label] % 40 == 1 and taken[label] <= 8 * 40

    extract(shared_data / SPEECH_ARCHIVE, keep, target)
    return target


TINY_SETTINGS = ["--set", "data.validation_percentage=25", "--set", "data.testing_percentage=25",
                 "--set", "train.epochs=3"]


@pytest.fixture(scope="session")
def speech_run(tmp_path_factory, speech_slice):
    from lstmkit import cli

    runs = tmp_path_factory.mktemp("runs")
    try:
        cli.main(["train", "speech_commands", "--preset", "tiny", "--data", str(speech_slice),
                  "--runs-dir", str(runs), "--seed", "7", *TINY_SETTINGS])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    (run_dir,) = (runs / "speech_commands").iterdir()
    return run_dir


@pytest.fixture(scope="session")
def shakespeare_slice(shared_data, tmp_path_factory):
    """The first 30,000 characters: 27,000 to train on (the tiny preset keeps 20,000),
    the last 3,000 for validation."""
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:30_000]
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def textgen_run(tmp_path_factory, shakespeare_slice):
    from lstmkit import cli

    runs = tmp_path_factory.mktemp("runs")
    try:
        cli.main(["train", "textgen", "--preset", "tiny", "--data", str(shakespeare_slice),
                  "--runs-dir", str(runs), "--seed", "7", "--set", "train.epochs=3"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    (run_dir,) = (runs / "textgen").iterdir()
    return run_dir


@pytest.fixture(scope="session")
def forecasting_run(tmp_path_factory):
    """A tiny forecaster of the builtin El Nino series (shipped inside statsmodels, so
    it needs no data folder)."""
    from lstmkit import cli

    runs = tmp_path_factory.mktemp("runs")
    try:
        cli.main(["train", "forecasting", "--preset", "tiny", "--data", "builtin:elnino", "--runs-dir", str(runs),
                  "--seed", "5"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    (run_dir,) = (runs / "forecasting").iterdir()
    return run_dir


@pytest.fixture(scope="session")
def exports(tmp_path_factory, tiny_run, speech_run, protein_run, textgen_run, forecasting_run):
    """Every task's tiny run exported as version 1 under one base path."""
    from lstmkit.export import export_run
    from lstmkit.registry import get_task
    from lstmkit.run import Run

    base = tmp_path_factory.mktemp("saved_models")
    for name, run_dir in [("sentiment", tiny_run), ("speech_commands", speech_run), ("protein_ss", protein_run),
                          ("textgen", textgen_run), ("forecasting", forecasting_run)]:
        export_run(Run.from_folder(get_task(name), run_dir), base)
    return base
