"""``serving_load``: ``cli.py serve`` under load, with and without server-side batching.

Every task's export is served at once from one base path: the exports already under
``saved_models/``, and for each task without one a tiny model trained (``--preset
tiny``, 1 epoch) and exported on the spot, so the benchmark runs on a fresh clone.
Then 16 client threads, each on its own keep-alive connection, send one-row
``:predict`` requests of real inputs (MR sentences, Speech Commands clips as b64 WAV
bytes, TS115 chains, tiny shakespeare lines) until the task's request count is reached
or its time budget is spent. Latency is measured at the client, from sending a request
to having read its answer; every answer other than 200 counts as an error.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("sentiment", "speech_commands", "protein_ss", "textgen")
CLIENTS = 16
SECONDS_PER_TASK = 300  # a bound, so that a slow machine still ends
BATCHING = ["--batch-max-size", "16", "--batch-timeout-ms", "2"]


def tiny_sources(data: Path) -> dict:
    return {"sentiment": data / "mr_polarity", "speech_commands": data / "fsdd" / "fsdd_recordings.tar.xz",
            "protein_ss": data / "protein_netsurfp2_flip", "textgen": data / "tinyshakespeare" / "input.txt"}


def prepare_models(data: Path, base: Path, runs_root: Path, seed: int) -> dict:
    """``base/<task>`` for every task: the newest export in saved_models/, or a tiny one."""
    from lstmkit import config as config_lib
    from lstmkit.export import existing_versions, export_run
    from lstmkit.training import train
    from tasks import get_task

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
        export_run(task, result.run_dir, base)
        origin[name] = "tiny model trained here (--preset tiny, 1 epoch)"
    return origin


def request_bodies(data: Path, count: int = 64) -> dict[str, list[bytes]]:
    """One-row requests of real inputs for each task, cycled through by the clients."""
    from tasks.protein_ss import data as protein_data

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
    as_json = lambda body: json.dumps(body).encode()  # noqa: E731
    return {
        "sentiment": [as_json({"instances": [text]}) for text in sentences],
        "speech_commands": [as_json({"signature_name": "wav_bytes",
                                     "instances": [{"b64": base64.b64encode(clip).decode()}]}) for clip in clips],
        "protein_ss": [as_json({"instances": [chain]}) for chain in chains[:count]],
        "textgen": [as_json({"instances": [line]}) for line in lines],
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


def start_server(base: Path, options: list[str]) -> tuple[subprocess.Popen, int]:
    from lstmkit.distribute import free_loopback_ports

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
    unbatched, batched = pooled(modes["unbatched"]), pooled(modes["batched"])
    first = modes["unbatched"]["sentiment"]
    return {
        "metric": "requests_per_second", "value": unbatched["requests_per_second"],
        "errors": unbatched["errors"] + batched["errors"],
        "p50_ms": first["p50_ms"], "p99_ms": first["p99_ms"],  # sentiment, unbatched: the headline task
        "requests_per_second": unbatched["requests_per_second"],
        "unbatched": unbatched, "batched": batched, "by_task": modes,
        "clients": CLIENTS, "requests_per_task": total, "batching_options": " ".join(BATCHING),
        "models": origin,
        "note": "one-row :predict requests over loopback; clients and server share the machine's cores",
    }
