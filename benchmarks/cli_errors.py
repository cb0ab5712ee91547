"""How fast the command line answers a mistake: fresh ``python cli.py`` processes for
argument, path and config errors and for ``--help``, each timed from process start to
exit (the median of ``repeats``), beside the time a process takes only to import
TensorFlow, which every one of these commands paid before they were answered first."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "missing --data": ["train", "sentiment", "--data", "/nonexistent/reviews.csv"],
    "misspelled --set key": ["train", "textgen", "--set", "lstm.unitz=3"],
    "--set value out of range": ["train", "speech_commands", "--set", "lstm.units=0"],
    "missing --config file": ["train", "protein_ss", "--config", "/nonexistent/best_config.json"],
    "unknown task": ["train", "sentimnt"],
    "unknown run": ["evaluate", "forecasting", "--run", "nope", "--runs-dir", "/nonexistent"],
    "train --help": ["train", "--help"],
    "predict forecasting --help": ["predict", "forecasting", "--help"],
}


def timed(args: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - started, result.returncode


def run(quick: bool) -> dict:
    repeats = 3 if quick else 7
    rows = {}
    for name, args in COMMANDS.items():
        runs = [timed(["cli.py", *args]) for _ in range(repeats)]
        rows[name] = {"seconds": round(statistics.median(seconds for seconds, _ in runs), 3),
                      "exit_code": runs[0][1]}
    tensorflow = statistics.median(timed(["-c", "from lstmkit.quiet import import_tensorflow_quietly as i; i()"])[0]
                                   for _ in range(repeats))
    slowest = max(row["seconds"] for row in rows.values())
    return {"metric": "slowest_answer_seconds", "value": slowest, "commands": rows,
            "import_tensorflow_seconds": round(tensorflow, 3), "repeats": repeats,
            "goal": "< 2 s on a quiet machine"}
