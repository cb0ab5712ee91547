"""Accuracy and speed benchmarks: ``python benchmarks/run.py NAME [--quick]``.

Each benchmark trains through the same ``lstmkit.training.train`` as the CLI, on real
data from ``../shared/data`` (or ``$LSTMKIT_DATA``), and prints, as its last line, one
JSON object with at least ``benchmark``, ``metric``, ``value`` and ``seconds``. The
sentiment benchmarks also fit the NBSVM-bi baseline (``benchmarks/nbsvm.py``, needs
``pip install -e ".[bench]"``) on the same training split and report the model's margin
over it; ``sentiment_baselines`` fits only the baselines.
Figures go into BENCHMARKS.md with the date, the machine and this command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DATA = Path(os.environ.get("LSTMKIT_DATA", ROOT.parent / "shared" / "data"))

# name -> (task, data source, overrides for the full run, overrides for --quick, data note).
# The MR sizes come from the exploration runs listed in BENCHMARKS.md; regularization
# is the task default (the winner of regularizer_ablation).
MR_MODEL = [
    "max_length=64", "embedding_dim=300", "lstm.units=100", "train.batch_size=50",
]
# SST-2: GLUE's train file (sentences and their phrases) is split into train and
# validation; the test split is the labelled GLUE test file (data.test_source).
SST2_TEST = DATA / "sst2_glue" / "test-labeled.tsv"
# Character language model sizes: see BENCHMARKS.md (textgen) for the measurements.
TEXTGEN_QUICK = ["lstm.units=256", "train.epochs=9", "lstm.input_dropout=0.1", "lstm.output_dropout=0.1",
                 "lstm.weight_drop=0.1"]
TEXTGEN_FULL: list[str] = []  # the task's defaults
# Keyword spotting: the task's defaults, with the epochs each run can afford. The full
# runs go to the end of their cosine schedule (patience = epochs): the last, low-rate
# epochs are where it settles. --quick of speech_commands12 is fold 0 of the full run.
SPEECH_FSDD_QUICK = ["train.epochs=30"]
SPEECH_FSDD_FULL = ["train.epochs=80", "train.patience=80"]
SPEECH_12_FULL = ["train.epochs=40", "train.patience=40"]
SPEECH_12_QUICK = SPEECH_12_FULL
SPEECH_12_ARCHIVE = DATA / "speech_commands_v002_test" / "speech_commands_test_set_v0.02.tar.xz"
SPEECH_12_FOLDS = 5
# Leave one speaker out over FSDD's six speakers: the speech_fsdd --quick training (with
# the task's default volume perturbation: its speakers' levels differ 13-fold; BENCHMARKS.md).
SPEECH_FSDD_ARCHIVE = DATA / "fsdd" / "fsdd_recordings.tar.xz"
SPEECH_FSDD_SPEAKERS = SPEECH_FSDD_QUICK
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
# Public-domain English outside tiny shakespeare, scored by the textgen benchmarks
# (benchmarks/texts/README.md says what it is).
UNSEEN_TEXT = ROOT / "benchmarks" / "texts" / "public_domain_english.txt"
# The sample printed with a textgen benchmark.
SAMPLE = {"prompt": "ROMEO:", "length": 300, "temperature": 0.8, "seed": 1}

BENCHMARKS = {
    "sentiment_mr": (
        "sentiment",
        DATA / "mr_polarity",
        MR_MODEL + ["train.epochs=20", "train.patience=4"],
        MR_MODEL + ["train.epochs=8", "train.patience=3"],
        "MR (Pang & Lee 2005), seeded 10% test split (data.split_seed=1337), no pretrained vectors",
    ),
    "sentiment_imdb": (
        "sentiment",
        DATA / "imdb_aclimdb" / "aclImdb_labeled.tar.xz",
        ["max_length=500", "train.epochs=10", "train.patience=2"],
        ["max_length=200", "train.epochs=3", "train.patience=1"],
        "aclImdb train (25k, 10% held out for validation) -> aclImdb test (25k), no pretrained vectors",
    ),
    "sentiment_sst2": (
        "sentiment",
        DATA / "sst2_glue" / "train.tsv",
        MR_MODEL + ["train.epochs=6", "train.patience=2", f"data.test_source={SST2_TEST}"],
        MR_MODEL + ["train.epochs=3", "train.patience=2", f"data.test_source={SST2_TEST}"],
        "GLUE SST-2 train (67,349, 10% held out for validation) -> the 1,821 labelled SST-2 test sentences, "
        "no pretrained vectors",
    ),
    "textgen_shakespeare": (
        "textgen",
        DATA / "tinyshakespeare" / "input.txt",
        TEXTGEN_FULL,
        TEXTGEN_QUICK,
        "tiny shakespeare (1,115,394 characters): first 90% train, last 10% validation, "
        "scored in 256-character windows from a zero state (nanoGPT's split and block size)",
    ),
    "speech_fsdd": (
        "speech_commands",
        SPEECH_FSDD_ARCHIVE,
        SPEECH_FSDD_FULL,
        SPEECH_FSDD_QUICK,
        "Free Spoken Digit Dataset, official split: indices 0-4 test (300), the rest train "
        "(10% of it validation); 8 kHz resampled to 16 kHz in the graph",
    ),
}


# textgen_batching compares the two ways of cutting the text on a smaller model.
TEXTGEN_BATCHING = ["lstm.units=256", "train.batch_size=32", "data.sequence_length=128",
                    "lstm.input_dropout=0.1", "lstm.output_dropout=0.1", "lstm.weight_drop=0.1"]

# Benchmarks that are not one training run.
SPECIAL = ("lstm_throughput", "regularizer_ablation", "textgen_batching", "speech_commands12", "speech_fsdd_speakers",
           "protein_cb513",
           "tune_sentiment_mr", "multiworker_throughput", "serving_load", "sentiment_baselines",
           "forecasting_builtin", "cli_errors", "forecasting_m4_hourly")


def run_special(name: str, quick: bool, seed: int, overrides: list[str]) -> dict:
    started = time.perf_counter()
    if name == "lstm_throughput":
        from benchmarks import lstm_throughput

        result = lstm_throughput.run(quick=quick, seed=seed)
    elif name == "protein_cb513":
        result = protein_cb513(quick, seed, overrides)
    elif name == "forecasting_m4_hourly":
        from benchmarks import forecasting_m4

        result = forecasting_m4.run(DATA / "m4_hourly", quick, seed, overrides)
    elif name == "cli_errors":
        from benchmarks import cli_errors

        result = cli_errors.run(quick)
    elif name == "forecasting_builtin":
        from benchmarks import forecasting_builtin

        result = forecasting_builtin.run(quick, seed, overrides)
    elif name in ("tune_sentiment_mr", "multiworker_throughput"):
        from benchmarks import scale_out

        # The MR benchmark's --quick protocol is the default configuration both start from.
        mr_quick = BENCHMARKS["sentiment_mr"][3] + overrides
        result = getattr(scale_out, name)(DATA / "mr_polarity", mr_quick, quick, seed)
    elif name == "serving_load":
        from benchmarks import serving_load

        result = serving_load.run(DATA, quick, seed)
    elif name == "speech_commands12":
        result = speech_cross_validation(quick, seed, overrides)
    elif name == "speech_fsdd_speakers":
        result = speech_fsdd_speakers(quick, seed, overrides)
    elif name == "sentiment_baselines":
        require_sklearn()
        result = sentiment_baselines(quick, overrides)
    elif name == "textgen_batching":
        from benchmarks import textgen_batching

        text = (DATA / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
        result = textgen_batching.run(text, TEXTGEN_BATCHING + overrides, 1 if quick else 2, seed)
    else:
        from benchmarks import regularizer_ablation

        seeds = [seed] if quick else [seed, seed + 1, seed + 2]
        mr_quick = BENCHMARKS["sentiment_mr"][3]
        result = regularizer_ablation.run(mr_quick + overrides, DATA / "mr_polarity", seeds)
    return {"benchmark": name, "quick": quick, **result,
            "seconds": round(time.perf_counter() - started, 1)}


# Secondary structure: NetSurfP-2.0 train/validation -> CB513 and TS115, one-hot sequence only.
# Two epochs fit 15 minutes on 2 cores (about 370 s each); the full run's ten take about an hour.
PROTEIN_QUICK = ["train.epochs=2", "train.patience=2"]
PROTEIN_FULL = ["train.epochs=10", "train.patience=10"]
# Test chains identical to a NetSurfP-2.0 training or validation chain (shared/data/README.md).
PROTEIN_OVERLAP = {"CB513|330", "CB513|359", "TS115|80"}


def protein_cb513(quick: bool, seed: int, overrides: list[str]) -> dict:
    """Train on NetSurfP-2.0's training split (validation: its validation split), then
    report Q3 (and Q8 where the model predicts eight states) on CB513 and TS115 without
    the three chains that also occur in the training data."""
    from lstmkit import config as config_lib
    from lstmkit.training import train
    from lstmkit.registry import get_task
    from lstmkit.tasks.protein_ss import data as protein_data

    task = get_task("protein_ss")
    config = config_lib.apply_overrides(task.default_config(), (PROTEIN_QUICK if quick else PROTEIN_FULL) + overrides)
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as runs_root:
        result = train(task, config, str(DATA / "protein_netsurfp2_flip"), runs_root=runs_root, seed=seed,
                       command=" ".join(sys.argv))
        model, trained, metrics = result.model, result.task, result.metrics
        curve = [round(float(row["val_accuracy"]), 4) for row in result.history]
    scores = {}
    for name, path in (("cb513", DATA / "protein_cb513" / "CB513_HHblits.csv"),
                       ("ts115", DATA / "protein_ts115" / "TS115_HHblits.csv")):
        chains = [chain for chain in protein_data.read_hhblits_csv(path) if chain.id not in PROTEIN_OVERLAP]
        metrics = trained.evaluate(model, trained.chains_dataset(chains))
        scores[name] = {"q3": round(metrics["q3"], 4), "per_chain_q3": round(metrics["per_chain_accuracy"], 4),
                        "sov": round(metrics["sov"], 4),
                        "chains": metrics["chains"], "residues": metrics["residues"]}
    return {"metric": "cb513_q3", "value": scores["cb513"]["q3"], "ts115_q3": scores["ts115"]["q3"],
            "scores": scores, "new364_q3": round(metrics["test"]["q3"], 4),
            "validation_q3": round(metrics["validation"]["q3"], 4), "epochs_run": len(curve),
            "validation_q3_by_epoch": curve,
            "data": "train: NetSurfP-2.0 train (9,712 chains, long ones cut at data.max_train_length), "
                    "validation: its 1,080; test: CB513 (509 of 511) and TS115 (114 of 115), overlapping chains removed; "
                    "residues with disorder 0 not scored; one-hot sequence only",
            "config": config_lib.to_dict(config)}


def speech_cross_validation(quick: bool, seed: int, overrides: list[str]) -> dict:
    """The 4,890 real Speech Commands test clips, 12 classes, 5-fold cross-validation by
    speaker (each fold's speakers are tested once; 10% of the others validate);
    --quick runs fold 0 only."""
    settings = SPEECH_12_QUICK if quick else SPEECH_12_FULL
    return speaker_folds_benchmark(
        SPEECH_12_ARCHIVE, SPEECH_12_FOLDS, 1 if quick else SPEECH_12_FOLDS, settings, seed, overrides,
        "Speech Commands v0.02 test set (4,890 clips, 672 speakers), "
        f"{SPEECH_12_FOLDS}-fold cross-validation by speaker (data.split_seed=1337)")


def speech_fsdd_speakers(quick: bool, seed: int, overrides: list[str]) -> dict:
    """The Free Spoken Digit Dataset, leave one speaker out: six folds of one speaker
    each, trained on the other five (10% of their clips validate); --quick runs fold 0."""
    folds = len(FSDD_SPEAKERS)
    return speaker_folds_benchmark(
        SPEECH_FSDD_ARCHIVE, folds, 1 if quick else folds, SPEECH_FSDD_SPEAKERS, seed, overrides,
        f"Free Spoken Digit Dataset (3,000 clips, {folds} speakers), leave one speaker out: each fold "
        "tests one speaker's 500 clips after training on the other five (the official split is not used)")


def speaker_folds_benchmark(source: Path, folds: int, run_folds: int, settings: list[str], seed: int,
                            overrides: list[str], data: str) -> dict:
    """Train and test ``run_folds`` of the ``folds`` speaker folds of one source: each
    fold's accuracy (and, on FSDD, its test speaker), the recall of ``_unknown_`` and
    ``_silence_`` where the labels have them, then the mean and sample sd over folds and
    the pooled figures of every tested clip."""
    import numpy as np

    from lstmkit import config as config_lib
    from lstmkit.training import train
    from lstmkit.registry import get_task

    task = get_task("speech_commands")
    results, pooled = [], None
    for fold in range(run_folds):
        config = config_lib.apply_overrides(
            task.default_config(), settings + [f"data.folds={folds}", f"data.fold={fold}"] + overrides)
        with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as runs_root:
            result = train(task, config, str(source), runs_root=runs_root, seed=seed, command=" ".join(sys.argv))
            epochs = len(result.history)
        test = result.metrics["test"]
        confusion = np.array(test["confusion_matrix"])
        pooled = confusion if pooled is None else pooled + confusion
        # --set data.fold=K runs fold K (with --quick, alone).
        results.append({"fold": config.data.fold, "test_accuracy": round(test["accuracy"], 4),
                        "test_examples": test["examples"],
                        **{f"{label.strip('_')}_recall": round(test["per_class"][label]["recall"], 4)
                           for label in ("_unknown_", "_silence_")
                           if test["per_class"].get(label, {}).get("support")},
                        "validation_accuracy": round(result.metrics["validation"]["accuracy"], 4),
                        "epochs_run": epochs})
        if source == SPEECH_FSDD_ARCHIVE:
            results[-1]["test_speaker"] = fsdd_speaker_of_fold(config.data.fold, config.data.split_seed)
        print(json.dumps(results[-1]), flush=True)
    from lstmkit.scoring import confusion_metrics

    labels = test["labels"]
    truth = np.repeat(np.arange(len(labels)), pooled.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(len(labels)), row) for row in pooled])
    all_tested = confusion_metrics(truth, predicted, labels)
    accuracies = np.array([fold["test_accuracy"] for fold in results])
    return {"metric": "test_accuracy_mean", "value": round(float(accuracies.mean()), 4),
            "test_accuracy_std": round(float(accuracies.std(ddof=1)), 4) if len(results) > 1 else None,
            "pooled": {"accuracy": round(all_tested["accuracy"], 4), "examples": all_tested["examples"],
                       "recall": {label: round(c["recall"], 4) for label, c in all_tested["per_class"].items()}},
            "folds": results, "data": data, "config": config_lib.to_dict(config)}


def fsdd_speaker_of_fold(fold: int, split_seed: int) -> str:
    """The FSDD speaker that ``data.folds=6``, ``data.fold=fold`` tests (the task deals
    the sorted speakers into folds in a seeded order)."""
    from lstmkit.tasks.speech_commands.data import speaker_folds

    return next(s for s, f in speaker_folds(list(FSDD_SPEAKERS), len(FSDD_SPEAKERS), split_seed).items() if f == fold)


def textgen_summary(task, result, config, source) -> dict:
    """Validation nats/bits per character, training throughput, and a sample."""
    from lstmkit.data import count

    validation = result.metrics["validation"]
    rows = result.history
    train_seconds = sum(float(row["train_seconds"]) for row in rows)
    # Every epoch trains on the same windows: count them once from the data.
    splits = result.task.load_data(str(source))
    characters = count(splits.train) * config.data.sequence_length * len(rows)
    model = result.model
    unseen = unseen_text_score(result.task, model)
    sample = "".join(result.task.generate(model, SAMPLE["prompt"], SAMPLE["length"],
                                          {"temperature": SAMPLE["temperature"], "top_k": 0, "top_p": 1.0},
                                          SAMPLE["seed"]))
    return {
        "metric": "validation_nats_per_char",
        "value": round(validation["nats_per_char"], 4),
        "validation_bits_per_char": round(validation["bits_per_char"], 4),
        "validation_perplexity": round(validation["perplexity"], 3),
        "train_characters_per_second": round(characters / train_seconds),
        "train_seconds": round(train_seconds, 1),
        "unseen_text": unseen,
        "sample": {**SAMPLE, "text": SAMPLE["prompt"] + sample},
    }


def unseen_text_score(task, model) -> dict:
    """Nats and bits per character on English the model never saw (benchmarks/texts/),
    scored like validation: windows of data.validation_length from a zero state
    (``task``: bound to the run's config and preprocessing)."""
    import tensorflow as tf

    from lstmkit.tasks.textgen import data as textgen_data

    inputs, targets = textgen_data.windows(UNSEEN_TEXT.read_text(encoding="utf-8"),
                                           task.config.data.validation_length)
    dataset = task.encode_labels(tf.data.Dataset.from_tensor_slices((inputs, targets)))
    metrics = task.evaluate(model, dataset)
    return {"text": UNSEEN_TEXT.relative_to(ROOT).as_posix(), "characters": metrics["characters"],
            "nats_per_char": round(metrics["nats_per_char"], 4), "bits_per_char": round(metrics["bits_per_char"], 4)}


def require_sklearn() -> None:
    """The sentiment benchmarks' baseline needs scikit-learn: say so before any training."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        print('benchmarks/run.py: the NBSVM baseline of the sentiment benchmarks needs scikit-learn; '
              'install it with pip install -e ".[bench]"', file=sys.stderr)
        sys.exit(2)


def texts_and_labels(dataset) -> tuple[list[str], list[int]]:
    """A sentiment split (a dataset of raw text and 0/1 label) as two lists."""
    texts, labels = [], []
    for text, label in dataset.as_numpy_iterator():
        texts.append(text.decode("utf-8"))
        labels.append(int(label))
    return texts, labels


def sentiment_baseline(splits) -> dict:
    """NBSVM-bi fitted on the training split only (the model's validation split is held
    out of both) and scored on the test split; ``seconds``: fitting and scoring."""
    from benchmarks import nbsvm

    train, test = texts_and_labels(splits.train), texts_and_labels(splits.test)
    return {**nbsvm.fit_and_score(*train, *test), "train_examples": len(train[0]), "test_examples": len(test[0])}


def sentiment_baselines(quick: bool, overrides: list[str]) -> dict:
    """NBSVM-bi alone on every sentiment benchmark's splits (those of its config, with
    --quick's overrides where given), without training a model."""
    from lstmkit import config as config_lib
    from lstmkit.registry import get_task

    task = get_task("sentiment")
    scores = {}
    for name, (task_name, source, full, short, data_note) in BENCHMARKS.items():
        if task_name != "sentiment":
            continue
        config = config_lib.apply_overrides(task.default_config(), (short if quick else full) + overrides)
        splits = task.bind(config).load_data(str(source))
        scores[name] = {**sentiment_baseline(splits), "data": data_note}
        print(json.dumps({"benchmark": name, **scores[name]}), flush=True)
    return {"metric": "baseline_test_accuracy", "baselines": scores}


def sentiment_padding(task, config, splits) -> dict:
    """The share of padded LSTM steps in one epoch of training batches, plainly shuffled
    (data.bucket_boundaries empty) and grouped by length (as configured, or geometric
    boundaries when the config has none)."""
    import dataclasses

    from lstmkit.data import padded_share
    from lstmkit.tasks.sentiment.model import token_count

    count = token_count(config)
    plain = dataclasses.replace(config, data=dataclasses.replace(config.data, bucket_boundaries=()))
    bucketed = config if config.data.bucket_boundaries else dataclasses.replace(
        config, data=dataclasses.replace(config.data, bucket_boundaries=None))
    shares = {}
    for name, settings in (("shuffled", plain), ("bucketed", bucketed)):
        batches = task.bind(settings).batches(splits.train, training=True, seed=0)
        lengths = batches.map(lambda texts, labels: tf_minimum_lengths(texts, count, config.max_length))
        shares[name] = round(padded_share(batch.numpy() for batch in lengths), 4)
    return shares


def tf_minimum_lengths(texts, count, cap):
    import tensorflow as tf

    return tf.minimum(tf.map_fn(count, texts, fn_output_signature=tf.int32), cap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted([*BENCHMARKS, *SPECIAL]))
    parser.add_argument("--quick", action="store_true", help="the short version (minutes on 2 cores)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config overrides, applied last")
    args = parser.parse_args()
    if args.name in SPECIAL:
        print(json.dumps(run_special(args.name, args.quick, args.seed, args.overrides)))
        return

    from lstmkit import config as config_lib
    from lstmkit.training import train
    from lstmkit.registry import get_task

    task_name, source, full, quick, data_note = BENCHMARKS[args.name]
    if task_name == "sentiment":
        require_sklearn()
    task = get_task(task_name)
    config = config_lib.apply_overrides(task.default_config(), (quick if args.quick else full) + args.overrides)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as runs_root:
        result = train(task, config, str(source), runs_root=runs_root, seed=args.seed,
                       command=" ".join(sys.argv))
        seconds = time.perf_counter() - started
        history = (result.folder / "history.csv").read_text().strip().splitlines()
        trained_on = result.manifest["train_fingerprint_sha256"]
        metrics = result.metrics
        if task_name == "textgen":
            summary = textgen_summary(task, result, config, source)
    if task_name == "textgen":
        print(json.dumps({"benchmark": args.name, "quick": args.quick, **summary,
                          "seconds": round(seconds, 1), "epochs_run": len(history) - 1,
                          "data": data_note, "seed": args.seed, "config": config_lib.to_dict(config)}))
        return
    test = metrics["test"]
    extra = {}
    if task_name == "sentiment":
        from lstmkit.data import fingerprint

        # The same seeded splits as the run's: the baseline learns from exactly its training examples.
        splits = task.bind(config).load_data(str(source))
        if fingerprint(splits.train) != trained_on:
            raise RuntimeError("the reloaded training split differs from the one the model trained on")
        baseline = sentiment_baseline(splits)
        extra = {"padded_share": sentiment_padding(task, config, splits),
                 "baseline": baseline["name"], "baseline_accuracy": baseline["accuracy"],
                 "baseline_seconds": baseline["seconds"],
                 "margin": round(round(test["accuracy"], 4) - baseline["accuracy"], 4)}
    print(json.dumps({
        "benchmark": args.name,
        "quick": args.quick,
        "metric": "test_accuracy",
        "value": round(test["accuracy"], 4),
        "seconds": round(seconds, 1),
        # F1 of the positive class for two classes, the macro average otherwise.
        "test_f1": round(test.get("f1", test["macro_f1"]), 4),
        "validation_accuracy": round(metrics["validation"]["accuracy"], 4),
        "epochs_run": len(history) - 1,
        "test_examples": test["examples"],
        **extra,
        "data": data_note,
        "seed": args.seed,
        "config": config_lib.to_dict(config),
    }))


if __name__ == "__main__":
    main()
