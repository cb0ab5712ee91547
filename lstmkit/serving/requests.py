"""Requests and answers in TensorFlow Serving's REST formats: JSON rows or columns
in, arrays to a signature, named outputs back as JSON; every client mistake a
``ServingError`` (400) in TensorFlow Serving's ``{"error": ...}`` shape.

Reading a body (``read_request``) and writing an answer (``render_answer``) use only
the standard library and numpy, never TensorFlow: the server runs them in a process of
their own for large bodies and answers (``lstmkit.serving.offload``)."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from typing import Protocol


# TensorFlow Serving's versions are int64: ASCII digits only ("²" is a digit to str.isdigit).
VERSION = re.compile(r"[0-9]{1,18}\Z")
DEFAULT_SIGNATURE = "serving_default"
# Deeper JSON than any input needs (a [batch, time, features] tensor in rows is 4 deep):
# refused before Python's recursion limit turns it into an internal error.
MAX_JSON_DEPTH = 32
# The largest finite float32: a larger JSON number would become infinity in the model.
FLOAT32_MAX = 3.4028234663852886e38
# About how many bytes one value takes in a JSON answer ("0.36662617325782776," for a
# float, which Python writes with up to 17 digits), to tell an answer's size before it is
# written. Strings are counted by their length.
JSON_BYTES_PER_VALUE = {"f": 20, "i": 8, "u": 8, "b": 6, "O": 8}


class ServingError(Exception):
    """An answer other than 200: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def __reduce__(self):  # raised in a worker process, raised again in the server's
        return ServingError, (self.status, self.message)


def printable(text: str, most: int = 80) -> str:
    """Client-supplied text for an error message: cut short, and with lone surrogates
    (valid in JSON, not in UTF-8) escaped so the answer can be encoded."""
    text = text if len(text) <= most else text[:most] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_version(version: str | None) -> None:
    if version is not None and not VERSION.match(version):
        raise ServingError(400, f"Failed to convert version: {printable(version, 20)} to numeric.")


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


@dataclasses.dataclass(frozen=True)
class Spec:
    """A signature's input or output as plain values, so that reading a request needs no
    TensorFlow: the dtype's name (``float32``, ``string``...) and the dimensions (None
    where any size goes; ``shape`` None for any rank)."""

    dtype: str
    shape: tuple | None

    @classmethod
    def of(cls, spec) -> Spec:
        return cls(spec.dtype.name, None if spec.shape.rank is None else tuple(spec.shape.as_list()))

    def shown(self) -> str:
        return "any shape" if self.shape is None else \
            "[" + ", ".join("?" if dim is None else str(dim) for dim in self.shape) + "]"

    def fits(self, shape: tuple) -> bool:
        return self.shape is None or (len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape)))


class Signatures(Protocol):
    """What reading, checking and running a request needs of a loaded model version
    (``lstmkit.serving.registry.Servable`` is one; this module never imports the
    registry, which imports it)."""

    functions: dict  # signature name -> concrete function
    inputs: dict  # signature name -> {input name: Spec}
    outputs: dict  # signature name -> {output name: Spec}
    max_lengths: dict  # signature name -> {input name: (most, unit)}


@dataclasses.dataclass
class Request:
    """A ``:predict`` body read into numpy arrays (strings as object arrays of bytes)."""

    signature: str
    arrays: dict
    rows: int | None  # the number of instances (row format); None for columnar
    batch: int  # the leading dimension of the batched inputs


def _array(name: str, value, spec: Spec):
    """``value`` (JSON) as the numpy array the signature's input takes, or a 400."""
    array = _strings(name, value, spec) if spec.dtype == "string" else _numbers(name, value, spec)
    if not spec.fits(array.shape):
        raise ServingError(400, f"input '{name}' has shape {list(array.shape)}; the signature takes {spec.shown()}")
    return array


def _strings(name: str, value, spec: Spec):
    import numpy as np

    decoded = _decode_strings(value)
    try:
        array = np.array(decoded, dtype=object)
    except ValueError:
        array = None
    if array is None or not all(isinstance(item, bytes) for item in array.flat):  # rows of unequal lengths
        raise ServingError(400, f"input '{name}' cannot be read as string of shape {spec.shown()}: its rows "
                                "differ in length")
    return array


def _numbers(name: str, value, spec: Spec):
    import numpy as np

    cannot = f"input '{name}' cannot be read as {spec.dtype} of shape {spec.shown()}"
    try:
        array = np.asarray(value)
    except ValueError:
        raise ServingError(400, f"{cannot}: its rows differ in length") from None
    except RecursionError:  # numpy looks as deep as the lists go
        raise _too_deep() from None
    if array.dtype.kind in "US" or (array.dtype == object and any(isinstance(item, (str, dict))
                                                                   for item in array.flat)):
        raise ServingError(400, f"input '{name}' takes {spec.dtype} values, not strings")
    if array.dtype == object and any(isinstance(item, int) for item in array.flat):  # past int64
        raise ServingError(400, f"{cannot}: it holds an out-of-range integer")
    if array.dtype.kind not in "biuf":
        raise ServingError(400, cannot)
    target = np.dtype(spec.dtype)
    if target.kind == "f":
        values = array.astype(np.float64)
        if not np.isfinite(values).all():  # 1e999 reads as infinity; NaN is refused while parsing
            raise ServingError(400, f"input '{name}' holds a number that is not finite (JSON numbers past "
                                    f"{np.finfo(np.float64).max:.4g} read as infinity); send finite numbers")
        largest, most = (float(np.abs(values).max()) if values.size else 0.0), float(np.finfo(target).max)
        if largest > most:
            raise ServingError(400, f"input '{name}' holds {largest:.4g}, past {spec.dtype}'s largest value "
                                    f"({most:.4g}); send smaller numbers")
        return values.astype(target)
    if target.kind in "iu":
        if array.dtype.kind == "f":
            raise ServingError(400, f"{cannot}: it takes integers")
        if array.size and (array.min() < np.iinfo(target).min or array.max() > np.iinfo(target).max):
            raise ServingError(400, f"{cannot}: it holds an out-of-range integer")
        return array.astype(target)
    if target.kind == "b" and array.dtype.kind == "b":
        return array
    raise ServingError(400, cannot)


def _refuse_constant(name: str):
    raise ServingError(400, f"{name} is not a number; send finite numbers")


def read_request(body: bytes, signatures: dict, max_batch_size: int) -> Request:
    """The body of a ``:predict`` request as arrays; ``signatures`` maps each signature
    name to its inputs' ``Spec``s."""
    try:
        request = json.loads(body, parse_constant=_refuse_constant)
    except ValueError as error:  # not JSON, not UTF-8, or an integer of more than 4,300 digits
        raise ServingError(400, f"JSON Parse error: {printable(str(error), 200)}") from None
    except RecursionError:
        raise _too_deep() from None
    if not isinstance(request, dict):
        raise ServingError(400, "the request body must be a JSON object")
    signature = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature, str) or signature not in signatures:
        shown = printable(signature if isinstance(signature, str) else json.dumps(signature)[:80])
        raise ServingError(400, f'Serving signature name: "{shown}" not found in signature def '
                                f"(signatures: {', '.join(sorted(signatures))})")
    return _read_inputs(request, signature, signatures[signature], max_batch_size)


def _read_inputs(request: dict, signature: str, specs: dict, max_batch_size: int) -> Request:
    if ("instances" in request) == ("inputs" in request):
        raise ServingError(400, "Missing 'inputs' or 'instances' key" if "inputs" not in request
                           else "Only one of 'inputs' or 'instances' may be given")
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError(400, "'instances' must be a non-empty list")
        if len(instances) > max_batch_size:
            raise ServingError(400, f"{len(instances)} instances; at most {max_batch_size} per request")
        scalar = [name for name, spec in specs.items() if spec.shape == ()]
        if scalar:
            raise ServingError(400, f"signature '{signature}' has scalar inputs ({', '.join(scalar)}); send them "
                                    "in the columnar format ('inputs')")
        columns = _columns_from_rows(instances, specs)
        arrays = {name: _array(name, columns[name], spec) for name, spec in specs.items()}
        return Request(signature, arrays, len(instances), len(instances))
    inputs = request["inputs"]
    if not isinstance(inputs, dict) or set(inputs) == {"b64"}:  # the one input's value itself
        if len(specs) != 1:
            raise ServingError(400, f"'inputs' must name each input of '{signature}': {', '.join(specs)}")
        inputs = {next(iter(specs)): inputs}
    _check_names(set(inputs), specs, signature)
    arrays = {name: _array(name, inputs[name], spec) for name, spec in specs.items()}
    batch = max((array.shape[0] for array in arrays.values() if array.ndim), default=1)
    if batch > max_batch_size:
        raise ServingError(400, f"a batch of {batch}; at most {max_batch_size} per request")
    return Request(signature, arrays, None, batch)


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


# Tensors --------------------------------------------------------------------------


@dataclasses.dataclass
class Prediction:
    """A ``:predict`` request ready to run: its inputs as tensors."""

    signature: str
    tensors: dict
    rows: int | None  # the number of instances (row format); None for columnar
    batch: int  # the leading dimension of the batched inputs


def to_prediction(request: Request, servable: Signatures, max_answer_bytes: int | None = None) -> Prediction:
    """``request``'s arrays as tensors, after the export's length limits and, when the
    signature's outputs say how large its answer will be, the answer's size limit."""
    import tensorflow as tf

    tensors = {name: tf.constant(array, dtype=tf.as_dtype(servable.inputs[request.signature][name].dtype))
               for name, array in request.arrays.items()}
    _check_lengths(tensors, servable.max_lengths.get(request.signature, {}))
    if max_answer_bytes is not None:
        expected = expected_answer_bytes(request, servable.outputs.get(request.signature, {}))
        if expected > max_answer_bytes:
            raise answer_too_large(expected, max_answer_bytes, request.batch)
    return Prediction(request.signature, tensors, request.rows, request.batch)


def parse_predict(body: bytes, servable: Signatures, max_batch_size: int) -> Prediction:
    return to_prediction(read_request(body, servable.inputs, max_batch_size), servable)


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


# The size of an answer ----------------------------------------------------------------


def expected_answer_bytes(request: Request, outputs: dict) -> int:
    """About how many bytes the answer to ``request`` will take, from the signature's
    output shapes: the batch in the first dimension, and in any other dimension of
    unknown size the longest row of the inputs (outputs per residue, per step...)."""
    longest = 1
    for array in request.arrays.values():
        if array.dtype == object and array.size:
            longest = max(longest, max(len(item) for item in array.flat))
        elif array.ndim >= 2:
            longest = max(longest, array.shape[1])
    total = 0
    for spec in outputs.values():
        if spec.shape is None:
            continue
        dims = [request.batch if index == 0 and dim is None else (longest if dim is None else dim)
                for index, dim in enumerate(spec.shape)]
        kind = "O" if spec.dtype == "string" else ("b" if spec.dtype == "bool" else spec.dtype[0])
        total += math.prod(dims) * JSON_BYTES_PER_VALUE.get(kind, 20)
    return total


def answer_bytes(arrays: dict) -> int:
    """About how many bytes a JSON answer of ``arrays`` takes (strings by their length)."""
    total = 0
    for array in arrays.values():
        if array.dtype == object:
            total += sum(len(item) + 3 for item in array.flat)
        else:
            total += array.size * JSON_BYTES_PER_VALUE.get(array.dtype.kind, 20)
    return total


def answer_too_large(size: int, most: int, rows: int) -> ServingError:
    fit = max(1, rows * most // max(size, 1))
    return ServingError(400, f"the answer to this request would take about {size / 2**20:,.1f} MiB; at most "
                             f"{most / 2**20:,.1f} MiB per answer: split it into requests of at most {fit:,} "
                             f"rows like these (the server's --max-answer-bytes)")


def run(servable: Signatures, prediction: Prediction) -> dict:
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
    if assertion:  # the message as the graph prints it, with its quotes escaped
        return assertion[1].replace("\\'", "'").replace('\\"', '"')[:500]
    framing = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(framing)]
    line = lines[0] if lines else error.__class__.__name__
    return re.sub(r"\s*\[\[\{\{node .*|\s*\[Op:.*", "", line)[:500]


NOT_FINITE_OUTPUT = ("the model's output '{}' is not a finite number for this input (its values are likely too "
                     "large for float32 arithmetic); send values of a smaller magnitude")


def output_arrays(outputs: dict) -> dict:
    """The signature's outputs as numpy arrays. A NaN or infinity is never answered as a
    result (exports check their outputs in the graph; older ones are checked here)."""
    import numpy as np

    arrays = {name: tensor.numpy() for name, tensor in outputs.items()}
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ServingError(400, NOT_FINITE_OUTPUT.format(name))
    return arrays


def answer_content(arrays: dict, rows: int | None) -> dict:
    """The response body: ``predictions`` per row, or ``outputs`` per name."""
    values = {name: _json_value(name, array.tolist()) for name, array in arrays.items()}
    if rows is None:
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    for name, array in arrays.items():
        if array.ndim == 0 or array.shape[0] != rows:
            raise ServingError(400, f"output '{name}' does not have one row per instance; use the columnar "
                                    "format ('inputs')")
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{name: values[name][row] for name in values} for row in range(rows)]}


def render_answer(arrays: dict, rows: int | None, batch: int, max_bytes: int | None = None) -> bytes:
    """The response body as UTF-8 JSON bytes, refused past ``max_bytes``."""
    body = json.dumps(answer_content(arrays, rows), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if max_bytes is not None and len(body) > max_bytes:
        raise answer_too_large(len(body), max_bytes, batch)
    return body


def answer(outputs: dict, prediction: Prediction) -> dict:
    return answer_content(output_arrays(outputs), prediction.rows)


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

