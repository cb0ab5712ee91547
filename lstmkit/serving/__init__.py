"""TensorFlow Serving's REST API over a ``saved_models/`` tree (``lstmkit serve``).

- ``registry``: the models and versions on disk, loaded, polled and unloaded;
- ``requests``: JSON requests to arrays and tensors and outputs back to JSON, and
  every client error as a 400;
- ``offload``: large bodies and answers read and written in a worker process;
- ``batching``: models run on a thread pool of their own, and concurrent requests
  joined into batches;
- ``app``: the ASGI application (routes, limits, ``/healthz``, ``/readyz``,
  ``/metrics``) and the connection limits;
- ``uvicorn_internals``: uvicorn's protocol with a header deadline and those limits,
  the one module that touches uvicorn's private code (behind a version check);
- ``server``: all of it put together and listening on a socket.
"""

from lstmkit.serving.app import Limits, Metrics, create_app
from lstmkit.serving.batching import Batcher, Runner
from lstmkit.serving.registry import ModelRegistry, Servable, VersionStatus, load_servable, logger, poll
from lstmkit.serving.requests import Prediction, ServingError, answer, parse_predict, read_request, run
from lstmkit.serving.server import ServerOptions, listening_socket, serve
from lstmkit.serving.uvicorn_internals import timed_protocol

__all__ = ["Batcher", "Limits", "Metrics", "ModelRegistry", "Prediction", "Runner", "Servable", "ServerOptions",
           "ServingError", "VersionStatus", "answer", "create_app", "listening_socket", "load_servable", "logger",
           "parse_predict", "poll", "read_request", "run", "serve", "timed_protocol"]
