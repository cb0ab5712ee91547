"""LocalWorkers: the trial processes of a local search, with stand-in processes and oracle
(the real ones run in tests/lstmkit/tuning/test_search.py); the chief's handling of a
silent worker, with a real oracle served on loopback."""

import os
import threading
import time

import pytest

from lstmkit.tuning import cluster as cluster_lib
from lstmkit.tuning.cluster import (
    EXIT_TRIAL_BUDGET_SPENT,
    LocalWorkers,
    keras_tuner_environment,
)
from lstmkit.errors import UserError
from lstmkit.training.strategy import free_loopback_ports


class FakeProcess:
    def __init__(self, exitcode):
        self.exitcode, self.started = exitcode, False

    def start(self):
        self.started = True

    def is_alive(self):
        return False  # exits as soon as it is polled

    def join(self, timeout=None):
        pass


class FakeTrial:
    def __init__(self, trial_id):
        self.trial_id, self.status, self.message = trial_id, "RUNNING", None


class FakeOracle:
    def __init__(self, max_trials):
        self.max_trials, self.trials, self.ongoing_trials, self.tuner_ids = max_trials, {}, {}, set()
        self._retry_queue, self.ended = [], []

    def run(self, tuner_id, trial_id, finish=True):
        self.trials[trial_id] = trial = FakeTrial(trial_id)
        self.tuner_ids.add(tuner_id)
        if finish:
            trial.status = "COMPLETED"
        else:
            self.ongoing_trials[tuner_id] = trial

    def end_trial(self, trial):
        self.ended.append((trial.trial_id, trial.status))
        self.ongoing_trials = {key: value for key, value in self.ongoing_trials.items() if value is not trial}
        self._retry_queue.append(trial.trial_id)


def workers_with(exitcodes):
    started = []

    def start(worker_id):
        started.append(worker_id)
        return FakeProcess(exitcodes[len(started) - 1])

    return LocalWorkers(start), started


def test_a_new_process_starts_after_each_budget_until_the_trials_are_used_up():
    oracle = FakeOracle(max_trials=2)
    workers, started = workers_with([EXIT_TRIAL_BUDGET_SPENT] * 3)
    workers.poll(oracle, search_over=False)
    assert started == ["local-1"]
    oracle.run("worker-local-1", "0")
    workers.poll(oracle, search_over=False)  # local-1 exits, local-2 starts
    assert started == ["local-1", "local-2"] and "worker-local-1" not in oracle.tuner_ids
    oracle.run("worker-local-2", "1")
    workers.poll(oracle, search_over=False)
    assert started == ["local-1", "local-2"] and workers.exhausted(oracle) and not workers.running


def test_a_process_that_dies_mid_trial_has_its_trial_retried_and_two_failures_stop_the_search():
    oracle = FakeOracle(max_trials=3)
    workers, started = workers_with([-9, -9])
    workers.poll(oracle, search_over=False)
    oracle.run("worker-local-1", "0", finish=False)
    workers.poll(oracle, search_over=False)
    assert oracle.ended == [("0", "INVALID")] and oracle._retry_queue == ["0"] and started == ["local-1", "local-2"]
    with pytest.raises(UserError, match="2 trial processes in a row failed"):
        workers.poll(oracle, search_over=False)


def test_an_oracle_whose_retries_cannot_be_read_is_never_taken_as_exhausted(monkeypatch):
    from lstmkit import keras_internals

    oracle = FakeOracle(max_trials=1)
    oracle.run("worker-local-1", "0")
    assert LocalWorkers.exhausted(oracle)
    oracle._retry_queue.append("0")
    assert not LocalWorkers.exhausted(oracle)
    oracle._retry_queue.clear()
    # An unchecked Keras Tuner: one more process may start and hear the search is over.
    monkeypatch.setattr(keras_internals, "trials_to_retry", lambda oracle: None)
    assert not LocalWorkers.exhausted(oracle)


def test_bad_input_in_a_trial_process_stops_at_once():
    workers, _ = workers_with([cluster_lib.EXIT_BAD_INPUT])
    workers.poll(FakeOracle(3), search_over=False)
    with pytest.raises(UserError, match="stopped on the error above"):
        workers.poll(FakeOracle(3), search_over=False)


def test_keras_tuner_variables_are_set_for_a_search_and_restored_after(monkeypatch):
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "stale")
    cluster = cluster_lib.SearchCluster("worker", "127.0.0.1", 9999, worker_id="7")
    with keras_tuner_environment(cluster):
        assert os.environ["KERASTUNER_TUNER_ID"] == "worker-7" and os.environ["KERASTUNER_ORACLE_PORT"] == "9999"
    with keras_tuner_environment(None):  # a search in this process only
        assert "KERASTUNER_TUNER_ID" not in os.environ
    assert os.environ["KERASTUNER_TUNER_ID"] == "stale" and "KERASTUNER_ORACLE_IP" not in os.environ


def test_a_trial_taken_back_from_a_silent_worker_waits_a_full_timeout_for_another(tmp_path, monkeypatch):
    """The silent worker's last call is already worker_timeout old when its trial is taken
    back; that must not also end the search before another worker can ask for the trial."""
    import keras_tuner
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client, "TIMEOUT", 20)  # a chief that is gone fails the call, not hangs it
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=2, seed=0,
                                                    max_retries_per_trial=1)  # as a distributed search has
    oracle.hyperparameters.Int("units", 1, 8)
    oracle._set_project_dir(str(tmp_path), "search")
    (port,) = free_loopback_ports(1)
    chief = cluster_lib.SearchCluster("chief", "127.0.0.1", port, worker_timeout=2.0)
    server = threading.Thread(target=cluster_lib.serve_oracle, args=(oracle, chief), kwargs={"poll_s": 0.05},
                              daemon=True)
    server.start()

    def worker(worker_id):
        with keras_tuner_environment(cluster_lib.SearchCluster("worker", "127.0.0.1", port, worker_id=worker_id)):
            return oracle_client.OracleClient(oracle)

    taken = worker("1").create_trial("worker-1")  # and worker-1 never calls again
    deadline = time.monotonic() + 30
    while not oracle._retry_queue and time.monotonic() < deadline:
        time.sleep(0.02)
    assert oracle._retry_queue == [taken.trial_id] and server.is_alive()
    retried = worker("2").create_trial("worker-2")
    assert retried.trial_id == taken.trial_id and retried.status == "RUNNING"
    # worker-2 falls silent too: its trial is taken back, and with nobody calling the
    # chief ends the search on its own.
    server.join(timeout=30)
    assert not server.is_alive()
