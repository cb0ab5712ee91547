"""``regularizer_ablation``: MR test accuracy with no regularization, each technique
alone, and combinations, over several seeds.

Every variant starts from the MR model of ``sentiment_mr --quick`` (seeded 10% test
split) with every regularizer off and a shorter budget (at most 6 epochs, early stopping
patience 2: 30 runs fit in about 45 minutes on 2 cores), then turns on what its row
names. Rates are the usual published ones (AWD-LSTM, Gal & Ghahramani, zoneout).
Each finished run prints one JSON line, so a long run can be read while it goes.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

BUDGET = ["train.epochs=6", "train.patience=2"]
NO_REGULARIZATION = [
    "embedding_dropout=0", "classifier_dropout=0", "lstm.input_dropout=0", "lstm.output_dropout=0",
    "lstm.weight_drop=0", "lstm.l2=0",
]
VARIANTS = {
    "none": [],
    "embedding_dropout=0.1": ["embedding_dropout=0.1"],
    "input_dropout=0.5 (variational)": ["lstm.input_dropout=0.5"],
    "output_dropout=0.5 (variational)": ["lstm.output_dropout=0.5"],
    "weight_drop=0.5": ["lstm.weight_drop=0.5"],
    "zoneout 0.1 (cell and hidden)": ["lstm.zoneout_cell=0.1", "lstm.zoneout_hidden=0.1"],
    "AR 2 + TAR 1": ["lstm.activation_l2=2", "lstm.temporal_activation_l2=1"],
    "SWA from epoch 2": ["train.weight_averaging=swa", "train.averaging_start_epoch=2"],
    "input+output+classifier 0.5": ["lstm.input_dropout=0.5", "lstm.output_dropout=0.5",
                                    "classifier_dropout=0.5"],
    "all dropouts (emb .1, in .5, wd .5, out .5, cls .5)": [
        "embedding_dropout=0.1", "lstm.input_dropout=0.5", "lstm.weight_drop=0.5",
        "lstm.output_dropout=0.5", "classifier_dropout=0.5"],
}


def run(base_overrides: list[str], source, seeds: list[int], only: list[str] | None = None) -> dict:
    from lstmkit import config as config_lib
    from lstmkit.training import train
    from lstmkit.registry import get_task

    task = get_task("sentiment")
    rows = {}
    for name, overrides in VARIANTS.items():
        if only and name not in only:
            continue
        config = config_lib.apply_overrides(task.default_config(),
                                            base_overrides + BUDGET + NO_REGULARIZATION + overrides)
        accuracies = []
        for seed in seeds:
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="lstmkit-ablation-") as runs_root:
                result = train(task, config, str(source), runs_root=runs_root, seed=seed,
                               command=" ".join(sys.argv))
            accuracy = result.metrics["test"]["accuracy"]
            accuracies.append(accuracy)
            print(json.dumps({"variant": name, "seed": seed, "test_accuracy": round(accuracy, 4),
                              "seconds": round(time.perf_counter() - started, 1)}), flush=True)
        rows[name] = {
            "mean": round(statistics.mean(accuracies), 4),
            "stdev": round(statistics.stdev(accuracies), 4) if len(accuracies) > 1 else None,
            "accuracies": [round(a, 4) for a in accuracies],
            "overrides": overrides,
        }
    print("\n| variant | mean test accuracy | sd | per seed |\n|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['mean']:.4f} | {row['stdev'] if row['stdev'] is not None else '-'} "
              f"| {', '.join(f'{a:.4f}' for a in row['accuracies'])} |")
    best = max(rows, key=lambda name: rows[name]["mean"])
    return {"metric": "best_mean_test_accuracy", "value": rows[best]["mean"], "best_variant": best,
            "seeds": seeds, "variants": rows}
