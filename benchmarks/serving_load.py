"""``serving_load``: ``cli.py serve`` under load, with and without server-side batching.

Every task's export is served at once from one base path: the exports already under
``saved_models/``, and for each task without one a tiny model trained (``--preset
tiny``, 1 epoch) and exported on the spot, so the benchmark runs on a fresh clone.
Then 16 client threads, each on its own keep-alive connection, send one-row
``:predict`` requests of real inputs (MR sentences, Speech Commands clips as b64 WAV
bytes, TS115 chains, tiny shakespeare lines) until the task's request count is reached
or its time budget is spent. Latency is measured at the client, from sending a request
to having read its answer; every answer other than 200 counts as an error.

Then the hostile phase, on a fresh server with the default options: the same normal
traffic as the unbatched run while ``HOSTILE_CLIENTS`` more threads send, in a loop,
the largest legal input of each task (a 10,000-residue chain, a 3 s WAV at 48 kHz, a
10,000-character prompt, a 2,000-character ``generate``, a 1 MiB review) and malformed
requests (a WAV header claiming 1 Hz, a 4 s clip, inputs one past each limit, JSON
nested 900 deep, lone surrogates, ``versions/%C2%B2``, a 5,000-digit version and
integer, NaN, a body over the limit), and ``SLOW_CONNECTIONS`` sockets trickle headers a byte at a time.
Beside them, from other processes (so that their threads do not slow the measuring
clients): ``BIG_BODY_CLIENTS`` clients sending 8 MB forecasting bodies that are refused
(700,000 steps), one request for 256 chains of 10,000 residues (an answer of ~150 MB,
refused before the model runs), non-finite numbers (``1e999``, a history of ±3e38), and
``IDLE_SOCKETS`` idle sockets from another loopback address (127.0.0.2), reopened
whenever the server closes them. A client polls ``/healthz`` all the while.
Reported: whether the server survived, answers by status code (no 5xx expected),
every hostile answer that was not the expected one, the server's peak and final
resident memory, ``/healthz`` latency, and the normal requests' p99 beside the clean
run's, against the goals (``/healthz`` p99 under 100 ms, normal p99 under 1 s).
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("sentiment", "speech_commands", "protein_ss", "textgen", "forecasting")
CLIENTS = 16
SECONDS_PER_TASK = 300  # a bound, so that a slow machine still ends
BATCHING = ["--batch-max-size", "16", "--batch-timeout-ms", "2"]
HOSTILE_CLIENTS = 4
SLOW_CONNECTIONS = 20
BIG_BODY_CLIENTS = 8
IDLE_SOCKETS = 260
IDLE_SOCKETS_FROM = "127.0.0.2"  # another client address than the measuring clients'
GOALS_MS = {"healthz_p99": 100, "normal_p99": 1000}


def tiny_sources(data: Path) -> dict:
    return {"sentiment": data / "mr_polarity", "speech_commands": data / "fsdd" / "fsdd_recordings.tar.xz",
            "protein_ss": data / "protein_netsurfp2_flip", "textgen": data / "tinyshakespeare" / "input.txt",
            "forecasting": "builtin:elnino"}


def prepare_models(data: Path, base: Path, runs_root: Path, seed: int) -> dict:
    """``base/<task>`` for every task: the newest export in saved_models/, or a tiny one."""
    from lstmkit import config as config_lib
    from lstmkit.export import existing_versions, export_run
    from lstmkit.training import train
    from lstmkit.registry import get_task

    origin = {}
    for name in TASKS:
        exported = ROOT / "saved_models" / name
        if existing_versions(exported):
            (base / name).symlink_to(exported.resolve(), target_is_directory=True)
            origin[name] = f"saved_models/{name}"
            continue
        task = get_task(name)
        config = config_lib.apply_overrides(task.tiny_config(), ["train.epochs=1"])
        result = train(task, config, str(tiny_sources(data)[name]), runs_root=runs_root, seed=seed)
        export_run(result, base)
        origin[name] = "tiny model trained here (--preset tiny, 1 epoch)"
    return origin


def request_bodies(data: Path, count: int = 64) -> dict[str, list[bytes]]:
    """One-row requests of real inputs for each task, cycled through by the clients."""
    from lstmkit.tasks.protein_ss import data as protein_data

    sentences = (data / "mr_polarity" / "rt-polarity.pos").read_bytes().decode("latin-1").splitlines()[:count]
    clips = []
    with tarfile.open(data / "speech_commands_v002_test" / "speech_commands_test_set_v0.02.tar.xz", "r:xz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".wav") and "_background_noise_" not in member.name:
                clips.append(tar.extractfile(member).read())
                if len(clips) == count:
                    break
    chains = [chain.sequence for chain in protein_data.read_hhblits_csv(data / "protein_ts115" / "TS115_HHblits.csv")]
    lines = [line for line in (data / "tinyshakespeare" / "input.txt").read_text().splitlines() if line][:count]
    from lstmkit.tasks.forecasting.data import builtin_series
    from lstmkit.tasks.forecasting.config import DataConfig

    (elnino,) = builtin_series("elnino", DataConfig())
    values = np.asarray(elnino.values, np.float64).reshape(len(elnino.values), -1)[:, :1]
    histories = [values[end - 48:end].tolist() for end in range(48, len(values), max(1, len(values) // count))][:count]
    as_json = lambda body: json.dumps(body).encode()  # noqa: E731
    return {
        "sentiment": [as_json({"instances": [text]}) for text in sentences],
        "speech_commands": [as_json({"signature_name": "wav_bytes",
                                     "instances": [{"b64": base64.b64encode(clip).decode()}]}) for clip in clips],
        "protein_ss": [as_json({"instances": [chain]}) for chain in chains[:count]],
        "textgen": [as_json({"instances": [line]}) for line in lines],
        "forecasting": [as_json({"instances": [history]}) for history in histories],
    }


def load(port: int, model: str, bodies: list[bytes], total: int) -> dict:
    """``total`` requests from CLIENTS threads; latencies and errors."""
    latencies, errors, lock = [], [], threading.Lock()
    sent = iter(range(total))
    deadline = time.monotonic() + SECONDS_PER_TASK

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < deadline:
            with lock:
                index = next(sent, None)
            if index is None:
                break
            started = time.perf_counter()
            try:
                connection.request("POST", f"/v1/models/{model}:predict", bodies[index % len(bodies)],
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                ok = response.status == 200 and b"predictions" in answer
                problem = None if ok else f"{response.status}: {answer[:200]!r}"
            except (OSError, http.client.HTTPException) as error:
                problem = f"{error.__class__.__name__}: {error}"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if problem:
                    errors.append(problem)
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    milliseconds = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": len(errors), "first_errors": errors[:3],
            "seconds": round(seconds, 2), "requests_per_second": round(len(latencies) / seconds, 1),
            "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
            "p99_ms": round(float(np.percentile(milliseconds, 99)), 1)}


def wav_file(rate: int, samples: int) -> bytes:
    """A mono 16-bit PCM WAV whose header says ``rate`` Hz."""
    pcm = (np.sin(np.arange(samples) / 7) * 8000).astype("<i2").tobytes()
    header = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + header
            + b"data" + struct.pack("<I", len(pcm)) + pcm)


def hostile_requests(data: Path) -> list[tuple[str, str, bytes | None, int]]:
    """(name, path, body or None for GET, the status expected) of the hostile phase."""
    from lstmkit.tasks.protein_ss.config import MAX_RESIDUES
    from lstmkit.tasks.textgen.config import MAX_PROMPT_CHARACTERS

    from lstmkit.task import MAX_SERVED_GENERATED_LENGTH

    as_json = lambda body: json.dumps(body).encode()  # noqa: E731
    wav = lambda clip: as_json({"signature_name": "wav_bytes",  # noqa: E731
                                "instances": [{"b64": base64.b64encode(clip).decode()}]})
    generate = lambda prompt, length: as_json({"signature_name": "generate", "inputs": {  # noqa: E731
        "prompt": [prompt], "length": length, "temperature": 0.8, "seed": 1}})
    words = (data / "mr_polarity" / "rt-polarity.neg").read_bytes().decode("latin-1").split()
    review = " ".join(words)[:1024 * 1024]
    prompt = (data / "tinyshakespeare" / "input.txt").read_text()[:MAX_PROMPT_CHARACTERS]
    chain = ("MKTAYIAKQRQISFVKSHFSRQ" * 1000)[:MAX_RESIDUES]
    model = "/v1/models/{}:predict".format
    return [
        # The largest legal inputs: answered.
        ("largest protein chain", model("protein_ss"), as_json({"instances": [chain]}), 200),
        ("3 s WAV at 48 kHz", model("speech_commands"), wav(wav_file(48_000, 3 * 48_000)), 200),
        ("3 s waveform", model("speech_commands"), as_json({"inputs": {"waveform": [[0.1] * 48_000]}}), 200),
        ("longest prompt", model("textgen"), as_json({"instances": [prompt]}), 200),
        ("longest generate", model("textgen"), generate(prompt, MAX_SERVED_GENERATED_LENGTH), 200),
        ("1 MiB review", model("sentiment"), as_json({"instances": [review]}), 200),
        # Malformed or over a limit: refused.
        ("WAV header claiming 1 Hz", model("speech_commands"), wav(wav_file(1, 300)), 400),
        ("4 s WAV", model("speech_commands"), wav(wav_file(16_000, 4 * 16_000)), 400),
        ("waveform over 3 s", model("speech_commands"), as_json({"inputs": {"waveform": [[0.1] * 48_001]}}), 400),
        ("chain over the limit", model("protein_ss"), as_json({"instances": [chain + "M"]}), 400),
        ("prompt over the limit", model("textgen"), as_json({"instances": [prompt + "a"]}), 400),
        ("generate over the limit", model("textgen"), generate("a", MAX_SERVED_GENERATED_LENGTH + 1), 400),
        ("JSON nested 900 deep", model("sentiment"), b'{"instances": ' + b"[" * 900 + b'"a"' + b"]" * 900 + b"}",
         400),
        ("lone surrogate", model("sentiment"), b'{"instances": ["\\ud800"]}', 400),
        ("lone surrogate signature", model("sentiment"), b'{"signature_name": "\\ud800", "instances": ["a"]}',
         400),
        ("NaN waveform", model("speech_commands"), b'{"inputs": {"waveform": [[NaN, 0.5]]}}', 400),
        ("5,000-digit length", model("textgen"), b'{"signature_name": "generate", "inputs": {"prompt": ["A"], '
         b'"length": ' + b"9" * 5000 + b', "temperature": 0.0, "seed": 1}}', 400),
        ("superscript version", "/v1/models/sentiment/versions/%C2%B2", None, 400),
        ("5,000-digit version", "/v1/models/sentiment/versions/" + "9" * 5000 + ":predict",
         as_json({"instances": ["a"]}), 400),
        ("body over the limit", model("sentiment"), as_json({"instances": ["x" * 1024] * 9000}), 413),
    ]


def answered(port: int, path: str, body: bytes | None) -> tuple:
    """(status or the connection error's name, answer body) of one request on a new
    connection: a GET without ``body``, else a POST."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET" if body is None else "POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        return error.__class__.__name__, b""
    finally:
        connection.close()


def hostile_traffic(port: int, requests: list, stop: threading.Event) -> dict:
    """Send ``requests`` round and round from HOSTILE_CLIENTS threads, and keep
    SLOW_CONNECTIONS sockets trickling headers, until ``stop`` is set."""
    codes, unexpected, lock = collections.Counter(), collections.Counter(), threading.Lock()
    trickled = {"connections": 0, "closed_by_server": 0}

    def client(offset: int):
        index = offset
        while not stop.is_set():
            name, path, body, expected = requests[index % len(requests)]
            index += 1
            code, answer = answered(port, path, body)
            with lock:
                codes[str(code)] += 1
                if code != expected:
                    unexpected[f"{name}: {code} {answer[:120]!r}"] += 1

    def trickler():
        while not stop.is_set():
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=5)
                with lock:
                    trickled["connections"] += 1
                for byte in b"POST /v1/models/sentiment:predict HTTP/1.1\r\nX-Slow: " + b"x" * 10_000:
                    if stop.wait(0.5):
                        break
                    connection.send(bytes([byte]))
                connection.close()
            except OSError:  # closed by the server: what it should do
                with lock:
                    trickled["closed_by_server"] += 1

    threads = [threading.Thread(target=client, args=(offset * 5,), daemon=True) for offset in range(HOSTILE_CLIENTS)]
    threads += [threading.Thread(target=trickler, daemon=True) for _ in range(SLOW_CONNECTIONS)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(150)
    return {"codes": dict(codes), "unexpected": dict(unexpected.most_common(10)), "slow_connections": trickled}


def big_attacks(port: int, stop, results) -> None:
    """In a process of its own until ``stop`` is set: BIG_BODY_CLIENTS threads sending
    8 MB forecasting bodies (refused: 700,000 steps), one thread looping over the
    256 × 10,000-residue request and non-finite numbers, and IDLE_SOCKETS idle sockets
    from IDLE_SOCKETS_FROM, each reopened when the server closes it. Puts the counts
    on ``results``."""
    import select

    codes, unexpected, lock = collections.Counter(), collections.Counter(), threading.Lock()
    idle = {"opened": 0, "answered_429": 0, "closed_by_server": 0, "could_not_open": 0}
    rng = np.random.default_rng(0)
    big = json.dumps({"instances": [[[float(x)] for x in rng.normal(size=700_000).round(4)]]}).encode()
    chain = ("MKTAYIAKQRQISFVKSHFSRQ" * 1000)[:10_000]
    model = "/v1/models/{}:predict".format
    looped = [
        ("256 chains of 10,000 residues", model("protein_ss"), json.dumps({"instances": [chain] * 256}).encode()),
        ("waveform of 1e999", model("speech_commands"),
         b'{"inputs": {"waveform": [[' + b", ".join([b"1e999"] * 16_000) + b"]]}}"),
        ("history of 3e38 and -3e38", model("forecasting"),
         json.dumps({"instances": [[[3e38], [-3e38]] * 24]}).encode()),
    ]

    def client(requests):
        index = 0
        while not stop.is_set():
            name, path, body = requests[index % len(requests)]
            index += 1
            code, answer = answered(port, path, body)
            with lock:
                codes[str(code)] += 1
                if code != 400:
                    unexpected[f"{name}: {code} {answer[:120]!r}"] += 1

    def idle_sockets():
        held = []
        while not stop.is_set():
            while len(held) < IDLE_SOCKETS and not stop.is_set():
                try:
                    connection = socket.create_connection(("127.0.0.1", port), timeout=5,
                                                          source_address=(IDLE_SOCKETS_FROM, 0))
                except OSError:
                    idle["could_not_open"] += 1
                    break
                held.append(connection)
                idle["opened"] += 1
            readable, _, _ = select.select(held, [], [], 0.2)
            for connection in readable:  # answered or closed by the server: reopened above
                try:
                    answer = connection.recv(4096)
                except OSError:
                    answer = b""
                idle["answered_429" if answer.startswith(b"HTTP/1.1 429") else "closed_by_server"] += 1
                connection.close()
                held.remove(connection)
        for connection in held:
            connection.close()

    threads = [threading.Thread(target=client, args=([("8 MB history body", model("forecasting"), big)],))
               for _ in range(BIG_BODY_CLIENTS)]
    threads += [threading.Thread(target=client, args=(looped,)), threading.Thread(target=idle_sockets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put({"codes": dict(codes), "unexpected": dict(unexpected.most_common(10)), "idle_sockets": idle})


def poll_health(port: int, stop: threading.Event, every_s: float = 0.05) -> dict:
    """``GET /healthz`` every ``every_s`` until ``stop``: latency percentiles and failures."""
    latencies, failures = [], collections.Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.wait(every_s):
        started = time.perf_counter()
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures[str(response.status)] += 1
        except (OSError, http.client.HTTPException) as error:
            failures[error.__class__.__name__] += 1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies.append(time.perf_counter() - started)
    connection.close()
    milliseconds = np.array(latencies or [0.0]) * 1000
    return {"polls": len(latencies), "failures": dict(failures),
            "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
            "p99_ms": round(float(np.percentile(milliseconds, 99)), 1), "max_ms": round(float(milliseconds.max()), 1)}


def memory_mib(pid: int) -> dict:
    """The process's peak (VmHWM) and current (VmRSS) resident memory, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return {"peak_rss_mib": fields.get("VmHWM"), "rss_mib": fields.get("VmRSS")}


def hostile_phase(base: Path, data: Path, bodies: dict, total: int) -> dict:
    server, port = start_server(base, [])
    stop = threading.Event()
    try:
        for name in TASKS:
            load(port, name, bodies[name], CLIENTS)
        idle = memory_mib(server.pid)
        hostile, health = {}, {}
        attacker = threading.Thread(target=lambda: hostile.update(hostile_traffic(port, hostile_requests(data), stop)))
        poller = threading.Thread(target=lambda: health.update(poll_health(port, stop)))
        context = multiprocessing.get_context("spawn")
        big_stop, big_results = context.Event(), context.Queue()
        big = context.Process(target=big_attacks, args=(port, big_stop, big_results))
        big.start()
        attacker.start()
        poller.start()
        time.sleep(5)  # the attacks under way (the 8 MB bodies take a few seconds to make)
        normal = {name: load(port, name, bodies[name], total) for name in TASKS}
        stop.set()
        big_stop.set()
        attacker.join(300)
        poller.join(60)
        big_hostile = big_results.get(timeout=300)
        big.join(60)
        alive = server.poll() is None
        memory = memory_mib(server.pid) if alive else {}
    finally:
        stop.set()
        server.terminate()
        server.wait(30)
    codes = collections.Counter(hostile.get("codes", {})) + collections.Counter(big_hostile.get("codes", {}))
    fivexx = sum(count for code, count in codes.items() if code.startswith("5"))
    return {"server_survived": alive, "hostile_5xx": fivexx,
            "normal_errors": sum(result["errors"] for result in normal.values()),
            "rss_mib_before": idle["rss_mib"], **memory, "hostile": hostile, "big": big_hostile,
            "healthz": health, "normal": normal}


def start_server(base: Path, options: list[str]) -> tuple[subprocess.Popen, int]:
    from lstmkit.training.strategy import free_loopback_ports

    (port,) = free_loopback_ports(1)
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", "--model-base-path", str(base),
                               "--port", str(port), *options],
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:
        if line.startswith("serving "):
            threading.Thread(target=server.stdout.read, daemon=True).start()  # keep the pipe drained
            return server, port
    raise RuntimeError(f"cli.py serve did not start (exit code {server.wait()})")


def pooled(results: dict) -> dict:
    requests = sum(result["requests"] for result in results.values())
    seconds = sum(result["seconds"] for result in results.values())
    return {"requests": requests, "errors": sum(result["errors"] for result in results.values()),
            "requests_per_second": round(requests / seconds, 1),
            # Per task, since each task's latencies are their own distribution.
            "p50_ms_by_task": {name: result["p50_ms"] for name, result in results.items()},
            "p99_ms_by_task": {name: result["p99_ms"] for name, result in results.items()}}


def run(data: Path, quick: bool, seed: int) -> dict:
    total = 200 if quick else 2000
    with tempfile.TemporaryDirectory(prefix="lstmkit-serving-") as scratch:
        base = Path(scratch) / "saved_models"
        base.mkdir()
        origin = prepare_models(data, base, Path(scratch) / "runs", seed)
        bodies = request_bodies(data)
        modes = {}
        for mode, options in (("unbatched", []), ("batched", BATCHING)):
            server, port = start_server(base, options)
            try:
                for name in TASKS:  # warm up: the first call of each signature traces nothing, but allocates
                    load(port, name, bodies[name], CLIENTS)
                modes[mode] = {name: load(port, name, bodies[name], total) for name in TASKS}
                print(json.dumps({mode: modes[mode]}), flush=True)
            finally:
                server.terminate()
                server.wait(30)
        hostile = hostile_phase(base, data, bodies, total)
        print(json.dumps({"hostile": hostile}), flush=True)
    unbatched, batched = pooled(modes["unbatched"]), pooled(modes["batched"])
    first = modes["unbatched"]["sentiment"]
    return {
        "metric": "requests_per_second", "value": unbatched["requests_per_second"],
        "errors": unbatched["errors"] + batched["errors"],
        "p50_ms": first["p50_ms"], "p99_ms": first["p99_ms"],  # sentiment, unbatched: the headline task
        "requests_per_second": unbatched["requests_per_second"],
        "unbatched": unbatched, "batched": batched, "by_task": modes,
        "hostile": {
            "server_survived": hostile["server_survived"], "crashes": 0 if hostile["server_survived"] else 1,
            "hostile_5xx": hostile["hostile_5xx"], "normal_errors": hostile["normal_errors"],
            "hostile_answers": hostile["hostile"].get("codes", {}),
            "unexpected_answers": {**hostile["hostile"].get("unexpected", {}), **hostile["big"].get("unexpected", {})},
            "slow_connections": hostile["hostile"].get("slow_connections", {}),
            "server_rss_mib_before": hostile["rss_mib_before"], "server_peak_rss_mib": hostile.get("peak_rss_mib"),
            "server_rss_mib_after": hostile.get("rss_mib"),
            "normal_p99_ms_by_task": {name: result["p99_ms"] for name, result in hostile["normal"].items()},
            "clean_p99_ms_by_task": unbatched["p99_ms_by_task"],
            "big_attacks": hostile["big"],
            "healthz": hostile["healthz"],
            "goals_met": {
                "healthz_p99_under_100_ms": hostile["healthz"]["p99_ms"] < GOALS_MS["healthz_p99"],
                "normal_p99_under_1_s": max(result["p99_ms"] for result in hostile["normal"].values())
                < GOALS_MS["normal_p99"]},
        },
        "clients": CLIENTS, "requests_per_task": total, "batching_options": " ".join(BATCHING),
        "models": origin,
        "note": "one-row :predict requests over loopback; clients and server share the machine's cores",
    }
