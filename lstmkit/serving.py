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
import base64
import concurrent.futures
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
# TensorFlow Serving's versions are int64: ASCII digits only ("²" is a digit to str.isdigit).
VERSION = re.compile(r"[0-9]{1,18}\Z")
DEFAULT_SIGNATURE = "serving_default"
# Deeper JSON than any input needs (a [batch, time, features] tensor in rows is 4 deep):
# refused before Python's recursion limit turns it into an internal error.
MAX_JSON_DEPTH = 32


class ServingError(Exception):
    """An answer other than 200: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def printable(text: str, most: int = 80) -> str:
    """Client-supplied text for an error message: cut short, and with lone surrogates
    (valid in JSON, not in UTF-8) escaped so the answer can be encoded."""
    text = text if len(text) <= most else text[:most] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_version(version: str | None) -> None:
    if version is not None and not VERSION.match(version):
        raise ServingError(400, f"Failed to convert version: {printable(version, 20)} to numeric.")


@dataclasses.dataclass
class Servable:
    """One loaded version of a model."""

    version: int
    functions: dict  # signature name -> concrete function
    signature_defs: dict  # signature name -> SignatureDef as TensorFlow Serving's JSON
    batchable: frozenset  # signature names whose rows are independent of each other
    loaded: object  # keeps the SavedModel's variables alive
    max_lengths: dict = dataclasses.field(default_factory=dict)  # signature -> {input: (most, unit)}


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
    signatures = info.get("signatures", {})
    batchable = frozenset(name for name, signature in signatures.items() if signature.get("batchable"))
    max_lengths = {name: {input_name: tuple(limit) for input_name, limit in signature.get("max_lengths", {}).items()}
                   for name, signature in signatures.items()}
    return Servable(version, dict(loaded.signatures), signature_defs, batchable, loaded, max_lengths)


def without_paths(message: str, folder: Path, shown_as: str) -> str:
    """``message`` with ``folder`` (and any other absolute path) replaced: clients
    learn what failed, not where the server keeps its files."""
    for form in {str(folder), str(folder.resolve())}:
        message = message.replace(form, shown_as)
    return re.sub(r"(?<![\w.])/[^\s'\"]+", "<path>", message)


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
        already failed with the same files; unload a version whose folder was removed
        or replaced (then serve the newest one left that loads, as TensorFlow Serving does)."""
        found = self.scan()
        for name in set(self.serving) - set(found):  # the whole model folder is gone
            self._unload(name, "its folder was removed")
        with self.lock:  # versions that failed to load and are gone are forgotten
            for name, statuses in self.statuses.items():
                for version in [version for version, status in statuses.items()
                                if status.error_code != "OK" and version not in found.get(name, {})]:
                    del statuses[version]
        for name, versions in found.items():
            statuses = self.statuses.setdefault(name, {})
            current = self.serving.get(name)
            if current is not None and (current.version not in versions
                                        or version_files(versions[current.version]) != statuses[current.version].files):
                # Removed, or replaced by another export with the same number: what is in
                # memory is no longer what is on disk.
                self._unload(name, "its version folder was removed or replaced")
                current = None
            for version in sorted(versions, reverse=True):
                if current is not None and version <= current.version:
                    break
                files = version_files(versions[version])
                known = statuses.get(version)
                if known is not None and known.state == "END" and known.files == files:
                    continue  # failed before, unchanged since: try an older one
                if self._load(name, version, versions[version], files):
                    break

    def _unload(self, name: str, reason: str) -> None:
        with self.lock:
            servable = self.serving.pop(name)
            statuses = self.statuses.setdefault(name, {})
            statuses[servable.version] = VersionStatus(servable.version, "END")
        logger.info("unloaded %s version %s: %s", name, servable.version, reason)

    def _load(self, name: str, version: int, path: Path, files: tuple) -> bool:
        statuses = self.statuses[name]
        with self.lock:
            statuses[version] = VersionStatus(version, "LOADING", files=files)
        try:
            servable = self.loader(path, version)
        except Exception as error:  # any failure to load is reported, never served
            text = str(error).strip()
            message = f"{error.__class__.__name__}: {text.splitlines()[0] if text else ''}"
            shown = without_paths(message, path, f"{name}/{version}")
            with self.lock:
                statuses[version] = VersionStatus(version, "END", "UNKNOWN", f"failed to load {name} version "
                                                  f"{version}: {shown}", files)
            logger.warning("%s version %s failed to load (%s); still serving %s", name, version, message,
                           self.serving[name].version if name in self.serving else "nothing")
            return False
        with self.lock:
            previous = self.serving.get(name)
            self.serving[name] = servable
            statuses[version] = VersionStatus(version, "AVAILABLE", files=files)
            if previous is not None:  # unloaded, as TensorFlow Serving does with older versions
                # No files recorded: loaded again if the newer one goes away.
                statuses[previous.version] = VersionStatus(previous.version, "END")
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
            check_version(version)
            shown = [statuses[int(version)]] if int(version) in statuses else []
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
        check_version(version)
        if servable is None or int(version) != servable.version:
            raise ServingError(404, f"Servable not found for request: Specific({name}, {version})")
        return servable


def metadata(name: str, servable: Servable) -> dict:
    return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": {"signature_def": servable.signature_defs}}}


# Requests -------------------------------------------------------------------------


def _too_deep() -> ServingError:
    return ServingError(400, f"JSON nested more than {MAX_JSON_DEPTH} deep; no input of these models needs that")


def _decode_strings(value, depth: int = 0):
    """JSON strings as UTF-8 bytes; ``{"b64": ...}`` as the bytes it encodes."""
    if isinstance(value, list):
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        return [_decode_strings(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ServingError(400, 'a binary value must be {"b64": "<base64 string>"}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise ServingError(400, "a b64 value is not valid base64") from None
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:  # JSON allows lone surrogates ("\ud800"); UTF-8 does not
            raise ServingError(400, f"the string '{printable(value, 40)}' is not valid Unicode (a lone "
                                    "surrogate); send text as UTF-8, or binary data as {\"b64\": ...}") from None
    raise ServingError(400, f"expected a string, got {printable(json.dumps(value), 40)}")


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


def _holds_strings(value, depth: int = 0) -> bool:
    if isinstance(value, list):
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        return any(_holds_strings(item, depth + 1) for item in value)
    return isinstance(value, (str, dict))


def _check_lengths(tensors: dict, max_lengths: dict) -> None:
    """The export's input length limits (the graph checks them too), before the model runs."""
    import tensorflow as tf

    for name, (most, unit) in max_lengths.items():
        tensor = tensors.get(name)
        if tensor is None or (tensor.dtype != tf.string and tensor.shape.rank < 2):
            continue
        if tensor.dtype == tf.string:
            length = int(tf.reduce_max(tf.strings.length(tensor, unit="UTF8_CHAR"))) if tf.size(tensor) else 0
        else:
            length = int(tensor.shape[1])
        if length > most:
            raise ServingError(400, f"input '{name}' has a row of {length:,} {unit}; at most {most:,} {unit} "
                                    "per row are accepted")


def _refuse_constant(name: str):
    raise ServingError(400, f"{name} is not a number; send finite numbers")


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
        request = json.loads(body, parse_constant=_refuse_constant)
    except ValueError as error:  # not JSON, not UTF-8, or an integer of more than 4,300 digits
        raise ServingError(400, f"JSON Parse error: {printable(str(error), 200)}") from None
    except RecursionError:
        raise _too_deep() from None
    if not isinstance(request, dict):
        raise ServingError(400, "the request body must be a JSON object")
    signature = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature, str) or signature not in servable.functions:
        shown = printable(signature if isinstance(signature, str) else json.dumps(signature)[:80])
        raise ServingError(400, f'Serving signature name: "{shown}" not found in signature def '
                                f"(signatures: {', '.join(sorted(servable.functions))})")
    prediction = _parse_inputs(request, signature, servable, max_batch_size)
    _check_lengths(prediction.tensors, servable.max_lengths.get(signature, {}))
    return prediction


def _parse_inputs(request: dict, signature: str, servable: Servable, max_batch_size: int) -> Prediction:
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
        raise ServingError(400, f"input '{printable(unknown[0])}' is not an input of {signature!s} "
                                f"(its inputs: {', '.join(specs)})")
    if missing:
        raise ServingError(400, f"missing input '{missing[0]}' (inputs: {', '.join(specs)})")


def run(servable: Servable, prediction: Prediction) -> dict:
    """Run the signature; raise ServingError with TensorFlow Serving's codes."""
    import tensorflow as tf

    try:
        return servable.functions[prediction.signature](**prediction.tensors)
    except tf.errors.InvalidArgumentError as error:
        raise ServingError(400, _op_message(error)) from None
    except tf.errors.ResourceExhaustedError as error:  # too big for memory: the request, not the server
        raise ServingError(400, f"the request needs more memory than the server has ({_op_message(error)})") \
            from None
    except tf.errors.OpError as error:
        raise ServingError(500, _op_message(error)) from None


def _op_message(error) -> str:
    """What a TensorFlow error says, in one line: a ``tf.debugging.Assert``'s own
    message, or the first line that is not the graph's framing (node names, traces)."""
    text = error.message or ""
    assertion = re.search(r"assertion failed: \[(.*?)\]\s*(?:\n|$)", text)
    if assertion:
        return assertion[1][:500]
    framing = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(framing)]
    line = lines[0] if lines else error.__class__.__name__
    return re.sub(r"\s*\[\[\{\{node .*|\s*\[Op:.*", "", line)[:500]


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


# Running models ----------------------------------------------------------------------


class Runner:
    """Runs signatures on ``threads`` threads of their own, at most ``per_signature``
    at once for any one model signature: requests past that wait their turn, so one
    slow signature (eight ``generate`` calls of 100,000 characters) cannot hold every
    thread while other models' requests wait."""

    def __init__(self, threads: int, per_signature: int):
        self.executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="lstmkit-model")
        self.per_signature = per_signature
        self.slots: dict[tuple, asyncio.Semaphore] = {}  # (model, signature) -> its turns

    async def __call__(self, key: tuple, function, *arguments):
        slots = self.slots.setdefault(key, asyncio.Semaphore(self.per_signature))
        async with slots:
            return await asyncio.get_running_loop().run_in_executor(self.executor, function, *arguments)


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

    async def run(self, servable: Servable, prediction: Prediction, model: str = "") -> dict:
        batched = all(tensor.shape.rank for tensor in prediction.tensors.values())
        slot = (model, prediction.signature)
        if prediction.signature not in servable.batchable or not batched or prediction.batch >= self.max_size:
            return await self.runner(slot, run, servable, prediction)
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

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
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


def poll(registry: ModelRegistry, every_s: float, stop: threading.Event) -> None:
    """Refresh ``registry`` every ``every_s`` seconds until ``stop`` is set."""
    while not stop.wait(every_s):
        try:
            registry.refresh()
        except Exception:  # a poller that dies would silently stop new versions
            logger.exception("checking %s for new versions failed; trying again", registry.base_path)
