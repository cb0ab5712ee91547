"""LocalWorkers: the trial processes of a local search, with stand-in processes and oracle
(the real ones run in tests/lstmkit/test_tuning.py)."""

import os

import pytest

from lstmkit.tuning import cluster as cluster_lib
from lstmkit.tuning.cluster import (
    EXIT_TRIAL_BUDGET_SPENT,
    LocalWorkers,
    keras_tuner_environment,
)
from lstmkit.errors import UserError


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
