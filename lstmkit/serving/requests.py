"""Requests and answers in TensorFlow Serving's REST formats: JSON rows or columns
in, tensors to a signature, named outputs back as JSON; every client mistake a
``ServingError`` (400) in TensorFlow Serving's ``{"error": ...}`` shape."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lstmkit.serving.registry import Servable


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

