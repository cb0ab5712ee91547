"""Running models off the event loop: a thread pool with a few turns per signature
(``Runner``), and server-side batching of concurrent requests (``Batcher``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from lstmkit.serving.registry import Servable, logger
from lstmkit.serving.requests import Prediction, Request, ServingError, run


class Runner:
    """Runs signatures on ``threads`` threads of their own, at most ``per_signature``
    at once for any one model signature: requests past that wait their turn, so one
    slow signature (eight ``generate`` calls of 100,000 characters) cannot hold every
    thread while other models' requests wait.

    Heavy requests (``is_heavy``) take no turn of their signature's: they run
    ``heavy_at_once`` at a time across all models, so a client sending the largest
    legal inputs back to back makes other heavy requests wait, never the ordinary
    ones of the same model (a 10,000-residue chain runs for seconds; the chains
    around it, for milliseconds)."""

    def __init__(self, threads: int, per_signature: int, heavy_at_once: int = 1):
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="lstmkit-model")
        self.per_signature = per_signature
        self.slots: dict[tuple, asyncio.Semaphore] = {}  # (model, signature) -> its turns
        self.heavy_slots = asyncio.Semaphore(heavy_at_once)

    async def __call__(self, key: tuple, function, *arguments, heavy: bool = False):
        slots = self.heavy_slots if heavy else self.slots.setdefault(key, asyncio.Semaphore(self.per_signature))
        async with slots:
            return await asyncio.get_running_loop().run_in_executor(self.executor, function, *arguments)


# A request is heavy when a row is longer than this share of its export's limit, or
# when its body is this large (inputs without a limit: a 1 MiB review).
HEAVY_SHARE_OF_LIMIT = 0.25
HEAVY_BODY_BYTES = 256 * 1024


def is_heavy(request: Request, max_lengths: dict, body_bytes: int) -> bool:
    if body_bytes >= HEAVY_BODY_BYTES:
        return True
    for name, (most, _) in max_lengths.items():
        array = request.arrays.get(name)
        if array is None or not array.size:
            continue
        # Bytes for strings: at least their characters, and cheap to count.
        longest = max(len(item) for item in array.flat) if array.dtype == object else \
            (array.shape[1] if array.ndim >= 2 else 0)
        if longest > HEAVY_SHARE_OF_LIMIT * most:
            return True
    return False


# Server-side batching -------------------------------------------------------------


class Batcher:
    """Runs concurrent requests to one signature as one batch: waits up to
    ``timeout_ms`` after the first request for others, up to ``max_size`` rows;
    requests whose inputs differ in shape past the batch dimension run apart. A
    shape's queue lasts only while it has requests (waveforms of 6,000 lengths must
    not leave 6,000 queues behind)."""

    def __init__(self, max_size: int, timeout_ms: float, runner: Runner | None = None):
        self.max_size, self.timeout = max_size, timeout_ms / 1000
        self.runner = runner or Runner(4, 4)
        self.queues: dict[tuple, asyncio.Queue] = {}

    async def run(self, servable: Servable, prediction: Prediction, model: str = "", heavy: bool = False) -> dict:
        batched = all(tensor.shape.rank for tensor in prediction.tensors.values())
        slot = (model, prediction.signature)
        if heavy or prediction.signature not in servable.batchable or not batched or \
                prediction.batch >= self.max_size:
            return await self.runner(slot, run, servable, prediction, heavy=heavy)
        key = (id(servable), prediction.signature,
               tuple((name, tuple(tensor.shape[1:])) for name, tensor in sorted(prediction.tensors.items())))
        done = asyncio.get_running_loop().create_future()
        if key not in self.queues:
            self.queues[key] = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._serve(key, servable, slot))
        self.queues[key].put_nowait((prediction, done))
        return await done

    async def _serve(self, key, servable: Servable, slot: tuple) -> None:
        queue = self.queues[key]
        while not queue.empty():
            waiting = [queue.get_nowait()]
            rows = waiting[0][0].batch
            deadline = time.monotonic() + self.timeout
            while rows < self.max_size:
                try:
                    item = await asyncio.wait_for(queue.get(), max(deadline - time.monotonic(), 0))
                except asyncio.TimeoutError:
                    break
                if rows + item[0].batch > self.max_size:
                    queue.put_nowait(item)  # first in the next batch
                    break
                waiting.append(item)
                rows += item[0].batch
            try:
                results = await self.runner(slot, self._run_batch, servable, [item[0] for item in waiting])
            except ServingError:
                # One bad request (e.g. a WAV that does not decode) must not fail the
                # others: run each alone for its own answer.
                results = [await self.runner(slot, _outcome, servable, item[0]) for item in waiting]
            except Exception as failure:  # never leave a client waiting
                logger.exception("a batch failed")
                results = [ServingError(500, f"{failure.__class__.__name__}: {failure}")] * len(waiting)
            for (_, done), result in zip(waiting, results):
                if done.done():
                    continue
                if isinstance(result, ServingError):
                    done.set_exception(result)
                else:
                    done.set_result(result)
        # Nothing waits: no await between the check above and here, so no request
        # can have joined this queue in between.
        del self.queues[key]

    @staticmethod
    def _run_batch(servable: Servable, predictions: list) -> list:
        import tensorflow as tf

        if len(predictions) == 1:
            return [_outcome(servable, predictions[0])]
        first = predictions[0]
        joined = Prediction(first.signature, {name: tf.concat([p.tensors[name] for p in predictions], axis=0)
                                              for name in first.tensors}, None, sum(p.batch for p in predictions))
        outputs = run(servable, joined)
        sizes = [p.batch for p in predictions]
        if any(tensor.shape.rank == 0 or tensor.shape[0] != joined.batch for tensor in outputs.values()):
            return [_outcome(servable, p) for p in predictions]
        parts = {name: tf.split(tensor, sizes) for name, tensor in outputs.items()}
        return [{name: parts[name][index] for name in outputs} for index in range(len(predictions))]


def _outcome(servable, prediction):
    try:
        return run(servable, prediction)
    except ServingError as error:
        return error


