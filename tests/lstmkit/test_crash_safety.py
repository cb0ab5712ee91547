"""Crash safety of training and export, with real processes: kill -9 at chosen moments,
a full disk, an export killed midway. A resumed run must end exactly as an uninterrupted
one would have."""

import functools
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
# A tiny run whose final evaluation takes a while (most of MR is the test split), so a
# test can kill the process during it. Without the wide n-gram part: the full-disk test's
# room is sized for this model's checkpoint and backup.
TRAIN_SETTINGS = ["--preset", "tiny", "--seed", "7", "--set", "train.epochs=3", "--set", "train.patience=10",
                  "--set", "data.test_fraction=0.9", "--set", "wide_ngrams=0"]


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], env=ENV, capture_output=True,
                          text=True, **kwargs)


def train_command(data, runs, *extra):
    return [sys.executable, str(ROOT / "cli.py"), "train", "sentiment", "--data", str(data), "--runs-dir", str(runs),
            *TRAIN_SETTINGS, *extra]


def backup_state(runs, task="sentiment"):
    found = list(Path(runs).glob(f"{task}/*.partial/backup/state.json"))
    return json.loads(found[0].read_text()) if found else None


def logged_epochs(runs, task="sentiment") -> int:
    found = list(Path(runs).glob(f"{task}/*.partial/history.csv"))
    return max(len(found[0].read_text().strip().splitlines()) - 1, 0) if found else 0


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
    columns = [header.index(name) for name in ("epoch", "loss", "val_loss", "accuracy", "val_accuracy")
               if name in header]
    return [tuple(line.split(",")[i] for i in columns) for line in lines[1:]]


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def finished_run(runs, task="sentiment"):
    (run_dir,) = Path(runs, task).iterdir()
    assert not run_dir.name.endswith(".partial") and not (run_dir / "backup").exists()
    return run_dir


@pytest.fixture(scope="module")
def uninterrupted(shared_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("uninterrupted")
    done = subprocess.run(train_command(shared_data / "mr_polarity", runs), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return finished_run(runs)


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_result(uninterrupted, shared_data, tmp_path):
    # Killed once the first epoch is logged and backed up, whatever the backup's format.
    kill_when(train_command(shared_data / "mr_polarity", tmp_path),
              lambda: logged_epochs(tmp_path) >= 1 and any(tmp_path.glob("sentiment/*.partial/backup/*.json")))
    resumed = cli("train", "sentiment", "--resume", "latest", "--runs-dir", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Epoch 1/3" not in resumed.stdout and "Epoch 3/3" in resumed.stdout  # continued, not restarted
    run_dir = finished_run(tmp_path)
    # Continued from the last finished epoch, each epoch once, and bit for bit the
    # uninterrupted run: the same losses, the same final metrics.
    assert epochs_and_losses(run_dir) == epochs_and_losses(uninterrupted)
    assert [row[0] for row in epochs_and_losses(run_dir)] == ["0", "1", "2"]
    assert metrics(run_dir) == metrics(uninterrupted)


@pytest.mark.slow
def test_a_resumed_run_keeps_weight_averaging_and_the_plateau_schedule(shared_data, tmp_path):
    """Averaging (its average, its trigger) and the plateau schedule's counters carry
    over: killed after two epochs, the run ends exactly as an uninterrupted one."""
    settings = ["--set", "train.epochs=4", "--set", "train.weight_averaging=nt_asgd",
                "--set", "train.averaging_patience=0", "--set", "train.lr_schedule=plateau",
                "--set", "train.plateau_patience=1"]
    data = shared_data / "mr_polarity"
    done = subprocess.run(train_command(data, tmp_path / "uninterrupted", *settings), env=ENV, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    uninterrupted = finished_run(tmp_path / "uninterrupted")
    runs = tmp_path / "killed"
    kill_when(train_command(data, runs, *settings),
              lambda: logged_epochs(runs) >= 2 and (backup_state(runs) or {}).get("epochs", 0) >= 2)
    resumed = cli("train", "sentiment", "--resume", "latest", "--runs-dir", runs)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run_dir = finished_run(runs)
    assert epochs_and_losses(run_dir) == epochs_and_losses(uninterrupted)
    assert metrics(run_dir) == metrics(uninterrupted)


@pytest.mark.slow
def test_a_resumed_textgen_run_carries_its_batch_to_batch_states_on(shakespeare_slice, tmp_path):
    """Truncated BPTT carries each stream's LSTM state from batch to batch, outside the
    model's weights: the backup keeps it, so the resumed run repeats the uninterrupted one."""
    def command(runs):
        return [sys.executable, str(ROOT / "cli.py"), "train", "textgen", "--preset", "tiny", "--seed", "7",
                "--data", str(shakespeare_slice), "--runs-dir", str(runs), "--set", "train.epochs=3"]

    done = subprocess.run(command(tmp_path / "uninterrupted"), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    uninterrupted = finished_run(tmp_path / "uninterrupted", "textgen")
    runs = tmp_path / "killed"
    kill_when(command(runs), lambda: (backup_state(runs, "textgen") or {}).get("epochs", 0) >= 1)
    resumed = cli("train", "textgen", "--resume", "latest", "--runs-dir", runs)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run_dir = finished_run(runs, "textgen")
    assert epochs_and_losses(run_dir) == epochs_and_losses(uninterrupted)
    assert metrics(run_dir) == metrics(uninterrupted)


@pytest.mark.slow
def test_a_run_killed_after_its_last_epoch_resumes_into_the_final_evaluation_only(uninterrupted, shared_data,
                                                                                   tmp_path):
    # Killed once the last epoch is logged and the backup says training is over (or,
    # as Keras's BackupAndRestore did, has been deleted).
    kill_when(train_command(shared_data / "mr_polarity", tmp_path),
              lambda: logged_epochs(tmp_path) == 3 and ((backup_state(tmp_path) or {}).get("training_done")
                                                        or not any(tmp_path.glob("sentiment/*.partial/backup"))))
    (partial,) = Path(tmp_path, "sentiment").iterdir()
    assert partial.name.endswith(".partial"), "the run finished before it could be killed"
    history = (partial / "history.csv").read_text()
    assert len(history.strip().splitlines()) == 4  # header and the three epochs
    resumed = cli("train", "sentiment", "--resume", "latest", "--runs-dir", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Epoch" not in resumed.stdout  # nothing was trained again
    run_dir = finished_run(tmp_path)
    assert (run_dir / "history.csv").read_text() == history
    assert metrics(run_dir) == metrics(uninterrupted)


@pytest.mark.slow
def test_the_same_train_command_again_does_not_start_a_second_run_beside_an_unfinished_one(shared_data, tmp_path):
    """While a run is trained, and after it is killed, the same command (task, config,
    seed, data) refuses in one line: the run is still being trained, or here is its
    --resume command; --new-run, or another seed, starts a new run all the same."""
    command = train_command(shared_data / "mr_polarity", tmp_path, "--set", "train.epochs=50",
                            "--set", "train.patience=50")

    def partials():
        return sorted(path for path in Path(tmp_path, "sentiment").glob("*.partial") if (path / "run.json").is_file())

    first = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not partials() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        (partial,) = partials()
        run_id = partial.name.removesuffix(".partial")
        again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        assert_one_line_error(again, "being trained right now", f"process {first.pid} on ", str(partial), "--new-run")
        assert "--resume" not in again.stderr  # not offered while it runs
        while not (backup_state(tmp_path) or {}).get("epochs") and first.poll() is None:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    again = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert_one_line_error(again, "an unfinished run with the same config, seed and training data", str(partial),
                          f"python {ROOT / 'cli.py'} train sentiment --resume {run_id} --runs-dir {tmp_path}",
                          "--new-run")
    assert partials() == [partial]
    # Not the same run: another seed, or --new-run, starts one beside it.
    kill_when([*command, "--seed", "8"], lambda: len(partials()) == 2)
    kill_when([*command, "--new-run"], lambda: len(partials()) == 3)


@functools.lru_cache(maxsize=None)
def tmpfs_mountable() -> bool:
    with tempfile.TemporaryDirectory() as folder:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], capture_output=True).returncode:
            return False
        subprocess.run(["umount", folder], check=True)
        return True


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


@pytest.mark.slow
def test_a_full_disk_stops_training_with_one_line_and_the_run_resumes(uninterrupted, shared_data, small_disk):
    runs = small_disk / "runs"
    # Room for the run folder and the first epoch's checkpoint and backup (~0.5 MB
    # each), not for the second epoch's backup beside the first.
    filler = fill(small_disk, leave_kib=1200)
    done = subprocess.run(train_command(shared_data / "mr_polarity", runs), env=ENV, capture_output=True, text=True)
    assert_one_line_error(done, "out of disk space", "--resume")
    assert backup_state(runs)["epochs"] >= 1  # it stopped after a finished epoch, which it keeps
    python, script, *arguments = shlex.split(done.stderr.split("continue the run: ")[1])
    assert (python, script) == ("python", str(ROOT / "cli.py"))  # the checkout's cli.py, as it was run
    filler.unlink()
    resumed = cli(*arguments)  # the command the error printed
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run_dir = finished_run(runs)
    assert epochs_and_losses(run_dir) == epochs_and_losses(uninterrupted)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_out_of_space_is_simulated_in_training_and_the_run_resumes(run_cli, shared_data, tmp_path, monkeypatch):
    """The same as the tmpfs test, wherever mounting is not allowed: the second epoch's
    backup meets a full disk."""
    if tmpfs_mountable():
        pytest.skip("a real full disk is tested here (test_a_full_disk_stops_training_...)")
    import errno

    import numpy as np

    savez = np.savez
    calls = []

    def full_disk_on_second_epoch(file, **arrays):
        calls.append(file)
        if len(calls) == 2:
            file.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return savez(file, **arrays)

    monkeypatch.setattr(np, "savez", full_disk_on_second_epoch)
    code, out, err = run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity",
                             "--runs-dir", tmp_path, "--set", "train.epochs=3")
    assert_one_line_error(subprocess.CompletedProcess([], code, out, err), "out of disk space",
                          f"--resume {next((tmp_path / 'sentiment').iterdir()).name[:-len('.partial')]}")
    monkeypatch.undo()
    assert backup_state(tmp_path)["epochs"] == 1
    # The second epoch's half-written backup is gone; the first epoch's is whole.
    backup = next((tmp_path / "sentiment").iterdir()) / "backup"
    assert sorted(path.name for path in backup.iterdir()) == ["epoch-1.npz", "state.json"]
    resumed = cli("train", "sentiment", "--resume", "latest", "--runs-dir", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [row[0] for row in epochs_and_losses(finished_run(tmp_path))] == ["0", "1", "2"]


@pytest.mark.slow
def test_out_of_space_is_simulated_in_export(run_cli, tiny_run, tmp_path, monkeypatch):
    import errno

    from lstmkit import export

    def full_disk(model, signatures, path):
        path.mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export, "_write_saved_model", full_disk)
    base = tmp_path / "saved_models"
    code, out, err = run_cli("export", "sentiment", "--run", tiny_run, "--base-path", base)
    assert_one_line_error(subprocess.CompletedProcess([], code, out, err), "out of disk space", "export again")
    assert list((base / "sentiment").iterdir()) == []


def test_staging_folders_of_older_lstmkit_are_removed_only_when_a_day_old(tmp_path):
    from lstmkit.export import remove_stale_staging

    old, recent = tmp_path / ".tmp-export-abcd1234", tmp_path / ".tmp-export-efgh5678"
    for folder in (old, recent):
        (folder / "model").mkdir(parents=True)
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    assert remove_stale_staging(tmp_path) == [old]
    assert recent.is_dir() and not old.exists()
