"""Crash safety of training and export, with real processes: kill -9 at chosen moments,
a full disk, an export killed midway. A resumed run must end exactly as an uninterrupted
one would have."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
# A tiny run whose final evaluation takes a while (most of MR is the test split), so a
# test can kill the process during it.
TRAIN_SETTINGS = ["--preset", "tiny", "--seed", "7", "--set", "train.epochs=3", "--set", "train.patience=10",
                  "--set", "data.test_fraction=0.9"]


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], env=ENV, capture_output=True,
                          text=True, **kwargs)


def train_command(data, runs):
    return [sys.executable, str(ROOT / "cli.py"), "train", "sentiment", "--data", str(data), "--runs-dir", str(runs),
            *TRAIN_SETTINGS]


def backup_state(runs):
    found = list(Path(runs).glob("sentiment/*.partial/backup/state.json"))
    return json.loads(found[0].read_text()) if found else None


def kill_when(command, condition, timeout=300):
    """Start ``command``, SIGKILL it as soon as ``condition()`` holds; fail if it never does."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and process.poll() is None:
            if condition():
                process.send_signal(signal.SIGKILL)
                process.wait()
                return
            time.sleep(0.02)
        pytest.fail(f"the condition never held (exit code {process.poll()})")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def epochs_and_losses(run_dir):
    """(epoch, loss, val_loss) of each history.csv line: the columns that are not timings."""
    lines = (run_dir / "history.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    columns = [header.index(name) for name in ("epoch", "loss", "val_loss", "accuracy", "val_accuracy")]
    return [tuple(line.split(",")[i] for i in columns) for line in lines[1:]]


def finished_run(runs):
    (run_dir,) = Path(runs, "sentiment").iterdir()
    assert not run_dir.name.endswith(".partial") and not (run_dir / "backup").exists()
    return run_dir


@pytest.fixture(scope="module")
def uninterrupted(shared_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(train_command(shared_data / "mr_polarity", runs), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return finished_run(runs)


def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(uninterrupted, shared_data, tmp_path):
    kill_when(train_command(shared_data / "mr_polarity", tmp_path),
              lambda: (backup_state(tmp_path) or {}).get("epochs") == 1)
    state = backup_state(tmp_path)
    assert state is not None, "the killed run left no backup"
    resumed = cli("train", "sentiment", "--resume", "latest", "--runs-dir", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run_dir = finished_run(tmp_path)
    # Continued from the last finished epoch, each epoch once, and bit for bit the
    # uninterrupted run: the same losses, the same final metrics.
    assert epochs_and_losses(run_dir) == epochs_and_losses(uninterrupted)
    assert [row[0] for row in epochs_and_losses(run_dir)] == ["0", "1", "2"]
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads((uninterrupted / "metrics.json").read_text())


def test_a_run_killed_after_its_last_epoch_resumes_into_the_final_evaluation_only(uninterrupted, shared_data,
                                                                                   tmp_path):
    kill_when(train_command(shared_data / "mr_polarity", tmp_path),
              lambda: (backup_state(tmp_path) or {}).get("training_done"))
    (partial,) = Path(tmp_path, "sentiment").iterdir()
    assert partial.name.endswith(".partial"), "the run finished before it could be killed"
    history = (partial / "history.csv").read_text()
    assert len(history.strip().splitlines()) == 4  # header and the three epochs
    resumed = cli("train", "sentiment", "--resume", "latest", "--runs-dir", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Epoch" not in resumed.stdout  # nothing was trained again
    run_dir = finished_run(tmp_path)
    assert (run_dir / "history.csv").read_text() == history
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads((uninterrupted / "metrics.json").read_text())


@pytest.fixture
def small_disk(tmp_path):
    """A 20 MiB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); test_out_of_space_is_simulated_* cover the logic")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path, leave_kib: int) -> Path:
    """Fill ``disk`` up to ``leave_kib`` KiB free; return the filler file."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(free - leave_kib * 1024, 0))
    return filler


def assert_one_line_error(done, *fragments):
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_full_disk_stops_training_with_one_line_and_the_run_resumes(uninterrupted, shared_data, small_disk):
    runs = small_disk / "runs"
    # Room for the run folder and the first epoch's checkpoint and backup (~0.5 MB
    # each), not for the second epoch's backup beside the first.
    filler = fill(small_disk, leave_kib=1200)
    done = subprocess.run(train_command(shared_data / "mr_polarity", runs), env=ENV, capture_output=True, text=True)
    assert_one_line_error(done, "out of disk space", "--resume")
    assert backup_state(runs)["epochs"] >= 1  # it stopped after a finished epoch, which it keeps
    command = done.stderr.split("continue the run: ")[1].strip()
    filler.unlink()
    resumed = subprocess.run(command.replace("python cli.py", f"{sys.executable} {ROOT / 'cli.py'}", 1), shell=True,
                             env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run_dir = finished_run(runs)
    assert epochs_and_losses(run_dir) == epochs_and_losses(uninterrupted)


def test_a_full_disk_stops_export_with_one_line_and_leaves_nothing(tiny_run, small_disk):
    base = small_disk / "saved_models"
    filler = fill(small_disk, leave_kib=200)
    done = cli("export", "sentiment", "--run", tiny_run, "--base-path", base)
    assert_one_line_error(done, "out of disk space", "export again")
    assert [path.name for path in (base / "sentiment").iterdir()] == []
    filler.unlink()
    again = cli("export", "sentiment", "--run", tiny_run, "--base-path", base)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [path.name for path in (base / "sentiment").iterdir()] == ["1"]


def test_a_killed_export_leaves_a_staging_folder_the_next_export_removes(tiny_run, tmp_path):
    base = tmp_path / "saved_models"
    kill_when([sys.executable, str(ROOT / "cli.py"), "export", "sentiment", "--run", str(tiny_run),
               "--base-path", str(base)], lambda: any(base.glob("sentiment/.tmp-export-*/model")))
    assert list(base.glob("sentiment/.tmp-export-*")) and not list(base.glob("sentiment/1"))
    # Another live export's folder (this test's process stands in for it), and one of
    # another host, are left alone.
    live = base / "sentiment" / f".tmp-export-{socket.gethostname()}-{os.getpid()}-livefold"
    elsewhere = base / "sentiment" / ".tmp-export-otherhost-1-otherhos"
    live.mkdir()
    elsewhere.mkdir()
    done = cli("export", "sentiment", "--run", tiny_run, "--base-path", base)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(path.name for path in (base / "sentiment").iterdir()) == sorted(["1", live.name, elsewhere.name])
