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
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import re
import threading
import time
from pathlib import Path

logger = logging.getLogger("lstmkit.serving")

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
ROUTE = re.compile(r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<verb>:predict|/metadata)?\Z")
DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """An answer other than 200: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclasses.dataclass
class Servable:
    """One loaded version of a model."""

    version: int
    functions: dict  # signature name -> concrete function
    signature_defs: dict  # signature name -> SignatureDef as TensorFlow Serving's JSON
    batchable: frozenset  # signature names whose rows are independent of each other
    loaded: object  # keeps the SavedModel's variables alive


@dataclasses.dataclass
class VersionStatus:
    version: int
    state: str  # TensorFlow Serving's: LOADING, AVAILABLE, END
    error_code: str = "OK"
    error_message: str = ""
    files: tuple = ()  # what was on disk when loading was tried

    def as_json(self) -> dict:
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}


def version_files(path: Path) -> tuple:
    """A version folder's files with sizes and times: changes while it is being written."""
    try:
        return tuple(sorted((str(file.relative_to(path)), file.stat().st_size, file.stat().st_mtime_ns)
                            for file in path.rglob("*") if file.is_file()))
    except OSError:
        return ()


def load_servable(path: Path, version: int) -> Servable:
    import tensorflow as tf
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    (meta_graph,) = [graph for graph in proto.meta_graphs if "serve" in graph.meta_info_def.tags]
    signature_defs = {name: json_format.MessageToDict(definition, preserving_proto_field_name=True)
                      for name, definition in meta_graph.signature_def.items()}
    loaded = tf.saved_model.load(str(path), tags=["serve"])
    info_file = path / "assets.extra" / "lstmkit.json"
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    batchable = frozenset(name for name, signature in info.get("signatures", {}).items() if signature.get("batchable"))
    return Servable(version, dict(loaded.signatures), signature_defs, batchable, loaded)


class ModelRegistry:
    """What is served, kept in step with the base path by ``refresh``."""

    def __init__(self, base_path: str | Path, loader=load_servable):
        self.base_path = Path(base_path)
        self.loader = loader
        self.lock = threading.Lock()
        self.serving: dict[str, Servable] = {}
        self.statuses: dict[str, dict[int, VersionStatus]] = {}

    def scan(self) -> dict[str, dict[int, Path]]:
        found = {}
        for model in sorted(self.base_path.iterdir()) if self.base_path.is_dir() else []:
            if not model.is_dir() or not MODEL_NAME.match(model.name):
                continue
            versions = {int(path.name): path for path in model.iterdir() if path.name.isdigit() and path.is_dir()}
            # A model is a folder with at least one SavedModel version (not, say, the
            # TensorFlow Lite exports beside them); then every integer folder is a version.
            if any((path / "saved_model.pb").is_file() for path in versions.values()):
                found[model.name] = versions
        return found

    def refresh(self) -> None:
        """Load each model's newest version if it is not the one served and has not
        already failed with the same files."""
        for name, versions in self.scan().items():
            statuses = self.statuses.setdefault(name, {})
            current = self.serving.get(name)
            for version in sorted(versions, reverse=True):
                if current is not None and version <= current.version:
                    break
                files = version_files(versions[version])
                known = statuses.get(version)
                if known is not None and known.state == "END" and known.files == files:
                    continue  # failed before, unchanged since: try an older one
                if self._load(name, version, versions[version], files):
                    break

    def _load(self, name: str, version: int, path: Path, files: tuple) -> bool:
        statuses = self.statuses[name]
        with self.lock:
            statuses[version] = VersionStatus(version, "LOADING", files=files)
        try:
            servable = self.loader(path, version)
        except Exception as error:  # any failure to load is reported, never served
            text = str(error).strip()
            message = f"{error.__class__.__name__}: {text.splitlines()[0] if text else ''}"
            with self.lock:
                statuses[version] = VersionStatus(version, "END", "UNKNOWN", f"failed to load {name} version "
                                                  f"{version}: {message}", files)
            logger.warning("%s version %s failed to load (%s); still serving %s", name, version, message,
                           self.serving[name].version if name in self.serving else "nothing")
            return False
        with self.lock:
            previous = self.serving.get(name)
            self.serving[name] = servable
            statuses[version] = VersionStatus(version, "AVAILABLE", files=files)
            if previous is not None:  # unloaded, as TensorFlow Serving does with older versions
                statuses[previous.version] = VersionStatus(previous.version, "END",
                                                           files=statuses[previous.version].files)
        logger.info("serving %s version %s", name, version)
        return True

    def status(self, name: str, version: str | None) -> dict:
        with self.lock:
            statuses = dict(self.statuses.get(name) or {})
        if not statuses:
            raise ServingError(404, f"Could not find any versions of model {name}")
        if version is None:
            shown = sorted(statuses.values(), key=lambda status: -status.version)
        else:
            shown = [statuses[int(version)]] if version.isdigit() and int(version) in statuses else []
            if not shown:
                raise ServingError(404, f"Could not find version {version} of model {name}")
        return {"model_version_status": [status.as_json() for status in shown]}

    def get(self, name: str, version: str | None) -> Servable:
        with self.lock:
            servable = self.serving.get(name)
        if version is None:
            if servable is None:
                raise ServingError(404, f"Servable not found for request: Latest({name})")
            return servable
        if servable is None or not version.isdigit() or int(version) != servable.version:
            raise ServingError(404, f"Servable not found for request: Specific({name}, {version})")
        return servable


def metadata(name: str, servable: Servable) -> dict:
    return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_defs}}}


# Requests -------------------------------------------------------------------------


def _decode_strings(value):
    """JSON strings as UTF-8 bytes; ``{"b64": ...}`` as the bytes it encodes."""
    if isinstance(value, list):
        return [_decode_strings(item) for item in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ServingError(400, 'a binary value must be {"b64": "<base64 string>"}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise ServingError(400, "a b64 value is not valid base64") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ServingError(400, f"expected a string, got {json.dumps(value)[:40]}")


def _tensor(name: str, value, spec):
    import tensorflow as tf

    if spec.dtype == tf.string:
        value = _decode_strings(value)
    elif _holds_strings(value):
        raise ServingError(400, f"input '{name}' takes {spec.dtype.name} values, not strings")
    try:
        tensor = tf.constant(value, dtype=spec.dtype)
    except (TypeError, ValueError) as error:
        raise ServingError(400, f"input '{name}' cannot be read as {spec.dtype.name} of shape "
                                f"{_shape(spec)}: {str(error).splitlines()[0][:200]}") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise ServingError(400, f"input '{name}' has shape {list(tensor.shape)}; the signature takes {_shape(spec)}")
    return tensor


def _holds_strings(value) -> bool:
    if isinstance(value, list):
        return any(_holds_strings(item) for item in value)
    return isinstance(value, (str, dict))


def _shape(spec) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in spec.shape.as_list()) + "]"


@dataclasses.dataclass
class Prediction:
    """A parsed ``:predict`` request."""

    signature: str
    tensors: dict
    rows: int | None  # the number of instances (row format); None for columnar
    batch: int  # the leading dimension of the batched inputs


def parse_predict(body: bytes, servable: Servable, max_batch_size: int) -> Prediction:
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ServingError(400, f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise ServingError(400, "the request body must be a JSON object")
    signature = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature, str) or signature not in servable.functions:
        raise ServingError(400, f'Serving signature name: "{signature}" not found in signature def '
                                f"(signatures: {', '.join(sorted(servable.functions))})")
    specs = servable.functions[signature].structured_input_signature[1]
    if ("instances" in request) == ("inputs" in request):
        raise ServingError(400, "Missing 'inputs' or 'instances' key" if "inputs" not in request
                           else "Only one of 'inputs' or 'instances' may be given")
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError(400, "'instances' must be a non-empty list")
        if len(instances) > max_batch_size:
            raise ServingError(400, f"{len(instances)} instances; at most {max_batch_size} per request")
        scalar = [name for name, spec in specs.items() if spec.shape.rank == 0]
        if scalar:
            raise ServingError(400, f"signature '{signature}' has scalar inputs ({', '.join(scalar)}); send them "
                                    "in the columnar format ('inputs')")
        columns = _columns_from_rows(instances, specs)
        tensors = {name: _tensor(name, columns[name], spec) for name, spec in specs.items()}
        return Prediction(signature, tensors, len(instances), len(instances))
    inputs = request["inputs"]
    if not isinstance(inputs, dict) or set(inputs) == {"b64"}:  # the one input's value itself
        if len(specs) != 1:
            raise ServingError(400, f"'inputs' must name each input of '{signature}': {', '.join(specs)}")
        inputs = {next(iter(specs)): inputs}
    _check_names(set(inputs), specs, signature)
    tensors = {name: _tensor(name, inputs[name], spec) for name, spec in specs.items()}
    batch = max((int(tensor.shape[0]) for tensor in tensors.values() if tensor.shape.rank), default=1)
    if batch > max_batch_size:
        raise ServingError(400, f"a batch of {batch}; at most {max_batch_size} per request")
    return Prediction(signature, tensors, None, batch)


def _columns_from_rows(instances: list, specs: dict) -> dict:
    if len(specs) == 1:
        (name,) = specs
        if all(isinstance(row, dict) and set(row) == {name} for row in instances):
            return {name: [row[name] for row in instances]}
        if any(isinstance(row, dict) and "b64" not in row for row in instances):
            _check_names(set().union(*(row for row in instances if isinstance(row, dict))), specs, "this signature")
        return {name: instances}
    if not all(isinstance(row, dict) for row in instances):
        raise ServingError(400, f"each instance must be an object with the inputs {', '.join(specs)}")
    for row in instances:
        _check_names(set(row), specs, "this signature")
    return {name: [row[name] for row in instances] for name in specs}


def _check_names(given: set, specs: dict, signature: str) -> None:
    unknown, missing = sorted(given - set(specs)), sorted(set(specs) - given)
    if unknown:
        raise ServingError(400, f"input '{unknown[0]}' is not an input of {signature!s} "
                                f"(its inputs: {', '.join(specs)})")
    if missing:
        raise ServingError(400, f"missing input '{missing[0]}' (inputs: {', '.join(specs)})")


def run(servable: Servable, prediction: Prediction) -> dict:
    """Run the signature; raise ServingError with TensorFlow Serving's codes."""
    import tensorflow as tf

    try:
        return servable.functions[prediction.signature](**prediction.tensors)
    except tf.errors.InvalidArgumentError as error:
        raise ServingError(400, error.message.strip()[:2000]) from None
    except tf.errors.OpError as error:
        raise ServingError(500, error.message.strip()[:2000]) from None


def answer(outputs: dict, prediction: Prediction) -> dict:
    """The response body: ``predictions`` per row, or ``outputs`` per name."""
    values = {name: _json_value(name, tensor.numpy().tolist()) for name, tensor in outputs.items()}
    if prediction.rows is None:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    for name, tensor in outputs.items():
        if tensor.shape.rank == 0 or tensor.shape[0] != prediction.rows:
            raise ServingError(400, f"output '{name}' does not have one row per instance; use the columnar "
                                    "format ('inputs')")
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{name: values[name][row] for name in values} for row in range(prediction.rows)]}


def _json_value(name: str, value):
    if isinstance(value, list):
        return [_json_value(name, item) for item in value]
    if isinstance(value, bytes):
        if not name.endswith("_bytes"):  # TensorFlow Serving's rule for binary outputs
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


# Server-side batching -------------------------------------------------------------


class Batcher:
    """Runs concurrent requests to one signature as one batch: waits up to
    ``timeout_ms`` after the first request for others, up to ``max_size`` rows;
    requests whose inputs differ in shape past the batch dimension run apart."""

    def __init__(self, max_size: int, timeout_ms: float):
        self.max_size, self.timeout = max_size, timeout_ms / 1000
        self.queues: dict[tuple, asyncio.Queue] = {}

    async def run(self, servable: Servable, prediction: Prediction) -> dict:
        batched = all(tensor.shape.rank for tensor in prediction.tensors.values())
        if prediction.signature not in servable.batchable or not batched or prediction.batch >= self.max_size:
            return await asyncio.to_thread(run, servable, prediction)
        key = (id(servable), prediction.signature,
               tuple((name, tuple(tensor.shape[1:])) for name, tensor in sorted(prediction.tensors.items())))
        if key not in self.queues:
            self.queues[key] = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._serve(key, servable))
        done = asyncio.get_running_loop().create_future()
        await self.queues[key].put((prediction, done))
        return await done

    async def _serve(self, key, servable: Servable) -> None:
        queue = self.queues[key]
        while True:
            waiting = [await queue.get()]
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
                results = await asyncio.to_thread(self._run_batch, servable, [item[0] for item in waiting])
            except ServingError:
                # One bad request (e.g. a WAV that does not decode) must not fail the
                # others: run each alone for its own answer.
                results = [await asyncio.to_thread(_outcome, servable, item[0]) for item in waiting]
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


# The ASGI application ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_size: int = 256


def create_app(registry: ModelRegistry, limits: Limits = Limits(), batcher: Batcher | None = None):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise ServingError(413, f"request body of {int(declared):,} bytes; at most {limits.max_body_bytes:,}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body_bytes:
                raise ServingError(413, f"request body over {limits.max_body_bytes:,} bytes")
        return bytes(body)

    async def models(request: Request) -> JSONResponse:
        match = ROUTE.match(request.url.path)
        try:
            if match is None or not MODEL_NAME.match(match["name"]):
                raise ServingError(404, f"Malformed request: {request.method} {request.url.path}")
            name, version, verb = match["name"], match["version"], match["verb"]
            if verb == ":predict":
                if request.method != "POST":
                    raise ServingError(405, f"Malformed request: {request.method} {request.url.path}; use POST")
                servable = registry.get(name, version)
                prediction = await asyncio.to_thread(parse_predict, await read_body(request), servable,
                                                     limits.max_batch_size)
                if batcher is None:
                    outputs = await asyncio.to_thread(run, servable, prediction)
                else:
                    outputs = await batcher.run(servable, prediction)
                return JSONResponse(await asyncio.to_thread(answer, outputs, prediction))
            if request.method != "GET":
                raise ServingError(405, f"Malformed request: {request.method} {request.url.path}; use GET")
            if verb == "/metadata":
                return JSONResponse(metadata(name, registry.get(name, version)))
            return JSONResponse(registry.status(name, version))
        except ServingError as failure:
            return error(failure.status, failure.message)

    return Starlette(routes=[Route("/v1/models/{path:path}", models, methods=["GET", "POST"])],
                     exception_handlers={404: lambda request, exc: error(404, f"Malformed request: "
                                                                              f"{request.method} {request.url.path}"),
                                         405: lambda request, exc: error(405, f"Malformed request: "
                                                                              f"{request.method} {request.url.path}")})


def poll(registry: ModelRegistry, every_s: float, stop: threading.Event) -> None:
    """Refresh ``registry`` every ``every_s`` seconds until ``stop`` is set."""
    while not stop.wait(every_s):
        try:
            registry.refresh()
        except Exception:  # a poller that dies would silently stop new versions
            logger.exception("checking %s for new versions failed; trying again", registry.base_path)
