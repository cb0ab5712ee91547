"""tf.distribute strategies: TF_CONFIG checks, and two multiworker processes on loopback
training one tiny sentiment model to identical weights."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lstmkit.training import strategy as strategy_lib
from lstmkit.errors import UserError
from tests.conftest import ROOT

GOOD = {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "task": {"type": "worker", "index": 1}}


def test_a_good_tf_config_passes():
    assert strategy_lib.check_tf_config(json.dumps(GOOD)) == GOOD


@pytest.mark.parametrize("text, message", [
    (None, "needs TF_CONFIG"),
    ('{"cluster": {"worker": ["a:1"]}', "not valid JSON"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2001"]}, "task": {"type": "worker", "index": 0}}),
     "names 127.0.0.1:2001 more than once"),
    (json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}), "index must be 0..1"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}), "not a job of the cluster"),
    (json.dumps({"cluster": {"worker": "a:1"}, "task": {"type": "worker", "index": 0}}), "must be a list"),
    (json.dumps([1, 2]), "needs a 'cluster' and a 'task'"),
])
def test_bad_tf_config_is_one_clear_error(text, message):
    with pytest.raises(UserError, match=message):
        strategy_lib.check_tf_config(text)


def test_train_refuses_a_bad_tf_config_before_reading_data(run_cli, monkeypatch, tmp_path, shared_data):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    code, out, err = run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity",
                             "--strategy", "multiworker", "--runs-dir", tmp_path)
    assert code == 2 and "TF_CONFIG is not valid JSON" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_two_multiworker_processes_finish_with_identical_weights(shared_data, tmp_path):
    from lstmkit.run import Run
    from lstmkit.tasks.sentiment.task import TASK

    workers = [f"127.0.0.1:{port}" for port in strategy_lib.free_loopback_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        command = [sys.executable, str(ROOT / "cli.py"), "train", "sentiment", "--preset", "tiny",
                   "--data", str(shared_data / "mr_polarity"), "--runs-dir", str(tmp_path / f"worker{index}"),
                   "--strategy", "multiworker", "--seed", "7", "--set", "train.epochs=2",
                   "--set", "data.max_train_examples=256", "--set", "train.batch_size=16"]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    weights, infos = [], []
    for index in range(2):
        (run_dir,) = (tmp_path / f"worker{index}" / "sentiment").iterdir()
        infos.append(json.loads((run_dir / "run.json").read_text()))
        weights.append(Run.from_folder(TASK, run_dir).model.get_weights())
    assert [info["replicas"] for info in infos] == [2, 2]
    assert all(info["strategy"] == "multiworker" for info in infos)
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)
    history = (next((tmp_path / "worker0" / "sentiment").iterdir()) / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs


@pytest.mark.slow
def test_mirrored_strategy_trains_and_is_recorded(run_cli, shared_data, tmp_path):
    code, out, err = run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity",
                             "--strategy", "mirrored", "--runs-dir", tmp_path, "--set", "train.epochs=1",
                             "--set", "data.max_train_examples=128")
    assert code == 0, err
    (run_dir,) = (tmp_path / "sentiment").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["strategy"] == "mirrored" and info["replicas"] >= 1
