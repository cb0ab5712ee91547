"""cli.py serve: TensorFlow Serving's REST API over every task's export, on a free
loopback port: answers equal the in-memory models', status and metadata, bad requests,
new and broken versions on disk, and server-side batching."""

import asyncio
import base64
import json
import os
import shutil
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
from lstmkit.distribute import free_loopback_ports
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


@pytest.mark.parametrize("task_name", ["sentiment", "speech_commands", "protein_ss", "textgen"])
def test_predict_answers_equal_the_in_memory_models(server, task_name, speech_slice, request, exports):
    from lstmkit import runs
    from lstmkit.evaluation import load_run
    from tasks import get_task

    task = get_task(task_name)
    run_dir = request.getfixturevalue({"sentiment": "tiny_run", "speech_commands": "speech_run",
                                       "protein_ss": "protein_run", "textgen": "textgen_run"}[task_name])
    config, model = load_run(task, run_dir)
    signatures = task.serving_signatures(config, runs.read_json(run_dir / "preprocessing.json"))
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
def test_bad_requests_get_tensorflow_serving_errors_and_the_server_keeps_serving(server, path, body, status,
                                                                                 message):
    raw = body if isinstance(body, bytes) else None
    got, answer = server.request(path, None if raw else body, raw=raw,
                                 method="POST" if body is not None else "GET")
    assert got == status and message in answer["error"], answer
    assert server.request("/v1/models/sentiment:predict", {"instances": ["still here"]})[0] == 200


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
