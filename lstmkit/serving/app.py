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
``max_lengths`` (also checked in the graph), JSON nested deeper than any input needs,
strings that are not valid Unicode and versions that are not numbers get a 400 in
TensorFlow Serving's ``{"error": ...}`` shape, and messages name no server path. Models
run on their own pool of threads (``Runner``), a few at once for any one signature, so a
slow one (a long ``generate``) leaves the others room. A served version whose folder is
removed or replaced is unloaded.
``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus text format) are for load
balancers and monitoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import time

from lstmkit.serving.batching import Batcher, Runner
from lstmkit.serving.registry import MODEL_NAME, ModelRegistry, logger, metadata
from lstmkit.serving.requests import ServingError, answer, parse_predict, printable, run


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


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_size: int = 256
    # Seconds a client has to send a request's body once its headers are in (the
    # headers themselves: ``request_timeout`` of ``TimedH11Protocol``).
    request_timeout_s: float = 30.0


def create_app(registry: ModelRegistry, limits: Limits = Limits(), batcher: Batcher | None = None,
               runner: Runner | None = None):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    runner = runner or (batcher.runner if batcher is not None else Runner(4, 2))
    metrics = Metrics(registry, batcher)

    class Answer(JSONResponse):
        def render(self, content) -> bytes:
            # NaN outputs are written as NaN (as TensorFlow Serving does), not an error.
            return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def error(status: int, message: str) -> JSONResponse:
        return Answer({"error": printable(message, 2000)}, status_code=status)

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
        return bytes(body)

    async def handle(request: Request, match) -> JSONResponse:
        if match is None or not MODEL_NAME.match(match["name"]):
            raise ServingError(404, f"Malformed request: {request.method} {printable(request.url.path)}")
        name, version, verb = match["name"], match["version"], match["verb"]
        if verb == ":predict":
            if request.method != "POST":
                raise ServingError(405, f"Malformed request: {request.method} {printable(request.url.path)}; "
                                        "use POST")
            servable = registry.get(name, version)
            prediction = await asyncio.to_thread(parse_predict, await read_body(request), servable,
                                                 limits.max_batch_size)
            if batcher is None:
                outputs = await runner((name, prediction.signature), run, servable, prediction)
            else:
                outputs = await batcher.run(servable, prediction, name)
            return Answer(await asyncio.to_thread(answer, outputs, prediction))
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

    return Starlette(routes=[Route("/v1/models/{path:path}", models, methods=["GET", "POST"]),
                             Route("/healthz", healthz, methods=["GET"]),
                             Route("/readyz", readyz, methods=["GET"]),
                             Route("/metrics", prometheus, methods=["GET"])],
                     exception_handlers={404: unmatched, 405: unmatched, Exception: unmatched})


def timed_protocol(request_timeout_s: float):
    """uvicorn's h11 protocol with a deadline for each request's headers.

    uvicorn times out only the idle gap after an answer (``timeout_keep_alive``): a
    connection that never sends a request, or trickles its headers a byte at a time,
    would be held open for ever (200 such connections held a server). Here the clock
    starts when the connection opens and again after each answer, and the connection
    is closed if a request's headers are not all in by ``request_timeout_s``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        header_deadline = None

        def _arm(self) -> None:
            self._disarm()
            self.header_deadline = self.loop.call_later(request_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self.header_deadline is not None:
                self.header_deadline.cancel()
                self.header_deadline = None

        def _headers_too_slow(self) -> None:
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the headers are in; the body has its own deadline

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self._arm()

    return TimedH11Protocol


