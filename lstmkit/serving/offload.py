"""Reading request bodies and writing answers off the event loop.

Python's ``json`` holds the interpreter's global lock for the whole of one call: half a
second for an 8 MB body of numbers, five for a 150 MB answer. On a thread that still
stops the event loop (and every other request, ``/healthz`` included) for that long.
So small bodies and answers are handled on a thread, where they cost milliseconds, and
large ones in a worker process of their own, whose lock is not the server's. What
crosses to it and back is bytes and numpy arrays (``lstmkit.serving.requests`` reads
and writes JSON without TensorFlow)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import threading
import time

from lstmkit.serving.registry import logger
from lstmkit.serving.requests import ServingError

# Bodies and answers from this size on go to the worker process: json handles 256 KiB in
# about 15 ms here, a pause the event loop can take.
LARGE_BYTES = 256 * 1024


def _start_worker(server: int) -> None:
    # The workers parse what large bodies hold, refused or not (8 MB of numbers: most of
    # a second of CPU each): at a lower priority, the models and the event loop come first.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    # A server stopped by a signal never shuts its pool down (uvicorn raises SIGTERM again
    # once it has stopped): a worker outliving it would be left behind for good.
    threading.Thread(target=_exit_with, args=(server,), daemon=True).start()


def _exit_with(server: int) -> None:
    while os.getppid() == server:
        time.sleep(1)
    os._exit(0)


class Offload:
    """Runs JSON work on a thread when its size is under ``large_bytes``, else on one of
    ``processes`` worker processes (none: always on a thread). The workers are started by
    ``spawn``: a server that has loaded TensorFlow must not fork."""

    def __init__(self, processes: int = 0, large_bytes: int = LARGE_BYTES):
        self.processes, self.large_bytes = processes, large_bytes
        self.lock = threading.Lock()
        self.pool = self._new_pool()

    def _new_pool(self):
        if not self.processes:
            return None
        return concurrent.futures.ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=_start_worker, initargs=(os.getpid(),))

    def start(self) -> None:
        """Start the workers now, so the first large request does not wait for them."""
        if self.pool is not None:
            self.pool.submit(int).result()

    async def __call__(self, size: int, function, *arguments):
        if self.pool is None or size < self.large_bytes:
            return await asyncio.to_thread(function, *arguments)
        pool = self.pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, function, *arguments)
        except concurrent.futures.process.BrokenProcessPool:
            # A worker killed (out of memory, say): start new ones for the next request.
            logger.error("a JSON worker process stopped; starting a new one")
            with self.lock:
                if self.pool is pool:
                    self.pool = self._new_pool()
            pool.shutdown(wait=False, cancel_futures=True)
            raise ServingError(503, "the server's JSON worker stopped while handling this request; try again")

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
