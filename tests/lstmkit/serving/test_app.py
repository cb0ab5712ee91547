"""cli.py serve: TensorFlow Serving's REST API over every task's export, on a free
loopback port: answers equal the in-memory models', status and metadata, bad requests,
new, broken, removed and replaced versions on disk, server-side batching, and hostile
requests and connections (each a 400 or a closed connection, never a crash or a 500)."""

import asyncio
import base64
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from lstmkit import serving
from lstmkit.training.strategy import free_loopback_ports
from tests.conftest import ROOT


class Server:
    def __init__(self, base_path, *options):
        (self.port,) = free_loopback_ports(1)
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "serve", "--model-base-path", str(base_path),
             "--port", str(self.port), *options],
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.output = []
        ready = threading.Event()

        def read():
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith("serving "):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(180) and self.process.poll() is None, "".join(self.output)[-3000:]

    def request(self, path, body=None, method=None, raw=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


@pytest.fixture(scope="module")
def server(exports):
    running = Server(exports, "--max-body-bytes", str(1024 * 1024), "--max-batch-size", "64")
    yield running
    running.stop()


def clip(speech_slice):
    path = sorted(speech_slice.rglob("*.wav"))[0]
    return path.read_bytes()


def requests_for(task_name, speech_slice):
    """(signature, request body, the same inputs as tensors) for each task."""
    if task_name == "sentiment":
        texts = ["a gripping, funny film", "dull and far too long"]
        return [("serving_default", {"instances": texts}, {"text": tf.constant(texts)})]
    if task_name == "speech_commands":
        wav = clip(speech_slice)
        waveform = tf.audio.decode_wav(wav)[0][:, 0][None]
        return [("serving_default", {"inputs": {"waveform": waveform.numpy().tolist()}}, {"waveform": waveform}),
                ("wav_bytes", {"signature_name": "wav_bytes",
                               "instances": [{"b64": base64.b64encode(wav).decode()}] * 2},
                 {"wav": tf.constant([wav, wav])})]
    if task_name == "protein_ss":
        chains = ["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLE"]
        return [("serving_default", {"instances": [{"sequence": chain} for chain in chains]},
                 {"sequence": tf.constant(chains)})]
    if task_name == "forecasting":
        # Two histories of El Nino-like temperatures, longer than the tiny run's 24-step context.
        steps = np.arange(30)
        histories = np.stack([24 + 2 * np.sin(2 * np.pi * (steps + shift) / 12) for shift in (0, 3)])[..., None]
        return [("serving_default", {"instances": histories.tolist()},
                 {"history": tf.constant(histories, tf.float32)})]
    prompt = {"prompt": tf.constant(["ROMEO:"]), "length": tf.constant(12), "temperature": tf.constant(0.0),
              "seed": tf.constant(1, tf.int64)}
    return [("serving_default", {"instances": ["ROMEO:", "To be"]}, {"text": tf.constant(["ROMEO:", "To be"])}),
            ("generate", {"signature_name": "generate",
                          "inputs": {"prompt": ["ROMEO:"], "length": 12, "temperature": 0.0, "seed": 1}}, prompt)]


def as_rows(outputs, rows):
    return [{name: value[row] for name, value in outputs.items()} for row in range(rows)]


def assert_same(served, expected):
    if isinstance(expected, bytes):
        assert served == expected.decode()
    elif isinstance(expected, (list, np.ndarray)) and len(expected) and isinstance(np.asarray(expected).flat[0], bytes):
        assert served == [item.decode() if isinstance(item, bytes) else item for item in np.asarray(expected).tolist()]
    else:
        np.testing.assert_allclose(np.asarray(served, np.float64), np.asarray(expected, np.float64), atol=1e-5)


@pytest.mark.parametrize("task_name", ["sentiment", "speech_commands", "protein_ss", "textgen", "forecasting"])
@pytest.mark.slow
def test_predict_answers_equal_the_in_memory_models(server, task_name, speech_slice, request, exports):
    from lstmkit.registry import get_task
    from lstmkit.run import Run

    task = get_task(task_name)
    run_dir = request.getfixturevalue({"sentiment": "tiny_run", "speech_commands": "speech_run",
                                       "protein_ss": "protein_run", "textgen": "textgen_run",
                                       "forecasting": "forecasting_run"}[task_name])
    run = Run.from_folder(task, run_dir)
    model = run.model
    signatures = run.task.serving_signatures()
    for signature, body, tensors in requests_for(task_name, speech_slice):
        expected = {name: value.numpy() for name, value in signatures[signature].build_fn(model)(**tensors).items()}
        status, answer = server.request(f"/v1/models/{task_name}:predict", body)
        assert status == 200, answer
        if "instances" in body:
            rows = len(body["instances"])
            predictions = answer["predictions"]
            for served, wanted in zip(predictions, as_rows(expected, rows)):
                for name in wanted:
                    assert_same(served[name], wanted[name])
        else:
            outputs = answer["outputs"]
            outputs = outputs if isinstance(outputs, dict) else {next(iter(expected)): outputs}
            for name in expected:
                assert_same(outputs[name], expected[name])


@pytest.mark.slow
def test_status_and_metadata_follow_tensorflow_serving(server):
    assert server.request("/v1/models/sentiment") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    assert server.request("/v1/models/sentiment/versions/1")[0] == 200
    status, answer = server.request("/v1/models/speech_commands/metadata")
    assert status == 200 and answer["model_spec"] == {"name": "speech_commands", "signature_name": "", "version": "1"}
    definitions = answer["metadata"]["signature_def"]["signature_def"]
    assert definitions["wav_bytes"]["inputs"]["wav"]["dtype"] == "DT_STRING"
    assert definitions["serving_default"]["method_name"] == "tensorflow/serving/predict"
    assert set(definitions["serving_default"]["outputs"]) == {"probabilities", "label"}


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/models/sentiment:predict", b"{not json", 400, "JSON Parse error"),
    ("/v1/models/sentiment:predict", {"inputs": {"review": ["good"]}}, 400, "input 'review' is not an input"),
    ("/v1/models/sentiment:predict", {"instances": [1, 2]}, 400, "expected a string"),
    ("/v1/models/protein_ss:predict", {"instances": [{"sequence": "MKT", "extra": 1}]}, 400, "input 'extra'"),
    ("/v1/models/speech_commands:predict", {"inputs": {"waveform": [["loud"]]}}, 400, "not strings"),
    ("/v1/models/speech_commands:predict", {"inputs": {"waveform": [[0.1, 0.2], [0.3]]}}, 400, "cannot be read"),
    ("/v1/models/speech_commands:predict", {"signature_name": "wav_bytes", "instances": [{"b64": "bm90IGEgd2F2"}]},
     400, "RIFF"),
    ("/v1/models/sentiment:predict", {"signature_name": "nope", "instances": ["good"]}, 400, 'name: "nope" not found'),
    ("/v1/models/sentiment:predict", {"instances": ["good"] * 65}, 400, "at most 64 per request"),
    ("/v1/models/sentiment:predict", {"instances": ["x" * 1024] * 1100}, 413, "at most 1,048,576"),
    ("/v1/models/textgen:predict", {"signature_name": "generate", "instances": [{"prompt": "A"}]}, 400, "columnar"),
    ("/v1/models/textgen:predict", {"signature_name": "generate", "inputs": {
        "prompt": ["A"], "length": 0, "temperature": 0.0, "seed": 1}}, 400, "length must be >= 1"),
    ("/v1/models/nosuch:predict", {"instances": ["good"]}, 404, "Servable not found for request: Latest(nosuch)"),
    ("/v1/models/sentiment/versions/7:predict", {"instances": ["good"]}, 404, "Specific(sentiment, 7)"),
    ("/v1/models/sentiment/versions/7", None, 404, "Could not find version 7"),
    ("/v1/models/..%2F..%2Fetc/metadata", None, 404, "Malformed request"),
    ("/v1/models/sentiment:predict", None, 405, "use POST"),
])
@pytest.mark.slow
def test_bad_requests_get_tensorflow_serving_errors_and_the_server_keeps_serving(server, path, body, status,
                                                                                 message):
    raw = body if isinstance(body, bytes) else None
    got, answer = server.request(path, None if raw else body, raw=raw,
                                 method="POST" if body is not None else "GET")
    assert got == status and message in answer["error"], answer
    assert server.request("/v1/models/sentiment:predict", {"instances": ["still here"]})[0] == 200


def wav_file(rate, samples):
    """A mono 16-bit PCM WAV whose header says ``rate`` Hz."""
    pcm = b"\x00\x01" * samples
    header = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + header
            + b"data" + struct.pack("<I", len(pcm)) + pcm)


def wav_request(wav):
    return {"signature_name": "wav_bytes", "instances": [{"b64": base64.b64encode(wav).decode()}]}


def generate_request(prompt="A", length=5):
    return {"signature_name": "generate", "inputs": {"prompt": [prompt], "length": length, "temperature": 0.0,
                                                      "seed": 1}}


# Each was a 500 (with a traceback in the log), a crash, minutes of work or gigabytes of
# memory before: now a 400 in TensorFlow Serving's shape, in well under a second.
@pytest.mark.parametrize("path, body, message", [
    # A 644-byte WAV whose header says 1 Hz took 5 GiB; 4 s is over data.max_seconds (3 s).
    ("/v1/models/speech_commands:predict", wav_request(wav_file(1, 300)), "sample rate is not one of"),
    ("/v1/models/speech_commands:predict", wav_request(wav_file(16_000, 4 * 16_000)), "longer than 3 s"),
    ("/v1/models/speech_commands:predict", {"inputs": {"waveform": [[0.0] * 48_001]}}, "at most 48,000 samples"),
    ("/v1/models/protein_ss:predict", {"instances": ["M" * 10_001]}, "at most 10,000 residues"),
    ("/v1/models/forecasting:predict", {"instances": [[[1.0]] * 100_001]}, "at most 100,000 time steps"),
    ("/v1/models/forecasting:predict", {"instances": [[[1.0]] * 5]}, "history is too short"),
    ("/v1/models/forecasting:predict", b'{"instances": [' + b"[[1.0], " * 29 + b'[NaN]]]}', "NaN is not a number"),
    ("/v1/models/forecasting:predict", {"instances": [[[1.0]] * 29 + [[1e39]]]}, "past float32's largest value"),
    # JSON's 1e999 is infinity once parsed: a waveform of them answered NaN probabilities.
    ("/v1/models/speech_commands:predict", b'{"inputs": {"waveform": [[1e999, 0.5]]}}', "not finite"),
    # Finite, but overflowing once scaled: answered NaN quantiles.
    ("/v1/models/forecasting:predict", {"instances": [[[3e38], [-3e38]] * 15]}, "is not finite for this input"),
    # 64 chains of 10,000 residues: an answer of ~37 MiB, refused before the model runs.
    ("/v1/models/protein_ss:predict", {"instances": ["M" * 10_000] * 64}, "split it into requests of at most 27 rows"),
    # One rule with predict: letters only (digits were served), and at least one.
    ("/v1/models/protein_ss:predict", {"instances": ["MK1"]}, "not a letter"),
    ("/v1/models/protein_ss:predict", {"instances": ["acd\U0001F600"]}, "not a letter"),
    ("/v1/models/protein_ss:predict", {"instances": [""]}, "sequence is empty"),
    ("/v1/models/textgen:predict", {"instances": ["a" * 10_001]}, "at most 10,000 characters"),
    ("/v1/models/textgen:predict", generate_request(prompt="a" * 10_001), "at most 10,000 characters"),
    ("/v1/models/textgen:predict", generate_request(length=2_001), "length must be <= 2,000"),
    ("/v1/models/sentiment:predict", b'{"instances": ' + b"[" * 900 + b'"a"' + b"]" * 900 + b"}", "nested"),
    ("/v1/models/sentiment:predict", b"[" * 5000 + b"]" * 5000, "nested"),
    ("/v1/models/sentiment:predict", b'{"instances": ["\\ud800"]}', "not valid Unicode"),
    ("/v1/models/sentiment:predict", b'{"signature_name": "\\ud800", "instances": ["a"]}', "not found"),
    ("/v1/models/speech_commands:predict", b'{"inputs": {"waveform": [[NaN, 0.5]]}}', "NaN is not a number"),
    ("/v1/models/textgen:predict", b'{"signature_name": "generate", "inputs": {"prompt": ["A"], "length": '
     + b"9" * 5000 + b', "temperature": 0.0, "seed": 1}}', "JSON Parse error"),
    ("/v1/models/textgen:predict", generate_request(length=10**30), "out-of-range integer"),
    ("/v1/models/sentiment/versions/%C2%B2", None, "Failed to convert version"),
    ("/v1/models/sentiment/versions/%C2%B2:predict", {"instances": ["a"]}, "Failed to convert version"),
    ("/v1/models/sentiment/versions/" + "9" * 5000, None, "Failed to convert version"),
    ("/v1/models/sentiment/versions/" + "9" * 5000 + ":predict", {"instances": ["a"]}, "Failed to convert version"),
])
@pytest.mark.slow
def test_hostile_requests_get_a_400_and_the_server_keeps_serving(server, path, body, message):
    raw = body if isinstance(body, bytes) else None
    started = time.monotonic()
    got, answer = server.request(path, None if raw else body, raw=raw, method="POST" if body is not None else "GET")
    assert (got, message in answer["error"]) == (400, True), answer
    assert "\\'" not in answer["error"]  # the graph's messages arrive unescaped ("export\\'s" was shown)
    assert time.monotonic() - started < 30
    assert server.request("/v1/models/sentiment:predict", {"instances": ["still here"]})[0] == 200
    assert server.process.poll() is None and "Traceback" not in "".join(server.output)


@pytest.mark.slow
def test_the_exported_graph_refuses_what_the_server_refuses(exports):
    """TensorFlow Serving runs the SavedModel without lstmkit's Python: the limits are in the graph."""
    speech = tf.saved_model.load(str(exports / "speech_commands" / "1")).signatures
    for wav, message in [(wav_file(1, 20), "sample rate is not one of"), (wav_file(8_000, 4 * 8_000), "longer than 3 s")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            speech["wav_bytes"](wav=tf.constant([wav]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than 48,000 samples"):
        speech["serving_default"](waveform=tf.zeros([1, 48_001]))
    assert speech["serving_default"](waveform=tf.zeros([1, 48_000]))["label"].shape == (1,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="waveform holds a NaN or infinite value"):
        speech["serving_default"](waveform=tf.constant([[0.1, float("inf")]]))
    protein = tf.saved_model.load(str(exports / "protein_ss" / "1")).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than 10,000 residues"):
        protein(sequence=tf.constant(["MK", "M" * 10_001]))
    for sequences, message in [(["MK", ""], "sequence is empty"), (["MK1"], "not a letter"),
                               (["MK M"], "not a letter")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            protein(sequence=tf.constant(sequences))
    # Lengths in characters: one structure letter and one row of probabilities each.
    answer = protein(sequence=tf.constant(["acdé", "MKT"]))
    assert answer["length"].numpy().tolist() == [4, 3] and len(answer["structure"].numpy()[0].decode()) == 4
    forecasting = tf.saved_model.load(str(exports / "forecasting" / "1")).signatures["serving_default"]
    for history, message in [(tf.zeros([1, 23, 1]), "history is too short"),
                             (tf.fill([1, 30, 1], float("nan")), "NaN or infinite"),
                             (tf.zeros([1, 100_001, 1]), "longer than 100,000 time steps")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            forecasting(history=history)
    assert forecasting(history=tf.zeros([2, 24, 1]))["quantiles"].shape == (2, 6, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="output .* is not finite for this input"):
        forecasting(history=tf.constant([[[3e38], [-3e38]] * 12]))
    textgen = tf.saved_model.load(str(exports / "textgen" / "1")).signatures
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than 10,000 characters"):
        textgen["serving_default"](text=tf.constant(["漢" * 10_001]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="length must be <= 2,000"):
        textgen["generate"](prompt=tf.constant(["a"]), length=tf.constant(2_001), temperature=tf.constant(0.0),
                            seed=tf.constant(1, tf.int64))


@pytest.mark.slow
def test_health_readiness_metrics_and_the_printed_urls_work(server):
    printed = re.findall(r"http://\S+", "".join(server.output))
    assert len(printed) == 2 * 5 + 2, server.output
    for url in printed:
        assert url.startswith(f"http://127.0.0.1:{server.port}/")
        path = url.split(str(server.port), 1)[1]
        if path.endswith(":predict"):
            name = path.split("/")[3].split(":")[0]
            body = [body for _, body, _ in requests_for(name, None) if "instances" in body][0] if name != \
                "speech_commands" else {"inputs": {"waveform": [[0.0] * 100]}}
            assert server.request(path, body)[0] == 200, url
        else:
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.status == 200, url
    assert server.request("/healthz") == (200, {"status": "ok"})
    status, ready = server.request("/readyz")
    assert status == 200 and set(ready["models"]) == {"sentiment", "speech_commands", "protein_ss", "textgen",
                                                      "forecasting"}
    server.request("/v1/models/sentiment:predict", {"instances": ["counted"]})
    server.request("/v1/models/no_such_model_%ff:predict", {"instances": ["counted"]})
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/plain")
        text = response.read().decode()
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    predictions = (("code", "200"), ("model", "sentiment"), ("route", "predict"))
    assert samples[("lstmkit_requests_total", predictions)] >= 1, text
    assert samples[("lstmkit_request_duration_seconds_bucket", (("le", "+Inf"),) + predictions[1:])] >= 1
    assert "no_such_model" not in text  # unknown names are counted as model=""
    assert samples[("lstmkit_models_served", ())] == 5
    assert samples[("process_resident_memory_bytes", ())] > 0


@pytest.mark.slow
def test_versions_removed_or_replaced_on_disk_are_unloaded(exports, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exports / "sentiment", base / "sentiment")
    shutil.copytree(exports / "protein_ss", base / "protein_ss")
    running = Server(base, "--poll-seconds", "0.2")
    try:
        assert "predictions" in running.request("/v1/models/sentiment:predict", {"instances": ["fine"]})[1]
        shutil.rmtree(base / "sentiment" / "1")
        status = wait_for(running, lambda versions: versions.get("1", {}).get("state") == "END")
        assert running.request("/v1/models/sentiment:predict", {"instances": ["fine"]})[0] == 404
        # A new export with the same version number (rm -rf saved_models/sentiment, export
        # again): another model's files, so its answers show which one is served.
        shutil.copytree(exports / "textgen" / "1", base / "sentiment" / "1")
        wait_for(running, lambda versions: versions.get("1", {}).get("state") == "AVAILABLE")
        status, answer = running.request("/v1/models/sentiment:predict", {"instances": ["fine"]})
        assert status == 200 and "next_character" in answer["predictions"][0]
        shutil.rmtree(base / "sentiment")
        wait_for(running, lambda versions: versions.get("1", {}).get("state") == "END")
        assert running.request("/v1/models/sentiment:predict", {"instances": ["fine"]})[0] == 404
        assert running.request("/readyz")[1]["models"] == {"protein_ss": "1"}
        shutil.rmtree(base / "protein_ss")
        deadline = time.time() + 30
        while running.request("/readyz")[0] != 503 and time.time() < deadline:
            time.sleep(0.2)
        assert running.request("/readyz")[0] == 503
    finally:
        running.stop()


def http_get(port, path="/healthz", source="127.0.0.1"):
    """(status, JSON answer) of a GET from the loopback address ``source``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.slow
def test_connections_are_capped_per_client_and_in_all_and_slow_ones_are_closed(exports, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exports / "sentiment", base / "sentiment")
    running = Server(base, "--request-timeout", "3", "--max-connections", "4", "--max-connections-per-client", "2")
    try:
        # One address holding its share locks out only itself, and is told so in JSON.
        held = [socket.create_connection(("127.0.0.1", running.port), timeout=20) for _ in range(2)]
        status, answer = http_get(running.port)
        assert status == 429 and "holds 2 connections" in answer["error"]
        assert http_get(running.port, source="127.0.0.2") == (200, {"status": "ok"})
        held += [socket.create_connection(("127.0.0.1", running.port), timeout=20, source_address=("127.0.0.2", 0))
                 for _ in range(2)]
        status, answer = http_get(running.port, source="127.0.0.3")
        assert status == 503 and "--max-connections" in answer["error"]
        # A connection past the limit that sends nothing is answered at the header deadline, not before.
        started = time.monotonic()
        extra = socket.create_connection(("127.0.0.1", running.port), timeout=20, source_address=("127.0.0.3", 0))
        assert extra.recv(100).startswith(b"HTTP/1.1 503") and 2 < time.monotonic() - started < 15
        for connection in held + [extra]:
            connection.close()
        time.sleep(0.5)
        assert http_get(running.port) == (200, {"status": "ok"})
        idle = socket.create_connection(("127.0.0.1", running.port), timeout=20)
        started = time.monotonic()
        assert idle.recv(100) == b"" and time.monotonic() - started < 15  # closed by the server
        trickle = socket.create_connection(("127.0.0.1", running.port), timeout=20)
        started = time.monotonic()
        with pytest.raises(OSError):
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"x" * 300:
                trickle.send(bytes([byte]))
                time.sleep(0.05)
        assert time.monotonic() - started < 15
        # A body that does not arrive is answered 408 at the body deadline, and the
        # connection closed then (it was held until a second deadline: 60 s by default).
        body = socket.create_connection(("127.0.0.1", running.port), timeout=20)
        body.sendall(b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        started, answer = time.monotonic(), b""
        while chunk := body.recv(1000):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5.5, answer
    finally:
        running.stop()


@pytest.mark.slow
def test_large_headers_and_clients_that_leave_mid_body_are_client_errors(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    connection.request("GET", "/healthz", headers={"X-Big": "x" * 17_000})
    response = connection.getresponse()
    assert response.status == 400 and "at most 16,384" in json.loads(response.read())["error"]
    connection.close()
    for _ in range(3):  # a client that sends half a body and goes
        leaving = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        leaving.sendall(b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                        b'{"instances": ["a')
        time.sleep(0.2)
        leaving.close()
    time.sleep(0.5)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as response:
        text = response.read().decode()
    assert 'code="499"' in text and 'code="500"' not in text
    assert "Traceback" not in "".join(server.output)


@pytest.mark.slow
def test_a_second_server_on_a_taken_port_says_so_before_loading_any_model(exports):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "serve", "--model-base-path", str(exports),
                                 "--port", str(taken.getsockname()[1])], capture_output=True, text=True, timeout=300,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    finally:
        taken.close()
    assert result.returncode == 2 and "cannot listen on 127.0.0.1" in result.stderr, result.stderr
    assert "serving sentiment version" not in result.stdout + result.stderr  # no model was loaded
    assert len(result.stderr.strip().splitlines()) == 1 and time.monotonic() - started < 120


@pytest.mark.slow
def test_protein_lengths_are_characters_and_answers_past_the_budget_are_refused(exports):
    running = Server(exports, "--max-answer-bytes", str(64 * 1024))
    try:
        status, answer = running.request("/v1/models/protein_ss:predict", {"instances": ["acdé", "MKT"]})
        assert status == 200 and [row["length"] for row in answer["predictions"]] == [4, 3]
        assert [len(row["structure"]) for row in answer["predictions"]] == [4, 3]
        # About 20 bytes a probability: 3 × 1,000 per chain, so 64 KiB holds one chain of 1,000.
        status, answer = running.request("/v1/models/protein_ss:predict", {"instances": ["M" * 1_000] * 2})
        assert status == 400 and "at most 1 rows" in answer["error"], answer
        assert running.request("/v1/models/protein_ss:predict", {"instances": ["M" * 1_000]})[0] == 200
    finally:
        running.stop()


@pytest.mark.slow
def test_new_versions_are_picked_up_and_a_broken_one_never_replaces_a_working_one(exports, tmp_path):
    base = tmp_path / "models"
    shutil.copytree(exports / "sentiment", base / "sentiment")
    running = Server(base, "--poll-seconds", "0.2")
    try:
        before = running.request("/v1/models/sentiment:predict", {"instances": ["fine"]})
        # A half-written version appears: a SavedModel file cut short, no variables.
        broken = base / "sentiment" / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes((base / "sentiment" / "1" / "saved_model.pb").read_bytes()[:100])
        status = wait_for(running, lambda versions: versions.get("2", {}).get("state") == "END")
        assert status["2"]["status"]["error_code"] != "OK" and "failed to load" in status["2"]["status"]["error_message"]
        assert status["1"]["state"] == "AVAILABLE"
        assert running.request("/v1/models/sentiment:predict", {"instances": ["fine"]}) == before
        # A whole new version, renamed into place as export does.
        shutil.copytree(base / "sentiment" / "1", base / "sentiment" / ".tmp-3")
        os.rename(base / "sentiment" / ".tmp-3", base / "sentiment" / "3")
        status = wait_for(running, lambda versions: versions.get("3", {}).get("state") == "AVAILABLE")
        assert status["1"]["state"] == "END"
        assert running.request("/v1/models/sentiment/versions/3:predict", {"instances": ["fine"]}) == before
        assert running.request("/v1/models/sentiment/versions/1:predict", {"instances": ["fine"]})[0] == 404
        assert running.process.poll() is None
    finally:
        running.stop()
    assert "sentiment version 2 failed to load" in "".join(running.output)


def wait_for(server, done, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, answer = server.request("/v1/models/sentiment")
        versions = {entry["version"]: entry for entry in answer.get("model_version_status", [])}
        if done(versions):
            return versions
        time.sleep(0.2)
    raise AssertionError(f"not reached in {timeout} s: {versions}")


def test_the_server_refuses_to_start_without_models(run_cli, tmp_path):
    code, out, err = run_cli("serve", "--model-base-path", tmp_path)
    assert code == 2 and f"no SavedModel to serve under {tmp_path}" in err and len(err.strip().splitlines()) == 1


# Server-side batching, with a stand-in signature that records its batch sizes.


def recording_servable(batchable=True):
    seen = []

    def function(text):
        seen.append(int(text.shape[0]))
        if tf.reduce_any(tf.equal(text, b"bad")):
            raise tf.errors.InvalidArgumentError(None, None, "bad row")
        return {"length": tf.strings.length(text)}

    function.structured_input_signature = ((), {"text": tf.TensorSpec([None], tf.string, name="text")})
    servable = serving.Servable(1, {"serving_default": function}, {}, frozenset({"serving_default"} if batchable
                                                                                 else ()), None)
    return servable, seen


def predict_all(batcher, servable, texts):
    async def main():
        async def one(text):
            prediction = serving.parse_predict(json.dumps({"instances": [text]}).encode(), servable, 16)
            try:
                return serving.answer(await batcher.run(servable, prediction), prediction)
            except serving.ServingError as error:
                return error.status

        return await asyncio.gather(*(one(text) for text in texts))

    return asyncio.run(main())


def test_concurrent_requests_are_joined_into_batches_and_answered_apart():
    servable, seen = recording_servable()
    answers = predict_all(serving.Batcher(max_size=4, timeout_ms=200), servable, ["a", "bb", "ccc", "dddd", "eeeee"])
    assert answers == [{"predictions": [n]} for n in range(1, 6)]
    assert seen == [4, 1]  # four joined (the most allowed), then the fifth


def test_a_bad_request_in_a_batch_fails_alone():
    servable, seen = recording_servable()
    answers = predict_all(serving.Batcher(max_size=4, timeout_ms=200), servable, ["a", "bad", "ccc"])
    assert answers == [{"predictions": [1]}, 400, {"predictions": [3]}]


def test_signatures_not_marked_batchable_are_never_joined():
    servable, seen = recording_servable(batchable=False)
    predict_all(serving.Batcher(max_size=4, timeout_ms=200), servable, ["a", "bb", "ccc"])
    assert seen == [1, 1, 1]


# The registry on its own, with a stand-in loader.


def test_the_registry_serves_the_newest_version_that_loads(tmp_path):
    for folder in ["sentiment/1", "sentiment/2", "sentiment/3", "sentiment/.tmp-export-x", "speech_tflite/1",
                   "bad name/1", "textgen/notaversion"]:
        (tmp_path / folder).mkdir(parents=True)
    for version in ("sentiment/1", "sentiment/3", "bad name/1"):
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "speech_tflite" / "1" / "model.tflite").write_bytes(b"")
    attempts = []

    def loader(path, version):
        attempts.append(version)
        if not (path / "saved_model.pb").is_file():
            raise OSError("no saved_model.pb")
        return serving.Servable(version, {}, {}, frozenset(), None)

    registry = serving.ModelRegistry(tmp_path, loader)
    assert set(registry.scan()) == {"sentiment"}
    registry.refresh()
    assert registry.get("sentiment", None).version == 3 and attempts == [3]
    (tmp_path / "sentiment" / "4").mkdir()  # being copied: not loadable yet
    registry.refresh()
    registry.refresh()  # unchanged files: not tried again
    assert attempts == [3, 4] and registry.get("sentiment", None).version == 3
    versions = {entry["version"]: entry for entry in registry.status("sentiment", None)["model_version_status"]}
    assert versions["4"]["state"] == "END" and "no saved_model.pb" in versions["4"]["status"]["error_message"]
    (tmp_path / "sentiment" / "4" / "saved_model.pb").write_bytes(b"")  # the copy finished
    registry.refresh()
    assert registry.get("sentiment", "4").version == 4
    assert registry.status("sentiment", "3")["model_version_status"][0]["state"] == "END"
    with pytest.raises(serving.ServingError, match="Specific"):
        registry.get("sentiment", "3")


def test_errors_name_no_server_paths(tmp_path):
    (tmp_path / "sentiment" / "1").mkdir(parents=True)
    (tmp_path / "sentiment" / "1" / "saved_model.pb").write_bytes(b"")

    def loader(path, version):
        raise FileNotFoundError(f"No such file or directory: '{path / 'saved_model.pb'}'; also {path.parent}/x")

    registry = serving.ModelRegistry(tmp_path, loader)
    registry.refresh()
    message = registry.status("sentiment", None)["model_version_status"][0]["status"]["error_message"]
    assert "No such file or directory" in message and "sentiment/1" in message
    assert str(tmp_path) not in message and "/tmp" not in message
    shutil.rmtree(tmp_path / "sentiment" / "1")  # a failed version that is gone is forgotten
    registry.refresh()
    with pytest.raises(serving.ServingError, match="Could not find any versions"):
        registry.status("sentiment", None)


def test_batch_queues_last_only_while_they_have_requests():
    seen = []

    def function(waveform):
        seen.append(tuple(waveform.shape))
        return {"size": tf.fill([tf.shape(waveform)[0]], tf.shape(waveform)[1])}

    function.structured_input_signature = ((), {"waveform": tf.TensorSpec([None, None], tf.float32,
                                                                          name="waveform")})
    servable = serving.Servable(1, {"serving_default": function}, {}, frozenset({"serving_default"}), None)
    batcher = serving.Batcher(max_size=4, timeout_ms=5)

    async def main():
        async def one(length):
            body = json.dumps({"inputs": {"waveform": [[0.0] * length]}}).encode()
            prediction = serving.parse_predict(body, servable, 16)
            return serving.answer(await batcher.run(servable, prediction), prediction)

        answers = await asyncio.gather(*(one(length) for length in range(1, 41)))
        await asyncio.sleep(0.05)
        return answers

    answers = asyncio.run(main())
    assert answers == [{"outputs": [length]} for length in range(1, 41)]
    assert batcher.queues == {}  # 40 shapes, no queue left behind


def test_one_slow_signature_cannot_take_every_thread():
    runner = serving.Runner(threads=4, per_signature=2)
    release = threading.Event()
    started = []

    def slow():
        started.append(1)
        release.wait(30)
        return "generated"

    async def main():
        slow_calls = [asyncio.ensure_future(runner(("textgen", "generate"), slow)) for _ in range(8)]
        for _ in range(100):  # until the first two have started (on a busy machine, a while)
            if len(started) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # time for a third to start, were it allowed to
        fast = await asyncio.wait_for(runner(("sentiment", "serving_default"), lambda: "classified"), 5)
        running_at_once = len(started)
        release.set()
        return fast, running_at_once, await asyncio.gather(*slow_calls)

    fast, running_at_once, slow_answers = asyncio.run(main())
    assert fast == "classified" and running_at_once == 2 and slow_answers == ["generated"] * 8
