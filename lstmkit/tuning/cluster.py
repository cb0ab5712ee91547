"""Distributed hyperparameter search on Keras Tuner's own distributed mode.

One chief holds the oracle (Keras Tuner's gRPC ``OracleServicer``); workers run trials
and ask it for the next one. ``configure`` maps ``--role``/``--oracle``/``--worker-id``
onto Keras Tuner's variables ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` (``keras_tuner_environment``).

What this module adds to Keras Tuner is bounded waiting, so that nothing hangs:
- a worker gives up in ``connect_timeout`` seconds when no chief answers (Keras Tuner's
  own client waits an hour), and every later call to the chief is bounded likewise;
- workers send a heartbeat (a ``GetTrial`` call) every ``HEARTBEAT_S`` seconds while a
  trial runs; the chief ends the trial of a worker it has not heard from for
  ``worker_timeout`` seconds as INVALID, so that it is retried by another worker, and
  stops waiting for that worker (Keras Tuner's chief waits for it forever);
- the chief ends the search when the oracle has no trials left and no worker is
  running one, or when no worker has called for ``worker_timeout`` seconds (counted
  from the latest call, or from the last trial it took back from a silent worker: a
  retried trial gets a full ``worker_timeout`` for a worker to come for it).

``LocalWorkers`` is the same machinery inside one machine: a local search serves its
oracle on loopback and runs its trials in short-lived worker processes, so that memory
Keras and TensorFlow keep after each fitted model is returned when the process exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import sys
import threading
import time

from lstmkit import hints, keras_internals
from lstmkit.errors import UserError

logger = logging.getLogger("lstmkit")
HEARTBEAT_S = 2.0


@dataclasses.dataclass(frozen=True)
class SearchCluster:
    role: str  # "chief" or "worker"
    host: str
    port: int
    worker_id: str | None = None
    worker_timeout: float = 600.0
    connect_timeout: float = 60.0

    @property
    def tuner_id(self) -> str:
        # Keras Tuner treats any id containing "chief" as the chief.
        return "chief" if self.role == "chief" else f"worker-{self.worker_id}"


def parse_oracle(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"the oracle address must be HOST:PORT (for example 127.0.0.1:8000), got {address!r}")
    return host.strip("[]"), int(port)


KERAS_TUNER_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


@contextlib.contextmanager
def keras_tuner_environment(cluster: SearchCluster | None):
    """Keras Tuner's variables for ``cluster`` (none without one) while the block runs.
    Keras Tuner reads them whenever it decides its role, so a search that leaves them
    set would turn the next search in this process, or a child's, into a distributed one."""
    saved = {name: os.environ.pop(name, None) for name in KERAS_TUNER_VARIABLES}
    if cluster is not None:
        os.environ.update(dict(zip(KERAS_TUNER_VARIABLES, (cluster.tuner_id, cluster.host, str(cluster.port)))))
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def configure(cluster: SearchCluster) -> None:
    """Log progress lines; a worker first checks that the chief answers and bounds its
    calls. ``keras_tuner_environment`` sets Keras Tuner's variables."""
    # Timestamped progress lines: which worker runs which trial, and why the chief stops.
    if not any(isinstance(handler, _StderrNow) for handler in logger.handlers):
        handler = _StderrNow()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    if cluster.role == "worker":
        if not cluster.worker_id or "chief" in cluster.worker_id:
            raise UserError("a worker needs a worker id (unique per worker, not containing 'chief')")
        wait_for_chief(cluster.host, cluster.port, cluster.connect_timeout)
        # Every call to the chief is bounded (Keras Tuner's default is an hour).
        keras_internals.bound_oracle_calls(max(cluster.connect_timeout, cluster.worker_timeout))


class _StderrNow(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a line is logged (not when the handler was
    made), so that a process that swaps stderr, like a test runner, gets every line."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def wait_for_chief(host: str, port: int, timeout: float) -> None:
    import grpc

    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        chief = hints.search_chief("TASK", f"{host}:{port}")
        raise UserError(f"no tuning chief answers at {host}:{port} after {timeout:g} s; start one first "
                        f"({chief}), or fix the oracle address") from None
    finally:
        channel.close()


@contextlib.contextmanager
def chief_errors(cluster: SearchCluster):
    """A worker's lost chief as one line instead of a gRPC traceback."""
    import grpc

    try:
        yield
    except grpc.RpcError as error:
        code = error.code().name if hasattr(error, "code") else error.__class__.__name__
        chief = hints.search_chief("TASK", f"{cluster.host}:{cluster.port}", resume="latest")
        raise UserError(f"lost the tuning chief at {cluster.host}:{cluster.port} ({code}); start the "
                        f"chief again ({chief}), then this worker") from None


def with_heartbeat(tuner_class):
    """``tuner_class`` whose trials tell the chief, every HEARTBEAT_S seconds, that
    this worker is alive."""

    class HeartbeatTuner(tuner_class):
        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            logger.info("worker %s: trial %s begins", self.tuner_id, trial.trial_id)
            self._beating = threading.Event()
            self._heart = threading.Thread(target=self._beat, args=(trial.trial_id, self._beating), daemon=True)
            self._heart.start()

        def on_trial_end(self, trial):
            self._beating.set()
            self._heart.join()
            super().on_trial_end(trial)

        def _beat(self, trial_id, stop):
            while not stop.wait(HEARTBEAT_S):
                try:
                    self.oracle.get_trial(trial_id)
                except Exception as error:  # the chief is gone: the trial's own calls will say so
                    logger.warning("heartbeat to the chief failed: %s", error.__class__.__name__)

    HeartbeatTuner.__name__ = tuner_class.__name__
    return HeartbeatTuner


# A worker process's exit codes: done with its share of trials, but trials may remain;
# and stopped on bad input (the CLI's code), which another process would only repeat.
EXIT_TRIAL_BUDGET_SPENT = 3
EXIT_BAD_INPUT = 2


class LocalWorkers:
    """The worker processes of a local search, one at a time: each runs a few trials
    and exits; the next starts while the oracle has trials left.

    ``start(worker_id)`` returns an unstarted ``multiprocessing`` process that runs a
    worker called ``worker_id`` against the chief.
    """

    def __init__(self, start, max_failures: int = 2):
        self.start = start
        self.max_failures = max_failures
        self.failures = 0
        self.started = 0
        self.running: multiprocessing.process.BaseProcess | None = None  # the current one

    def poll(self, oracle, search_over: bool) -> None:
        """Reap the worker if it has exited (its unfinished trial is retried) and start
        the next."""
        if self.running is not None and not self.running.is_alive():
            self._reap(oracle, self.running)
            self.running = None
        if not search_over and self.running is None and not self.exhausted(oracle):
            self.started += 1
            self.running = self.start(f"local-{self.started}")
            self.running.start()

    def _reap(self, oracle, process) -> None:
        from keras_tuner.engine import trial as trial_module

        process.join()
        worker_id = f"local-{self.started}"
        tuner_id = f"worker-{worker_id}"
        trial = oracle.ongoing_trials.get(tuner_id)
        if trial is not None:
            logger.warning("trial process %s exited (code %s) during trial %s; it is retried",
                           worker_id, process.exitcode, trial.trial_id)
            trial.status = trial_module.TrialStatus.INVALID
            trial.message = f"trial process {worker_id} exited with code {process.exitcode}"
            oracle.end_trial(trial)
        oracle.tuner_ids.discard(tuner_id)  # it will not ask for another trial
        if process.exitcode in (0, EXIT_TRIAL_BUDGET_SPENT):
            self.failures = 0
        elif process.exitcode == EXIT_BAD_INPUT:
            raise UserError(f"trial process {worker_id} stopped on the error above")
        else:
            self.failures += 1
            if self.failures >= self.max_failures:
                raise UserError(f"{self.failures} trial processes in a row failed (last exit code "
                                f"{process.exitcode}); see their output above")

    @staticmethod
    def exhausted(oracle) -> bool:
        """Whether ``oracle`` has run all of its ``max_trials`` and has none to retry
        (without this, one more process would start only to hear that; so it does where
        the retries cannot be read, see ``keras_internals.trials_to_retry``)."""
        return bool(oracle.max_trials and len(oracle.trials) >= oracle.max_trials
                    and not oracle.ongoing_trials and keras_internals.trials_to_retry(oracle) == [])

    def stop(self) -> None:
        if self.running is not None:
            self.running.terminate()
            self.running.join(10)


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel end this process when its parent dies (Linux), so a killed
    search leaves no orphaned trial running; exit now if it already has."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # died before the line above took effect
        sys.exit(1)


def serve_oracle(oracle, cluster: SearchCluster, poll_s: float = 0.5, workers: LocalWorkers | None = None) -> None:
    """Serve ``oracle`` to workers until the search is over (see the module notes);
    with ``workers``, start them here one after another."""
    from concurrent import futures

    import grpc
    from keras_tuner.engine import trial as trial_module

    last_seen: dict[str, float] = {}
    lock = threading.Lock()
    # When the chief last had news: its start, or a silent worker's trial taken back.
    last_event = time.monotonic()

    def seen(tuner_id):
        with lock:
            last_seen[tuner_id] = time.monotonic()

    def owner(trial_id):
        return next((tuner for tuner, trial in dict(oracle.ongoing_trials).items() if trial.trial_id == trial_id), None)

    class WatchedServicer(keras_internals.oracle_servicer_class()):
        """Keras Tuner's servicer, noting when each worker last called."""

        def CreateTrial(self, request, context):
            seen(request.tuner_id)
            return super().CreateTrial(request, context)

        def UpdateTrial(self, request, context):
            seen(owner(request.trial_id) or "?")
            return super().UpdateTrial(request, context)

        def GetTrial(self, request, context):
            seen(owner(request.trial_id) or "?")
            return super().GetTrial(request, context)

        def EndTrial(self, request, context):
            seen(owner(request.trial.trial_id) or "?")
            return super().EndTrial(request, context)

    servicer = WatchedServicer(oracle)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    keras_internals.add_oracle_servicer(servicer, server)
    if not server.add_insecure_port(f"{cluster.host}:{cluster.port}"):
        raise UserError(f"cannot listen on {cluster.host}:{cluster.port} (in use?); choose another oracle port")
    server.start()
    if workers is None:
        logger.info("chief: oracle listening on %s:%s", cluster.host, cluster.port)
    try:
        while True:
            if workers is not None:
                workers.poll(oracle, servicer.stop_triggered)
                if not workers.running and workers.exhausted(oracle):
                    return
            time.sleep(poll_s)
            now = time.monotonic()
            for tuner_id, trial in list(oracle.ongoing_trials.items()):
                silent = now - last_seen.get(tuner_id, now)
                if silent > cluster.worker_timeout:
                    logger.warning("chief: %s silent for %.0f s; its trial %s ends as INVALID and is "
                                   "retried by another worker", tuner_id, silent, trial.trial_id)
                    trial.status = trial_module.TrialStatus.INVALID
                    trial.message = f"{tuner_id} stopped answering"
                    oracle.end_trial(trial)
                    oracle.tuner_ids.discard(tuner_id)
                    # The silent worker's last call is older than worker_timeout, so it
                    # must not end the search in the same breath: the quiet time for the
                    # retried trial starts now.
                    with lock:
                        last_seen.pop(tuner_id, None)
                    last_event = now
            idle = not oracle.ongoing_trials and not oracle.tuner_ids
            if servicer.stop_triggered and idle:
                logger.info("chief: every trial has ended; the search is over")
                return
            with lock:
                quiet_since = max([last_event, *last_seen.values()])
            if not oracle.ongoing_trials and now - quiet_since > cluster.worker_timeout:
                logger.warning("chief: no worker has called for %.0f s; ending the search", now - quiet_since)
                return
    finally:
        if workers is not None:
            workers.stop()
        server.stop(grace=1)
