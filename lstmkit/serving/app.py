"""TensorFlow Serving's REST API over a ``saved_models/`` tree, for ``cli.py serve``.

The same requests and answers as ``tensorflow_model_server --rest_api_port``:
``GET /v1/models/NAME[/versions/V]`` (version status), ``GET .../metadata`` (signature
definitions, read from ``saved_model.pb``), ``POST .../NAME[/versions/V]:predict`` in
the row (``instances``) and columnar (``inputs``) formats, ``{"b64": ...}`` for binary
strings, and errors as ``{"error": "..."}`` with TensorFlow Serving's status codes.

Models are the folders of the base path that hold integer version folders; each is
served at its newest version that loads (TensorFlow Serving's default policy). A
poller picks up new versions without a restart; a version that fails to load is
reported in its status and tried again only when its files change, and the version
being served stays in place until a newer one has loaded. Names and versions from a
request are only looked up among what the poller found on disk, never joined into paths.

With ``batch_max_size`` set, concurrent requests to a signature that the export marks
batchable (``assets.extra/lstmkit.json``) are run as one batch.

Hostile requests are client errors, never crashes: inputs longer than the export's
``max_lengths`` (also checked in the graph), numbers that are not finite, JSON nested
deeper than any input needs, strings that are not valid Unicode, versions that are not
numbers and answers larger than ``max_answer_bytes`` get a 400 in TensorFlow Serving's
``{"error": ...}`` shape, and messages name no server path. Large bodies and answers are
read and written in a worker process (``Offload``), so the event loop always answers
within milliseconds. Models run on their own pool of threads (``Runner``), a few at once
for any one signature and heavy requests one at a time, so a slow one (a long
``generate``, the longest chain) leaves the others room. Connections are limited in all
and per client address (``ConnectionLimits``). A served version whose folder is removed
or replaced is unloaded.
``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus text format) are for load
balancers and monitoring.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import re
import time

from lstmkit.serving.batching import Batcher, Runner, is_heavy
from lstmkit.serving.offload import Offload
from lstmkit.serving.registry import MODEL_NAME, ModelRegistry, logger, metadata
from lstmkit.serving.requests import (ServingError, answer_bytes, answer_too_large, output_arrays, printable,
                                      read_request, render_answer, run, to_prediction)


ROUTE = re.compile(r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<verb>:predict|/metadata)?\Z")


# Monitoring ------------------------------------------------------------------------


class Metrics:
    """Request counts and latencies for ``GET /metrics``, kept by ``prometheus_client``
    in a registry of this app's own (with the standard ``process_*`` metrics).

    Labelled by model (only names the registry serves; anything else is counted as
    ``model=""``, so hostile paths cannot grow the label set), route and status code."""

    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

    def __init__(self, registry: ModelRegistry, batcher: Batcher | None):
        import prometheus_client

        self.registry = prometheus_client.CollectorRegistry()
        self.requests = prometheus_client.Counter(
            "lstmkit_requests", "Requests answered, by model, route and HTTP status code.",
            ["model", "route", "code"], registry=self.registry)
        self.latency = prometheus_client.Histogram(
            "lstmkit_request_duration_seconds", "Time from a request's arrival to its answer.",
            ["model", "route"], buckets=self.BUCKETS, registry=self.registry)
        prometheus_client.Gauge("lstmkit_models_served", "Models with a version being served.",
                                registry=self.registry).set_function(lambda: len(registry.serving))
        prometheus_client.Gauge(
            "lstmkit_batch_queues", "Server-side batching queues alive (one per input shape with requests).",
            registry=self.registry).set_function(lambda: len(batcher.queues) if batcher is not None else 0)
        prometheus_client.ProcessCollector(registry=self.registry)

    def observe(self, model: str, route: str, code: int, seconds: float) -> None:
        self.requests.labels(model, route, str(code)).inc()
        self.latency.labels(model, route).observe(seconds)

    def text(self) -> bytes:
        import prometheus_client

        return prometheus_client.generate_latest(self.registry)


# The ASGI application ---------------------------------------------------------------


# The most of an oversized request body read (and dropped) so that its client gets the 413.
DRAIN_BYTES = 64 * 1024 * 1024
# Request headers past this many bytes are refused (h11 refuses them only when they
# arrive in pieces; in one read of up to 256 KiB they would pass).
MAX_HEADER_BYTES = 16 * 1024
# The status of a request whose client left before sending its whole body (nginx's
# "client closed request"): a client error, never a 5xx.
CLIENT_CLOSED = 499


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_size: int = 256
    # Seconds a client has to send a request's body once its headers are in (the
    # headers themselves: ``request_timeout`` of ``uvicorn_internals.timed_protocol``).
    request_timeout_s: float = 30.0
    # The largest answer written: a legal request can ask for far more output than it
    # sends (256 chains of 10,000 residues: 2.5 MB in, 157 MB of probabilities out).
    max_answer_bytes: int = 16 * 1024 * 1024


def create_app(registry: ModelRegistry, limits: Limits = Limits(), batcher: Batcher | None = None,
               runner: Runner | None = None, offload: Offload | None = None):
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    runner = runner or (batcher.runner if batcher is not None else Runner(4, 2))
    offload = offload or Offload()
    metrics = Metrics(registry, batcher)

    class Answer(JSONResponse):
        def render(self, content) -> bytes:
            return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def error(status: int, message: str) -> JSONResponse:
        response = Answer({"error": printable(message, 2000)}, status_code=status)
        if status in (408, 413, CLIENT_CLOSED):
            # The body was not read to its end: the connection cannot carry another request,
            # and kept open it would be held until the next header deadline.
            response.headers["connection"] = "close"
        return response

    async def drop_body(request: Request) -> None:
        # Read and drop what a client is still sending before answering 413: a socket
        # closed with unread data resets the connection, and the client gets a broken pipe
        # instead of the answer. Bounded in bytes and time; beyond that, the reset stands.
        async def drain():
            dropped = 0
            async for chunk in request.stream():
                dropped += len(chunk)
                if dropped > DRAIN_BYTES:
                    return

        with contextlib.suppress(Exception):
            await asyncio.wait_for(drain(), limits.request_timeout_s)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            if int(declared) <= DRAIN_BYTES:
                await drop_body(request)
            raise ServingError(413, f"request body of {int(declared):,} bytes; at most {limits.max_body_bytes:,}")
        body = bytearray()

        async def receive():
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > limits.max_body_bytes:
                    raise ServingError(413, f"request body over {limits.max_body_bytes:,} bytes")

        try:  # a body trickled in must not hold a connection for ever
            await asyncio.wait_for(receive(), limits.request_timeout_s)
        except asyncio.TimeoutError:
            raise ServingError(408, f"the request body did not arrive within {limits.request_timeout_s:g} s") \
                from None
        except ClientDisconnect:
            raise ServingError(CLIENT_CLOSED, "the client closed the connection before sending the whole body") \
                from None
        return bytes(body)

    async def predict(request: Request, name: str, version: str | None) -> Response:
        servable = registry.get(name, version)
        body = await read_body(request)
        parsed = await offload(len(body), read_request, body, servable.inputs, limits.max_batch_size)
        prediction = await asyncio.to_thread(to_prediction, parsed, servable, limits.max_answer_bytes)
        heavy = is_heavy(parsed, servable.max_lengths.get(parsed.signature, {}), len(body))
        if batcher is None:
            outputs = await runner((name, prediction.signature), run, servable, prediction, heavy=heavy)
        else:
            outputs = await batcher.run(servable, prediction, name, heavy=heavy)
        arrays = await asyncio.to_thread(output_arrays, outputs)
        size = answer_bytes(arrays)
        if size > 2 * limits.max_answer_bytes:  # surely too large: refused without writing it
            raise answer_too_large(size, limits.max_answer_bytes, prediction.batch)
        content = await offload(size, render_answer, arrays, prediction.rows, prediction.batch,
                                limits.max_answer_bytes)
        return Response(content, media_type="application/json")

    async def handle(request: Request, match) -> JSONResponse:
        if match is None or not MODEL_NAME.match(match["name"]):
            raise ServingError(404, f"Malformed request: {request.method} {printable(request.url.path)}")
        name, version, verb = match["name"], match["version"], match["verb"]
        if verb == ":predict":
            if request.method != "POST":
                raise ServingError(405, f"Malformed request: {request.method} {printable(request.url.path)}; "
                                        "use POST")
            return await predict(request, name, version)
        if request.method != "GET":
            raise ServingError(405, f"Malformed request: {request.method} {printable(request.url.path)}; use GET")
        if verb == "/metadata":
            return Answer(metadata(name, registry.get(name, version)))
        return Answer(registry.status(name, version))

    async def models(request: Request) -> JSONResponse:
        started = time.perf_counter()
        match = ROUTE.match(request.url.path)
        try:
            response = await handle(request, match)
        except ServingError as failure:
            response = error(failure.status, failure.message)
        except Exception:  # a bug, not the client's fault: logged, and answered in the same shape
            logger.exception("%s %s failed", request.method, printable(request.url.path))
            response = error(500, "internal error; the server's log has the details")
        known = match is not None and match["name"] in registry.serving
        route = "predict" if match is not None and match["verb"] == ":predict" else \
            "metadata" if match is not None and match["verb"] == "/metadata" else "status"
        metrics.observe(match["name"] if known else "", route, response.status_code, time.perf_counter() - started)
        return response

    async def healthz(request: Request) -> JSONResponse:
        return Answer({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        with registry.lock:
            serving = {name: str(servable.version) for name, servable in registry.serving.items()}
        # Ready while some model is served: a load balancer sends traffic here only then.
        return Answer({"status": "ready" if serving else "no model loaded", "models": serving},
                      status_code=200 if serving else 503)

    async def prometheus(request: Request) -> Response:
        import prometheus_client

        return Response(metrics.text(), media_type=prometheus_client.CONTENT_TYPE_LATEST)

    def unmatched(request, exc) -> JSONResponse:
        code = getattr(exc, "status_code", 500)
        if code not in (404, 405):
            logger.error("%s %s failed: %r", request.method, printable(request.url.path), exc)
            return error(500, "internal error; the server's log has the details")
        return error(code, f"Malformed request: {request.method} {printable(request.url.path)}")

    routes = Starlette(routes=[Route("/v1/models/{path:path}", models, methods=["GET", "POST"]),
                               Route("/healthz", healthz, methods=["GET"]),
                               Route("/readyz", readyz, methods=["GET"]),
                               Route("/metrics", prometheus, methods=["GET"])],
                       exception_handlers={404: unmatched, 405: unmatched, Exception: unmatched})

    async def app(scope, receive, send):
        if scope["type"] == "http":
            size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
            if size > MAX_HEADER_BYTES:
                response = error(400, f"request headers of {size:,} bytes; at most {MAX_HEADER_BYTES:,}")
                response.headers["connection"] = "close"
                return await response(scope, receive, send)
        await routes(scope, receive, send)

    return app


class ConnectionLimits:
    """How many connections the server holds, in all and from any one client address.

    Without a limit per client, one address holding every connection (idle sockets,
    reopened whenever they are closed) locks every other client out. A connection past
    either limit never counts against the others: it is answered in the API's JSON
    error shape (429 past the client's share, 503 past the total) and closed, as soon
    as its request arrives, or at the header deadline if none does. Held until then,
    so that a client reopening whatever is closed cannot turn the limit into a flood
    of new connections; past ``MOST_HELD`` held at once, answered at once."""

    MOST_HELD = 512
    # After the answer, the client's half of the connection stays open this long, so
    # that a request it already sent is read and the answer is not lost to a reset.
    LINGER_SECONDS = 0.5

    def __init__(self, total: int, per_client: int):
        self.total, self.per_client = total, per_client
        self.by_client: collections.Counter = collections.Counter()
        self.held = 0

    def admit(self, client: str) -> tuple[int, str] | None:
        """None, and the connection is counted; or why it is refused (status, message)."""
        if self.by_client[client] >= self.per_client:
            return 429, (f"this client already holds {self.per_client} connections, the most one client address "
                         "may hold (the server's --max-connections-per-client); reuse them or close some")
        if sum(self.by_client.values()) >= self.total:
            return 503, (f"the server holds {self.total} connections, its most (--max-connections); "
                         "try again shortly")
        self.by_client[client] += 1
        return None

    def release(self, client: str) -> None:
        self.by_client[client] -= 1
        if not self.by_client[client]:
            del self.by_client[client]
