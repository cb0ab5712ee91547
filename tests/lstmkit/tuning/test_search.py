"""Keras Tuner search through the CLI: resume, retrain, HParams logs, memory records,
bad input, and a distributed search of one chief and two workers on loopback."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from lstmkit.training.strategy import free_loopback_ports
from lstmkit.registry import task_names
from tests.conftest import ROOT

TINY_MR = ["--preset", "tiny", "--set", "data.max_train_examples=200", "--set", "vocab_size=500"]


def search_dir(runs, partial=False):
    """The chief's (or a local) search folders, finished or unfinished."""
    return [path for path in sorted((runs / "sentiment").glob("tune-*"))
            if "worker" not in path.name and path.name.endswith(".partial") == partial]


@pytest.mark.slow
def test_search_writes_trials_hparams_logs_and_memory_then_retrains(run_cli, shared_data, tmp_path):
    code, out, err = run_cli("tune", "sentiment", "--data", shared_data / "mr_polarity", *TINY_MR,
                             "--tuner", "random", "--max-trials", "2", "--max-epochs", "2",
                             "--objective", "val_loss", "--retrain", "--runs-dir", tmp_path)
    assert code == 0, err
    (directory,) = search_dir(tmp_path)
    trials = json.loads((directory / "trials.json").read_text())
    assert [trial["status"] for trial in trials] == ["COMPLETED"] * 2
    assert trials[0]["score"] <= trials[1]["score"]  # val_loss: lower is better, best first
    # One TensorBoard folder per trial, with the HParams plugin's summary in it.
    for trial in trials:
        events = list((directory / "tensorboard" / trial["trial"]).rglob("events.out.tfevents.*"))
        assert events and any(b"hparams" in path.read_bytes() for path in events)
    # Each trial ran in a fresh process (the default), which recorded its memory.
    memory = json.loads((directory / "memory.json").read_text())
    assert [entry["trial"] for entry in memory] == ["0", "1"] and all(entry["rss_mb"] > 0 for entry in memory)
    assert len({entry["pid"] for entry in memory} | {os.getpid()}) == 3
    # The trial processes import TensorFlow without its C++ start-up lines.
    assert "oneDNN" not in err and "cuda" not in err and "I0000" not in err, err
    # The retrained run: best config, train+validation, test metrics only.
    assert "retrained on train+validation" in out and "test: " in out
    (run_dir,) = [path for path in (tmp_path / "sentiment").iterdir() if not path.name.startswith("tune-")]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["validation_merged_into_train"] is True
    assert list(json.loads((run_dir / "metrics.json").read_text())) == ["test"]
    best = json.loads((directory / "best_config.json").read_text())
    assert json.loads((run_dir / "config.json").read_text())["lstm"] == best["lstm"]


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_rerunning_finished_trials(run_cli, shared_data, tmp_path):
    command = [sys.executable, str(ROOT / "cli.py"), "tune", "sentiment", "--data", str(shared_data / "mr_polarity"),
               *TINY_MR, "--tuner", "random", "--max-trials", "3", "--max-epochs", "1",
               "--trials-per-process", "0", "--runs-dir", str(tmp_path)]
    process = subprocess.Popen(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, finished = time.time() + 240, []
    while time.time() < deadline and process.poll() is None and not finished:
        finished = [path for path in tmp_path.glob("sentiment/tune-*.partial/search/trial_*/trial.json")
                    if json.loads(path.read_text())["status"] == "COMPLETED"]
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert finished, "the first trial never finished"
    first = json.loads(finished[0].read_text())
    code, out, err = run_cli("tune", "sentiment", "--resume", "latest", "--runs-dir", tmp_path)
    assert code == 0, err
    (directory,) = search_dir(tmp_path)
    # What to run next trains on the search's own data, not the task's default.
    assert (f"train it:    lstmkit train sentiment --data {shared_data / 'mr_polarity'} --config "
            f"{directory / 'best_config.json'} --runs-dir {tmp_path}") in out
    assert not search_dir(tmp_path, partial=True)
    trials = json.loads((directory / "trials.json").read_text())
    assert sorted(trial["trial"] for trial in trials) == ["0", "1", "2"]
    again = json.loads((directory / "search" / f"trial_{first['trial_id']}" / "trial.json").read_text())
    assert again["score"] == first["score"]  # finished before the kill, not run again
    memory = json.loads((directory / "memory.json").read_text())  # all trials in one process each time
    assert len({entry["pid"] for entry in memory if entry["trial"] != first["trial_id"]}) == 1


def test_a_runs_dir_under_a_file_is_one_line(run_cli, shared_data, tmp_path):
    (tmp_path / "afile").write_text("")
    code, out, err = run_cli("tune", "sentiment", "--data", shared_data / "mr_polarity", *TINY_MR,
                             "--runs-dir", tmp_path / "afile" / "runs")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "which is a file, not a folder" in err


@pytest.mark.parametrize("args, message", [
    (["--tuner", "grid"], "'grid' is not one of"),
    (["--objective", "val_f1"], "unknown objective 'val_f1' for sentiment; choose one of: val_accuracy, val_loss"),
    (["--max-trials", "0"], "0 is not in the range x>=1"),
    (["--trials-per-process", "-1"], "-1 is not in the range x>=0"),
    (["--role", "worker", "--oracle", "localhost"], "the oracle address must be HOST:PORT"),
    (["--role", "worker"], "needs both --role and --oracle"),
])
def test_bad_search_input_is_one_line(run_cli, shared_data, tmp_path, args, message):
    code, out, err = run_cli("tune", "sentiment", "--data", shared_data / "mr_polarity", *TINY_MR,
                             "--runs-dir", tmp_path, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sentiment").exists()


def test_a_worker_gives_up_on_an_oracle_that_does_not_answer(run_cli, shared_data, tmp_path):
    (port,) = free_loopback_ports(1)
    started = time.perf_counter()
    code, out, err = run_cli("tune", "sentiment", "--data", shared_data / "mr_polarity", *TINY_MR,
                             "--role", "worker", "--oracle", f"127.0.0.1:{port}", "--worker-id", "1",
                             "--connect-timeout", "3", "--runs-dir", tmp_path)
    assert code == 2 and f"no tuning chief answers at 127.0.0.1:{port} after 3 s" in err
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "sentiment").exists()


def start(role, port, tmp_path, shared_data, *extra):
    command = [sys.executable, str(ROOT / "cli.py"), "tune", "sentiment", "--data", str(shared_data / "mr_polarity"),
               *TINY_MR, "--tuner", "random", "--max-trials", "4", "--max-epochs", "2",
               "--runs-dir", str(tmp_path), "--role", role, "--oracle", f"127.0.0.1:{port}", *extra]
    return subprocess.Popen(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def begun(output):
    return re.findall(r"worker (worker-\d): trial (\d+) begins", output)


@pytest.mark.slow
def test_one_chief_two_workers_run_every_trial_once_and_the_chief_exits(shared_data, tmp_path):
    (port,) = free_loopback_ports(1)
    chief = start("chief", port, tmp_path, shared_data, "--worker-timeout", "60")
    workers = [start("worker", port, tmp_path, shared_data, "--worker-id", str(i)) for i in (1, 2)]
    outputs = [worker.communicate(timeout=400)[0] for worker in workers]
    chief_output = chief.communicate(timeout=60)[0]  # exits on its own once the workers are done
    assert chief.returncode == 0, chief_output[-3000:]
    assert all(worker.returncode == 0 for worker in workers), outputs
    runs = [trial for output in outputs for _, trial in begun(output)]
    assert sorted(runs) == ["0", "1", "2", "3"]  # every trial ran, none twice
    assert all(begun(output) for output in outputs)  # both workers took part
    (directory,) = search_dir(tmp_path)
    trials = json.loads((directory / "trials.json").read_text())
    assert len(trials) == 4 and all(trial["status"] == "COMPLETED" for trial in trials)
    assert "every trial has ended" in chief_output


@pytest.mark.slow
def test_a_worker_killed_mid_trial_neither_hangs_the_chief_nor_loses_trials(shared_data, tmp_path):
    (port,) = free_loopback_ports(1)
    # worker 2 starts once worker 1 is dead, and must ask for the retried trial within a
    # worker timeout of its being taken back: 20 s leaves room for its start on a busy machine.
    chief = start("chief", port, tmp_path, shared_data, "--worker-timeout", "20")
    doomed = start("worker", port, tmp_path, shared_data, "--worker-id", "1")
    # Kill worker 1 as soon as it says its first trial has begun.
    seen = ""
    deadline = time.time() + 240
    while time.time() < deadline and not begun(seen):
        line = doomed.stdout.readline()
        if not line:
            break
        seen += line
    assert begun(seen), seen[-3000:]
    killed_trial = begun(seen)[0][1]
    doomed.kill()
    doomed.wait()
    survivor = start("worker", port, tmp_path, shared_data, "--worker-id", "2")
    output = survivor.communicate(timeout=600)[0]
    chief_output = chief.communicate(timeout=60)[0]
    assert survivor.returncode == 0 and chief.returncode == 0, (output[-2000:], chief_output[-2000:])
    assert "worker-1 silent for" in chief_output and f"its trial {killed_trial} ends as INVALID" in chief_output
    (directory,) = search_dir(tmp_path)
    trials = {trial["trial"]: trial for trial in json.loads((directory / "trials.json").read_text())}
    assert sorted(trials) == ["0", "1", "2", "3"]
    assert all(trial["status"] == "COMPLETED" for trial in trials.values())  # the killed one was retried
    assert sorted(trial for _, trial in begun(output)).count(killed_trial) == 1


@pytest.mark.parametrize("task_name", task_names())
def test_every_task_has_a_search_space_that_builds(task_name):
    """The contract makes tuning automatic: any registered task's hypermodel builds a
    model from Keras Tuner's choices, and searches the shared knobs."""
    import keras_tuner

    from lstmkit.registry import get_task

    task = get_task(task_name)
    hp = keras_tuner.HyperParameters()
    config = task.search_space(hp, task.tiny_config())
    bound = task.bind(config)
    model = bound.bind(preprocessing=bound.placeholder_preprocessing()).build_model()
    assert model.count_params() > 0
    assert {"lstm.units", "lstm.layers", "train.learning_rate", "train.batch_size"} <= set(hp.values)
    assert ("lstm.bidirectional" in hp.values) == (task_name != "textgen")
