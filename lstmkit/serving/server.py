"""Everything ``lstmkit serve`` starts: the registry and its poller, the model runner
(and batcher), the ASGI app, and uvicorn on a socket that is bound before the models'
addresses are announced."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Callable

from lstmkit.errors import UserError
from lstmkit.serving.app import ConnectionLimits, Limits, create_app
from lstmkit.serving.batching import Batcher, Runner
from lstmkit.serving.offload import Offload
from lstmkit.serving.registry import ModelRegistry, logger, poll
from lstmkit.serving.uvicorn_internals import timed_protocol


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How ``serve`` listens and runs models (the CLI's flags, with its defaults)."""

    base_path: str | Path = "saved_models"
    host: str = "127.0.0.1"
    port: int = 8501
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_size: int = 256
    batch_max_size: int = 0  # join concurrent requests into batches of up to this many rows (0, 1: off)
    batch_timeout_ms: float = 2.0
    poll_seconds: float = 1.0
    max_connections: int = 256
    max_connections_per_client: int | None = None  # default: a quarter of max_connections, at least 1
    max_answer_bytes: int = 16 * 1024 * 1024
    request_timeout: float = 30.0
    keep_alive_timeout: int = 5
    threads: int | None = None  # default: CPU cores + 4
    signature_concurrency: int | None = None  # default: half the CPU cores, at least 2


def serve(options: ServerOptions, announce: Callable[[str], None] = print,
          listener: socket.socket | None = None) -> None:
    """Serve every model under ``options.base_path`` until interrupted; ``announce``
    receives the lines that say what is served where; ``listener``, a socket already
    bound to ``options.host:port`` (``listening_socket``)."""
    import uvicorn

    connections = ConnectionLimits(options.max_connections,
                                   options.max_connections_per_client or max(1, options.max_connections // 4))
    try:  # an unchecked uvicorn is refused before any model loads
        protocol = timed_protocol(options.request_timeout, connections)
    except UserError:
        if listener is not None:
            listener.close()
        raise

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # which versions load, fail and are replaced
    logger.propagate = False
    # Bound before the models load (seconds each): a port already taken is said at once.
    listener = listener or listening_socket(options.host, options.port)
    registry = ModelRegistry(options.base_path)
    registry.refresh()
    if not registry.serving:
        listener.close()
        problems = [status.error_message for statuses in registry.statuses.values() for status in statuses.values()]
        raise UserError(f"no SavedModel to serve under {options.base_path}"
                        + (f" ({problems[0]})" if problems else "")
                        + "; export a trained run first (lstmkit export TASK)")
    threads = options.threads or (os.cpu_count() or 1) + 4
    # TensorFlow runs every model's ops on one shared pool of threads, one per core: a
    # signature running on more threads than half the cores slows every other model. At
    # least two, as heavy requests have a lane of their own (Runner) and one ordinary
    # request, a chain of small recurrent steps, leaves a core idle: on 2 cores under the
    # hostile load of serving_load, protein p99 was 1.7 s with one at a time, 0.7 s with two.
    runner = Runner(threads, options.signature_concurrency or max(2, (os.cpu_count() or 1) // 2))
    batcher = Batcher(options.batch_max_size, options.batch_timeout_ms, runner) if options.batch_max_size > 1 else None
    offload = Offload(processes=1)
    offload.start()
    app = create_app(registry, Limits(options.max_body_bytes, options.max_batch_size, options.request_timeout,
                                      options.max_answer_bytes), batcher, runner, offload)
    stop = threading.Event()
    threading.Thread(target=poll, args=(registry, options.poll_seconds, stop), daemon=True).start()
    # An address clients can use: a wildcard one is reached as localhost here.
    host = options.host
    shown_host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    root = f"http://{shown_host}:{listener.getsockname()[1]}"
    models = ", ".join(f"{name} (version {servable.version})" for name, servable in registry.serving.items())
    announce(f"serving {models} on {shown_host}:{listener.getsockname()[1]} (Ctrl+C stops)")
    for name in registry.serving:
        announce(f"  {name}: status {root}/v1/models/{name}  predict: POST {root}/v1/models/{name}:predict")
    announce(f"  readiness {root}/readyz  metrics {root}/metrics")
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                      http=protocol,
                                      timeout_keep_alive=options.keep_alive_timeout)).run(sockets=[listener])
    finally:
        stop.set()
        offload.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening: connections wait in its backlog
    until uvicorn has started."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as error:
        listener.close()
        raise UserError(f"cannot listen on {host}:{port} ({error.strerror}); choose another port or host")
    return listener
