"""JSON work off the event loop: small on a thread, large in a worker process of lower
priority, errors carried back, and a killed worker replaced."""

import asyncio
import os
import signal

import pytest

from lstmkit.serving.offload import Offload
from lstmkit.serving.requests import ServingError


def refuse():
    raise ServingError(400, "refused in the worker")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def offload():
    running = Offload(processes=1, large_bytes=1000)
    running.start()
    yield running
    running.close()


def test_small_work_runs_on_a_thread_and_large_work_in_a_lower_priority_process(offload):
    async def main():
        return (await offload(999, os.getpid), await offload(1000, os.getpid),
                await offload(1000, os.nice, 0), os.nice(0))

    small, large, worker_niceness, own_niceness = asyncio.run(main())
    assert small == os.getpid() and large != os.getpid()
    assert worker_niceness > own_niceness  # its CPU goes to the models first


def test_a_client_error_in_the_worker_comes_back_as_itself(offload):
    with pytest.raises(ServingError) as raised:
        asyncio.run(offload(5000, refuse))
    assert (raised.value.status, raised.value.message) == (400, "refused in the worker")


def test_a_killed_worker_is_a_503_and_the_next_request_gets_a_new_one():
    offload = Offload(processes=1, large_bytes=0)
    try:
        with pytest.raises(ServingError) as raised:
            asyncio.run(offload(1, die))
        assert raised.value.status == 503
        assert asyncio.run(offload(1, os.getpid)) != os.getpid()
    finally:
        offload.close()


def test_a_worker_exits_when_its_server_is_killed(tmp_path):
    """uvicorn stops on SIGTERM by raising it again, so the pool is never shut down."""
    import subprocess
    import sys
    import time

    script = ("import asyncio, os, sys\n"
              "from lstmkit.serving.offload import Offload\n"
              "offload = Offload(processes=1, large_bytes=0)\n"
              "print(asyncio.run(offload(1, os.getpid)), flush=True)\n"
              "os.kill(os.getpid(), 9)\n")
    server = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    worker = int(server.stdout.split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError(f"worker {worker} outlived its server")
