"""Reading :predict bodies without TensorFlow, and the size and finiteness of answers."""

import json

import numpy as np
import pytest
import tensorflow as tf

from lstmkit.serving import requests
from lstmkit.serving.requests import Request, ServingError, Spec

HISTORY = {"serving_default": {"history": Spec("float32", (None, None, 1))}}
GENERATE = {"generate": {"prompt": Spec("string", (None,)), "length": Spec("int32", ())}}


def refused(body, signatures=HISTORY):
    with pytest.raises(ServingError) as raised:
        requests.read_request(body if isinstance(body, bytes) else json.dumps(body).encode(), signatures, 16)
    return raised.value.message


def test_numbers_are_read_into_arrays_of_the_signatures_dtype():
    request = requests.read_request(b'{"instances": [[[1], [2.5]]]}', HISTORY, 16)
    assert request.arrays["history"].dtype == np.float32 and request.arrays["history"].shape == (1, 2, 1)
    request = requests.read_request(b'{"signature_name": "generate", "inputs": {"prompt": ["a", "bc"], "length": 3}}',
                                    GENERATE, 16)
    assert request.arrays["prompt"].tolist() == [b"a", b"bc"] and request.arrays["length"].dtype == np.int32


@pytest.mark.parametrize("body, message", [
    (b'{"instances": [[[1e999]]]}', "not finite"),  # JSON's 1e999 is infinity once parsed
    (b'{"instances": [[[4e38]]]}', "past float32's largest value"),
    (b'{"instances": [[[1], [2, 3]]]}', "rows differ in length"),
    (b'{"instances": [[["a"]]]}', "not strings"),
    (b'{"instances": [[[NaN]]]}', "NaN is not a number"),
])
def test_numbers_that_the_model_cannot_take_are_refused(body, message):
    assert message in refused(body)


@pytest.mark.parametrize("inputs, message", [
    ({"prompt": ["a"], "length": 10**30}, "out-of-range integer"),
    ({"prompt": ["a"], "length": 1.5}, "takes integers"),
    ({"prompt": [["a"], ["b", "c"]], "length": 1}, "rows differ in length"),
])
def test_integers_and_strings_that_do_not_fit_are_refused(inputs, message):
    assert message in refused({"signature_name": "generate", "inputs": inputs}, GENERATE)


def test_an_answer_is_estimated_from_the_output_shapes_before_the_model_runs():
    chains = np.array([b"M" * 10_000] * 256, dtype=object)
    outputs = {"probabilities": Spec("float32", (None, None, 3)), "structure": Spec("string", (None,)),
               "length": Spec("int32", (None,))}
    expected = requests.expected_answer_bytes(Request("serving_default", {"sequence": chains}, 256, 256), outputs)
    # 256 chains × 10,000 residues × 3 probabilities of about 20 bytes each.
    assert 150e6 < expected < 170e6
    error = requests.answer_too_large(expected, 16 * 2**20, 256)
    assert error.status == 400 and "at most 27 rows" in error.message


def test_an_answer_past_the_budget_is_refused_and_one_within_it_written():
    arrays = {"scores": np.full((4, 1000), 0.123456789, np.float32)}
    body = requests.render_answer(arrays, 4, 4, 200_000)
    assert json.loads(body)["predictions"][0][0] == pytest.approx(0.123456789)
    with pytest.raises(ServingError, match="split it into requests of at most 1 rows"):
        requests.render_answer(arrays, 4, 4, len(body) // 3)


def test_a_non_finite_output_is_never_an_answer():
    with pytest.raises(ServingError, match="output 'forecast' is not a finite number"):
        requests.output_arrays({"forecast": tf.constant([[1.0, float("nan")]]), "label": tf.constant(["a"])})
    assert requests.output_arrays({"forecast": tf.constant([[1.0]])})["forecast"].tolist() == [[1.0]]


def test_a_graph_assertion_is_shown_as_written_without_its_escapes():
    # TensorFlow escapes quotes in an Assert's message ("export\'s"); exports before
    # 2026-12-07 had one in their generate limit.
    error = tf.errors.InvalidArgumentError(None, None, "Graph execution error:\n\nassertion failed: [length must be "
                                           "<= 2,000 (this export\\'s most)]\n\t [[{{node Assert_2/Assert}}]]")
    assert requests._op_message(error) == "length must be <= 2,000 (this export's most)"
