"""TensorFlow Serving's REST API over a ``saved_models/`` tree (``lstmkit serve``).

- ``registry``: the models and versions on disk, loaded, polled and unloaded;
- ``requests``: JSON requests to tensors and outputs back to JSON, and every client
  error as a 400;
- ``batching``: models run on a thread pool of their own, and concurrent requests
  joined into batches;
- ``app``: the ASGI application (routes, limits, ``/healthz``, ``/readyz``,
  ``/metrics``) and uvicorn's protocol with a header deadline;
- ``server``: all of it put together and listening on a socket.
"""

from lstmkit.serving.app import Limits, Metrics, create_app, timed_protocol
from lstmkit.serving.batching import Batcher, Runner
from lstmkit.serving.registry import ModelRegistry, Servable, VersionStatus, load_servable, logger, poll
from lstmkit.serving.requests import Prediction, ServingError, answer, parse_predict, run
from lstmkit.serving.server import ServerOptions, serve

__all__ = ["Batcher", "Limits", "Metrics", "ModelRegistry", "Prediction", "Runner", "Servable", "ServerOptions",
           "ServingError", "VersionStatus", "answer", "create_app", "load_servable", "logger", "parse_predict",
           "poll", "run", "serve", "timed_protocol"]
