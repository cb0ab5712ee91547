"""Benchmarks for hyperparameter search and multi-worker training on MR.

- ``tune_sentiment_mr``: the MR benchmark's config trained as it is, then a seeded random
  search over the sentiment space, then the best configuration trained with the same
  protocol (same split, epochs and early stopping); test accuracy of both, the search's
  wall time, and resident memory after every trial (to show it does not grow).
- ``multiworker_throughput``: the same MR training with ``--strategy multiworker`` as one
  worker and as two worker processes on 127.0.0.1; training examples per second.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tune_sentiment_mr(data: Path, base_overrides: list[str], quick: bool, seed: int) -> dict:
    import dataclasses

    from lstmkit import config as config_lib
    from lstmkit.training import train
    from lstmkit.tuning.search import SearchSettings, memory_mb, tune
    from lstmkit.registry import get_task

    task = get_task("sentiment")
    config = config_lib.apply_overrides(task.default_config(), base_overrides)
    settings = SearchSettings(tuner="random", max_trials=5 if quick else 20, max_epochs=2 if quick else 4, seed=seed)
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as runs_root:
        started = time.perf_counter()
        default = train(task, config, str(data), runs_root=runs_root, seed=seed)
        default_seconds = time.perf_counter() - started
        before_search = memory_mb()
        started = time.perf_counter()
        search = tune(task, config, str(data), settings, runs_root=runs_root)
        search_seconds = time.perf_counter() - started
        after_search = memory_mb()
        # The best configuration, trained exactly as the default was.
        best_config = dataclasses.replace(search.best_config, train=dataclasses.replace(
            search.best_config.train, epochs=config.train.epochs, patience=config.train.patience))
        started = time.perf_counter()
        best = train(task, best_config, str(data), runs_root=runs_root, seed=seed)
        best_seconds = time.perf_counter() - started
    completed = [trial for trial in search.trials if trial["status"] == "COMPLETED"]
    # Each trial's process (settings.trials_per_process trials each), after its trial.
    after_trials = [entry["rss_mb"] for entry in search.memory_mb]
    return {
        "metric": "best_test_accuracy", "value": round(best.metrics["test"]["accuracy"], 4),
        "default_test_accuracy": round(default.metrics["test"]["accuracy"], 4),
        "default_validation_accuracy": round(default.metrics["validation"]["accuracy"], 4),
        "best_validation_accuracy": round(best.metrics["validation"]["accuracy"], 4),
        "best_trial_score": round(completed[0]["score"], 4), "trials_completed": len(completed),
        "search_seconds": round(search_seconds, 1), "default_seconds": round(default_seconds, 1),
        "best_seconds": round(best_seconds, 1),
        "trial_processes": len({entry["pid"] for entry in search.memory_mb}),
        "rss_mb_after_each_trial": after_trials,
        "rss_growth_mb_first_to_last_trial": round(after_trials[-1] - after_trials[0], 1),
        "trial_peak_rss_mb": max(entry["peak_rss_mb"] for entry in search.memory_mb),
        # The process holding the oracle (it also trained the default config first).
        "search_process_rss_mb_before": before_search["rss_mb"],
        "search_process_rss_mb_after": after_search["rss_mb"],
        "search": dataclasses.asdict(settings),
        "best_hyperparameters": completed[0]["hyperparameters"],
        "data": "MR, seeded 10% test split (data.split_seed=1337), 10% of the rest validation",
        "config": config_lib.to_dict(config),
    }


def _train_workers(count: int, data: Path, overrides: list[str], seed: int, runs_root: Path) -> list[dict]:
    """Train with ``count`` multiworker processes; each worker's epoch times."""
    from lstmkit.training.strategy import free_loopback_ports

    workers = [f"127.0.0.1:{port}" for port in free_loopback_ports(count)]
    processes = []
    for index in range(count):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        command = [sys.executable, str(ROOT / "cli.py"), "train", "sentiment", "--data", str(data),
                   "--strategy", "multiworker", "--seed", str(seed), "--runs-dir", str(runs_root / f"w{count}-{index}")]
        command += [part for override in overrides for part in ("--set", override)]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    results = []
    for index, process in enumerate(processes):
        output = process.communicate(timeout=3600)[0]
        if process.returncode != 0:
            raise RuntimeError(f"worker {index} of {count} failed:\n{output[-3000:]}")
        (run_dir,) = (runs_root / f"w{count}-{index}" / "sentiment").iterdir()
        with (run_dir / "history.csv").open(newline="") as handle:
            seconds = [float(row["train_seconds"]) for row in csv.DictReader(handle)]
        results.append({"epoch_train_seconds": [round(value, 1) for value in seconds],
                        "replicas": json.loads((run_dir / "run.json").read_text())["replicas"]})
    return results


def multiworker_throughput(data: Path, base_overrides: list[str], quick: bool, seed: int) -> dict:
    from lstmkit import config as config_lib
    from lstmkit.data import count
    from lstmkit.registry import get_task

    task = get_task("sentiment")
    epochs = 2 if quick else 3
    overrides = base_overrides + [f"train.epochs={epochs}", f"train.patience={epochs}"]
    config = config_lib.apply_overrides(task.default_config(), overrides)
    examples = count(task.bind(config).load_data(str(data)).train)
    report = {}
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as runs_root:
        for workers in (1, 2):
            results = _train_workers(workers, data, overrides, seed, Path(runs_root))
            # Epoch 1 includes tracing; the steady state is the mean of the rest.
            steady = [sum(result["epoch_train_seconds"][1:]) / (epochs - 1) for result in results]
            report[f"{workers}_worker"] = {
                "examples_per_second": round(examples / max(steady), 1),
                "global_batch": config.train.batch_size * results[0]["replicas"],
                "workers": results,
            }
    one, two = report["1_worker"]["examples_per_second"], report["2_worker"]["examples_per_second"]
    return {"metric": "speedup_2_workers", "value": round(two / one, 3), **report,
            "train_examples": examples, "epochs": epochs,
            "note": "both workers on this one 2-core machine, loopback gRPC; per-replica batch "
                    f"{config.train.batch_size}", "config": config_lib.to_dict(config)}
