"""The lstmkit command line: ``python cli.py VERB TASK [options]`` (or ``lstmkit VERB TASK``).

This file only parses arguments and calls ``lstmkit`` with a task. Task modules and
configs import no TensorFlow: every command checks its arguments, paths and config
first and imports TensorFlow (``import_tensorflow_quietly``) only then, so ``--help``
and a mistake on the command line are answered in well under two seconds.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time

import click

import lstmkit
from lstmkit import hints
from lstmkit.quiet import import_tensorflow_quietly
from lstmkit.registry import get_task, task_names
from lstmkit.task import MAX_GENERATED_LENGTH, MAX_SERVED_GENERATED_LENGTH


class TaskChoice(click.Choice):
    """The installed tasks, read whenever a command line is checked rather than once at
    import: a process that imported lstmkit.cli still accepts a task a package registered
    afterwards (the help texts below list the tasks installed at import)."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self):
        return task_names()

    @choices.setter
    def choices(self, value):
        pass  # click.Choice.__init__ stores its choices; the installed tasks are read live


TASK_NAMES = task_names()

TASK_ARGUMENT = click.argument("task_name", metavar="TASK", type=TaskChoice())
DATA_OPTION = click.option(
    "--data", "data_source", default=None,
    help="Data source: tfds:NAME, a folder, an archive or a file (task-specific; default: the task's own).",
)
RUN_OPTION = click.option(
    "--run", "run", default="latest", show_default=True,
    help="Which trained run to use: 'latest', a run id, or a run folder.",
)
RUNS_DIR_OPTION = click.option("--runs-dir", default="runs", show_default=True, help="Where runs are kept.")
SEED_OPTION = click.option("--seed", type=int, default=42, show_default=True,
                           help="Random seed (CPU runs repeat exactly).")
# Every verb's --help ends with the tasks it takes.
TASK_EPILOG = f"TASK is one of: {', '.join(TASK_NAMES)}."


def config_options(command):
    """--preset, --config and --set: where a run's config comes from."""
    command = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override one config value, e.g. --set lstm.units=256 (repeatable).",
    )(command)
    command = click.option("--config", "config_file", default=None, metavar="FILE",
                           help="A config JSON file (e.g. best_config.json from tune).")(command)
    command = click.option("--preset", type=click.Choice(["default", "tiny"]), default="default",
                           show_default=True, help="Starting config; 'tiny' is for smoke tests.")(command)
    return command


def resolve_config(task, preset, config_file, overrides):
    from lstmkit import config as config_lib

    config = task.tiny_config() if preset == "tiny" else task.default_config()
    if config_file:
        config = config_lib.merge(config, config_lib.load_json(config_file))
    return config_lib.apply_overrides(config, list(overrides))


def open_run(task, run, runs_dir):
    """The run ``run`` of ``task`` (its files read, its model not yet loaded)."""
    from lstmkit.run import Run

    return Run.open(task, run, runs_dir)


def command_line() -> str:
    return shlex.join([os.path.basename(sys.argv[0])] + sys.argv[1:])


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {seconds} s" if hours else f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Train, evaluate, tune and export regularized LSTM models.\n\n\b\n"
    f"Tasks: {', '.join(TASK_NAMES)}\n"
    f"Start with: {hints.first_run()}",
)
@click.version_option(lstmkit.__version__, "--version", prog_name="lstmkit", message="%(prog)s %(version)s")
@click.pass_context
def cli(context):
    if context.invoked_subcommand is None:  # a bare `python cli.py` is a request for help
        click.echo(context.get_help())


@cli.command(epilog=TASK_EPILOG)
@TASK_ARGUMENT
@DATA_OPTION
@config_options
@SEED_OPTION
@RUNS_DIR_OPTION
@click.option("--resume", default=None, metavar="RUN",
              help="Continue an unfinished run ('latest' or its id) from its last completed epoch.")
@click.option("--new-run", is_flag=True,
              help="Start a new run even beside an unfinished one of the same config, seed and data (without "
                   "it, train stops and names the unfinished run and its --resume command).")
@click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default=None,
              help="tf.distribute strategy: mirrored uses every local GPU, multiworker reads the cluster "
                   "from TF_CONFIG (default: 'default', or the resumed run's). train.batch_size is per replica.")
def train(task_name, data_source, preset, config_file, overrides, seed, runs_dir, resume, new_run, strategy):
    """Train TASK and write a run folder under runs/TASK/."""
    task = get_task(task_name)
    if resume is not None and (data_source or config_file or overrides or preset != "default"):
        raise click.UsageError("--resume continues a run with its own data and config; drop --data/--config/--set/--preset")
    if resume is not None and new_run:
        raise click.UsageError("--resume continues a run and --new-run starts one; choose one of them")
    config = resolve_config(task, preset, config_file, overrides)
    source = data_source or task.default_data
    if resume is None:
        from lstmkit.data import check_source_exists

        check_source_exists(source, task.sources_hint)
    import_tensorflow_quietly()
    from lstmkit import runs
    from lstmkit.training import train as train_task

    # On stdout with the progress bar: stderr holds nothing but the one-line error of bad input.
    click.echo(f"reading data: {source}" if resume is None else f"resuming run {resume}: reading its data again")
    if resume is None:
        from lstmkit import precision

        policy, why = precision.resolve(config.train.precision)
        click.echo(f"precision: {policy} ({why})")
    started, started_wall = time.monotonic(), time.time()
    try:
        # The same command again after a kill would silently start over beside the killed
        # run: it is refused instead, naming that run and its --resume command.
        run = train_task(task, config, source, runs_root=runs_dir, seed=seed, command=command_line(),
                            resume=resume, strategy=strategy, refuse_duplicate=not new_run)
    except KeyboardInterrupt:
        unfinished = runs.unfinished_run_since(runs_dir, task.name, started_wall)
        if unfinished is None:
            click.echo("Interrupted before the run folder was written; nothing to resume.", err=True)
        else:
            resume_line = hints.resume_run(task.name, unfinished, runs_dir)
            click.echo(f"Interrupted; the unfinished run is {unfinished}. Continue it from its last finished "
                       f"epoch with: {resume_line}", err=True)
        sys.exit(130)
    monitor, direction = task.objective
    best = runs.best_epoch(run.folder / "history.csv", monitor, direction)
    click.echo(f"run:  {run.folder}")
    if best is not None:
        epoch, value, epochs_run = best
        click.echo(f"best: epoch {epoch} of {epochs_run} ({monitor} {value:.4f}), restored for the results below")
    click.echo("test: " + format_metrics(run.metrics["test"]))
    click.echo(f"took: {format_duration(time.monotonic() - started)}")
    if preset == "tiny":
        click.echo("note: --preset tiny is a smoke test of the pipeline (a small model, a slice of the data, a few "
                   "epochs); its scores say nothing about what the task reaches. Drop --preset tiny for real figures.")
    click.echo(f"next: {hints.evaluate_run(task.name, run.folder, runs_dir)}\n"
               f"      {hints.export_run(task.name, run.folder, runs_dir)}")


def format_metrics(metrics: dict) -> str:
    return ", ".join(f"{key}={value:.4f}" for key, value in metrics.items() if isinstance(value, float))


@cli.command(epilog=TASK_EPILOG)
@TASK_ARGUMENT
@RUN_OPTION
@DATA_OPTION
@click.option("--split", type=click.Choice(["test", "validation", "train", "all"]), default="test", show_default=True,
              help="Which part of the data; 'all' scores every example of it (an outside test file of any size).")
@click.option("--set", "overrides", multiple=True, metavar="data.KEY=VALUE",
              help="How to read --data, where it differs from the run's data, e.g. "
                   "--set data.label_column=stars (repeatable; data.* keys only).")
@RUNS_DIR_OPTION
def evaluate(task_name, run, data_source, split, overrides, runs_dir):
    """Evaluate a trained run on a data split; prints and saves the metrics."""
    task = get_task(task_name)
    opened = open_run(task, run, runs_dir)
    if data_source:
        from lstmkit.data import check_source_exists

        check_source_exists(data_source, task.sources_hint)
    import_tensorflow_quietly()
    from lstmkit.evaluation import evaluate_run

    metrics, report = evaluate_run(opened, data_source, split, list(overrides))
    shown_report = task.report
    counts = "".join(f", {metrics[key]:,} {words}" for key, words in shown_report.counts.items() if key in metrics)
    click.echo(f"{metrics['split']} split of {metrics['data']}: {metrics['examples']} examples{counts}")
    shown = [key for key in shown_report.metrics if key in metrics]
    width = max([14, *map(len, shown)])
    for key in shown:
        click.echo(f"  {key:<{width}} {metrics[key]:.4f}")
    if "confusion_matrix" in metrics:
        labels = metrics["labels"]
        width = max(len(str(cell)) for cell in [*labels, *sum(metrics["confusion_matrix"], [])]) + 2
        click.echo("confusion matrix (rows: true, columns: predicted)")
        click.echo(" " * width + "".join(f"{label:>{width}}" for label in labels))
        for label, row in zip(labels, metrics["confusion_matrix"]):
            click.echo(f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    click.echo(f"saved: {report}")


class TaskOptionsCommand(click.Command):
    """A verb whose TASK adds options of its own (``ExtraPredictInputs``): they are
    added once the task is known from the command line, so ``predict TASK --help``
    lists them."""

    def parse_args(self, context, args):
        from lstmkit.task import predict_inputs

        self.params = [param for param in self.params if not getattr(param, "from_task", False)]
        installed = task_names()
        name = next((arg for arg in args if arg in installed), None)
        if name is not None:
            declarations = predict_inputs(get_task(name))
            for declared in declarations.files:
                option = click.Option([f"--{declared.name.replace('_', '-')}", declared.name], metavar="FILE",
                                      default=None, help=declared.help)
                option.from_task = True
                self.params.insert(3, option)
            for declared in declarations.options:
                option = click.Option([f"--{declared.name.replace('_', '-')}", f"option_{declared.name}"],
                                      type=declared.type, default=None, help=declared.help)
                option.from_task = True
                self.params.insert(3, option)
        return super().parse_args(context, args)


@cli.command(cls=TaskOptionsCommand, epilog=TASK_EPILOG + " A task may add options of its own: see predict TASK --help.")
@TASK_ARGUMENT
@click.argument("inputs", nargs=-1)
@click.option("--file", "input_file", type=click.Path(allow_dash=True), default=None,
              help="Read one input per line from FILE ('-' for stdin); blank lines are skipped. "
                   "(A task that reads whole files, such as forecasting, takes FILE as one input.)")
@RUN_OPTION
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one tab-separated line per input; json: JSON Lines, one object per input.")
@RUNS_DIR_OPTION
def predict(task_name, inputs, input_file, run, output_format, runs_dir, **task_files):
    """Predict INPUTS (or lines of --file, or stdin) with a trained run."""
    from lstmkit.data import read_input_text
    from lstmkit.task import predict_inputs

    task = get_task(task_name)
    declarations = predict_inputs(task)
    items = list(inputs)
    options = {declared.name: task_files.pop(f"option_{declared.name}", None) for declared in declarations.options}
    if input_file is not None and declarations.file_is_one_input:
        items.append(read_input_text(input_file) if input_file == "-" else input_file)
    elif input_file is not None:
        items += non_blank_lines(read_input_text(input_file))
    for declared in declarations.files:
        if task_files.get(declared.name) is not None:
            items += declared.read(task_files[declared.name])
    if input_file is None and not items and not any(task_files.values()) and not sys.stdin.isatty():
        text = read_input_text("-")
        items = [text] if declarations.file_is_one_input and text.strip() else non_blank_lines(text)
    if not items:
        raise click.UsageError("nothing to predict; pass inputs as arguments, with --file FILE, or on stdin")
    opened = open_run(task, run, runs_dir)
    import_tensorflow_quietly()
    from lstmkit.prediction import predict_run

    predictions = predict_run(opened, items, options)
    for item, reason in predictions.rejected.items():
        shown = "standard input" if "\n" in item.strip() else item if len(item) <= 60 else item[:57] + "..."
        click.echo(f"Error: {shown}: {reason}", err=True)
    for record in predictions.records:
        text = record.pop("text")
        click.echo(json.dumps(record) if output_format == "json" else text)
    if predictions.rejected:
        sys.exit(2)


def non_blank_lines(text: str) -> list[str]:
    """The lines of an input file or stdin that hold something (a trailing blank line
    is not an input)."""
    return [line for line in text.splitlines() if line.strip()]


@cli.command(epilog=TASK_EPILOG)
@TASK_ARGUMENT
@click.option("--prompt", default="", show_default=True,
              help="Text to continue (characters the model never saw are allowed); empty starts a new line.")
@click.option("--length", type=click.IntRange(1, MAX_GENERATED_LENGTH), default=500, show_default=True,
              help="How many characters to generate.")
@click.option("--temperature", type=click.FloatRange(min=0), default=0.8, show_default=True,
              help="Sampling temperature; 0 always picks the most likely character.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sample only among the K most likely characters (0: all).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Sample only among the most likely characters holding P of the probability.")
@click.option("--seed", type=int, default=None, help="Seed for repeatable text (default: a random one, printed).")
@RUN_OPTION
@RUNS_DIR_OPTION
def generate(task_name, prompt, length, temperature, top_k, top_p, seed, run, runs_dir):
    """Generate text with a trained run, printing it as it is produced."""
    import secrets

    from lstmkit.errors import UserError
    from lstmkit.task import Generative

    task = get_task(task_name)
    if not isinstance(task, Generative):
        raise UserError(f"{task.name} is not a generative task; generate works for text generation tasks")
    if seed is None:
        seed = secrets.randbelow(2**31)
    opened = open_run(task, run, runs_dir)
    import_tensorflow_quietly()
    sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    pieces = opened.task.generate(opened.model, prompt, length, sampling, seed)  # refuses a bad prompt first
    if temperature > 0:
        click.echo(f"seed: {seed}", err=True)
    click.echo(prompt, nl=False)
    for piece in pieces:
        click.echo(piece, nl=False)
        sys.stdout.flush()
    click.echo()


@cli.command(epilog=TASK_EPILOG)
@TASK_ARGUMENT
@RUN_OPTION
@click.option("--base-path", "--model-base-path", "base_path", default="saved_models", show_default=True,
              help="Export root (serve's --model-base-path); the model goes to BASE_PATH/TASK/<next version>/.")
@click.option("--format", "export_format", type=click.Choice(["savedmodel", "tflite"]), default="savedmodel",
              show_default=True, help="tflite: a TensorFlow Lite file (built-in ops) in BASE_PATH/TASK_tflite/<version>/.")
@click.option("--max-generate-length", type=click.IntRange(1, MAX_GENERATED_LENGTH),
              default=MAX_SERVED_GENERATED_LENGTH, show_default=True,
              help="Generative tasks: the most the exported model generates per request (checked in the graph, "
                   "so that one request cannot hold a server for minutes).")
@RUNS_DIR_OPTION
def export(task_name, run, base_path, export_format, max_generate_length, runs_dir):
    """Export a trained run as a SavedModel for TensorFlow Serving (or TensorFlow Lite)."""
    opened = open_run(get_task(task_name), run, runs_dir)
    import_tensorflow_quietly()
    from lstmkit.export import export_run, export_tflite

    if export_format == "tflite":
        exported = export_tflite(opened, base_path)
    else:
        exported = export_run(opened, base_path, max_generate_length)
    click.echo(f"exported: {exported}")


@cli.command(epilog=TASK_EPILOG)
@TASK_ARGUMENT
@DATA_OPTION
@config_options
@click.option("--tuner", type=click.Choice(["hyperband", "random", "bayesian"]), default="hyperband", show_default=True,
              help="Keras Tuner's search algorithm.")
@click.option("--max-trials", type=click.IntRange(min=1), default=None,
              help="Trials at most (random and Bayesian: 10 unless given; Hyperband: its brackets unless given).")
@click.option("--max-epochs", type=click.IntRange(min=1), default=None,
              help="Epochs per trial at most (default: the config's train.epochs).")
@click.option("--executions-per-trial", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trainings per trial (averaged), to tell real differences from noise.")
@click.option("--objective", default=None,
              help="What to optimise: val_loss or val_<metric> (default: the task's own, e.g. val_accuracy).")
@SEED_OPTION
@click.option("--trials-per-process", type=click.IntRange(min=0), default=1, show_default=True,
              help="A search on this machine runs its trials in fresh processes, this many each, so "
                   "memory stays flat (a process that fits model after model keeps growing); 0 runs them "
                   "all in this process. (A --role worker runs all of its trials itself.)")
@click.option("--resume", default=None, metavar="SEARCH",
              help="Continue an interrupted search ('latest' or its tune-... id) with its own settings.")
@click.option("--retrain", is_flag=True,
              help="Then train the best configuration on train+validation and evaluate it once on test.")
@click.option("--role", type=click.Choice(["chief", "worker"]), default=None,
              help="Distributed search: the chief serves the oracle at --oracle; workers run trials.")
@click.option("--oracle", "oracle_address", default=None, metavar="HOST:PORT",
              help="The chief's address (the chief listens on it).")
@click.option("--worker-id", default=None, help="This worker's unique name (with --role worker).")
@click.option("--worker-timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Chief: seconds without a word from a worker before its trial is retried elsewhere "
                   "(and, with no trial running, before the search ends).")
@click.option("--connect-timeout", type=click.FloatRange(min=1), default=60, show_default=True,
              help="Worker: seconds to wait for the chief to answer.")
@RUNS_DIR_OPTION
def tune(task_name, data_source, preset, config_file, overrides, tuner, max_trials, max_epochs,
         executions_per_trial, objective, seed, trials_per_process, resume, retrain, role, oracle_address,
         worker_id, worker_timeout, connect_timeout, runs_dir):
    """Search TASK's hyperparameters with Keras Tuner; writes best_config.json."""
    task = get_task(task_name)
    if resume is not None and (data_source or config_file or overrides or preset != "default"):
        raise click.UsageError("--resume continues a search with its own data and config; drop "
                               "--data/--config/--set/--preset")
    from lstmkit.tuning.cluster import SearchCluster, parse_oracle  # no TensorFlow: checked before it loads

    cluster = None
    if role is not None or oracle_address is not None:
        if role is None or oracle_address is None:
            raise click.UsageError("a distributed search needs both --role and --oracle HOST:PORT")
        if role == "worker" and retrain:
            raise click.UsageError("--retrain belongs to the chief, which holds the results")
        host, port = parse_oracle(oracle_address)
    config = resolve_config(task, preset, config_file, overrides)
    source = data_source or task.default_data
    if resume is None:
        from lstmkit.data import check_source_exists

        check_source_exists(source, task.sources_hint)
    import_tensorflow_quietly()
    from lstmkit.tuning import SearchSettings
    from lstmkit.tuning import tune as tune_task

    if role is not None:
        cluster = SearchCluster(role, host, port, worker_id, worker_timeout, connect_timeout)
    settings = SearchSettings(tuner, max_trials, max_epochs, executions_per_trial, objective, seed, trials_per_process)
    result = tune_task(task, config, source, settings, runs_root=runs_dir, command=command_line(),
                       resume=resume, cluster=cluster)
    if role == "worker":
        click.echo(f"worker {worker_id} done: {result.directory}")
        return
    click.echo(f"{'trial':<8}{'score':>10}{'epoch':>7}  hyperparameters")
    for trial in result.trials[:10]:
        score = "-" if trial["score"] is None else f"{trial['score']:.4f}"
        epoch = "-" if trial["best_epoch"] is None else str(trial["best_epoch"])
        shown = {key: value for key, value in trial["hyperparameters"].items() if not key.startswith("tuner/")}
        click.echo(f"{trial['trial']:<8}{score:>10}{epoch:>7}  {json.dumps(shown, sort_keys=True)}")
    click.echo(f"best config: {result.directory / 'best_config.json'}")
    if not retrain:
        click.echo("train it:    " + hints.train(task.name, runs_dir, data=result.data_source,
                                                 config=result.directory / "best_config.json"))
        return
    from lstmkit.tuning.search import retrain_best

    run, epochs = retrain_best(task, result, runs_root=runs_dir, command=command_line())
    click.echo(f"retrained on train+validation for {epochs} epochs: {run.folder}")
    click.echo("test: " + format_metrics(run.metrics["test"]))


@cli.command()
@click.option("--model-base-path", "--base-path", "model_base_path", default="saved_models", show_default=True,
              type=click.Path(file_okay=False),
              help="The folder of exports: one folder per model, holding integer versions.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface; put TLS and auth in front first).")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="Port to listen on (0: any free port, printed).")
@click.option("--max-body-bytes", type=click.IntRange(min=1024), default=8 * 1024 * 1024, show_default=True,
              help="Larger requests are refused (413).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Rows per request at most (400 beyond).")
@click.option("--batch-max-size", type=click.IntRange(min=0), default=0, show_default=True,
              help="Join concurrent requests into batches of up to this many rows (0: off).")
@click.option("--batch-timeout-ms", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="With batching: how long the first request waits for others.")
@click.option("--poll-seconds", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="How often the base path is checked for new, removed and replaced versions.")
@click.option("--max-connections", type=click.IntRange(min=1), default=256, show_default=True,
              help="Open connections at most; a connection past it is answered 503 and closed.")
@click.option("--max-connections-per-client", type=click.IntRange(min=1), default=None,
              help="Open connections one client address may hold (default: a quarter of --max-connections); "
                   "a connection past it is answered 429 and closed. Raise it behind a proxy, which is one "
                   "address for all its clients.")
@click.option("--max-answer-bytes", type=click.IntRange(min=1024), default=16 * 1024 * 1024, show_default=True,
              help="Largest answer written; a request whose answer would be larger gets 400 saying how many "
                   "rows to send at a time.")
@click.option("--request-timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="Seconds a client has to send a request's headers, and then its body; slower "
                   "connections are closed (headers) or answered 408 (body).")
@click.option("--keep-alive-timeout", type=click.IntRange(min=1), default=5, show_default=True,
              help="Seconds an idle connection stays open after an answer.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads that run models (default: CPU cores + 4).")
@click.option("--signature-concurrency", type=click.IntRange(min=1), default=None,
              help="Ordinary requests one model signature runs at once (default: half the CPU cores, at least "
                   "2); more wait their turn. Heavy requests (a row over a quarter of its limit, or a body of "
                   "256 KiB or more) run one at a time across all models, so they leave the CPU to the others.")
def serve(model_base_path, host, port, max_body_bytes, max_batch_size, batch_max_size, batch_timeout_ms,
          poll_seconds, max_connections, max_connections_per_client, max_answer_bytes, request_timeout,
          keep_alive_timeout, threads, signature_concurrency):
    """Serve every model under --model-base-path over TensorFlow Serving's REST API,
    with /healthz, /readyz and /metrics (Prometheus) beside it."""
    from lstmkit import serving

    # A port already taken is said before TensorFlow and the models load.
    listener = serving.listening_socket(host, port)
    import_tensorflow_quietly()
    serving.serve(serving.ServerOptions(
        base_path=model_base_path, host=host, port=port, max_body_bytes=max_body_bytes,
        max_batch_size=max_batch_size, batch_max_size=batch_max_size, batch_timeout_ms=batch_timeout_ms,
        poll_seconds=poll_seconds, max_connections=max_connections,
        max_connections_per_client=max_connections_per_client, max_answer_bytes=max_answer_bytes,
        request_timeout=request_timeout, keep_alive_timeout=keep_alive_timeout, threads=threads,
        signature_concurrency=signature_concurrency), announce=click.echo, listener=listener)


@cli.command("runs", epilog=TASK_EPILOG)
@click.argument("task_name", metavar="[TASK]", required=False, type=TaskChoice())
@RUNS_DIR_OPTION
def list_runs(task_name, runs_dir):
    """List the runs and searches of TASK (default: every task): id, start, data,
    headline test metric, and whether each finished."""
    from lstmkit import runs

    shown = 0
    for name in [task_name] if task_name else task_names():
        summaries = runs.list_runs(runs_dir, name)
        if not summaries:
            continue
        headline = get_task(name).report.headline
        click.echo(f"{name}:")
        for summary in summaries:
            value = summary.test_metrics.get(headline)
            score = f"{headline} {value:.4f}" if isinstance(value, float) else "-"
            if summary.finished:
                state = "finished" if summary.kind == "run" else "search finished"
            elif summary.kind == "run":
                state = f"unfinished: {hints.resume_run(name, summary.id, runs_dir)}"
            else:
                state = f"unfinished: {hints.resume_search(name, summary.id, runs_dir)}"
            click.echo(f"  {summary.id:<28} {summary.started[:16].replace('T', ' '):<17} {score:<22} "
                       f"{shorten(summary.data, 40):<40}  {state}")
            shown += 1
    if not shown:
        click.echo(f"no runs under {runs_dir}; train one: {hints.first_run(runs_dir)}")


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


@cli.command(epilog=TASK_EPILOG)
@TASK_ARGUMENT
@config_options
@click.option("--run", "run", default=None, metavar="RUN",
              help="Inspect a trained run's model instead of one built from the config.")
@RUNS_DIR_OPTION
def doctor(task_name, preset, config_file, overrides, run, runs_dir):
    """Show, per recurrent layer, whether it takes the fused cuDNN kernel on GPU, and why not."""
    task = get_task(task_name)
    if run is not None:
        if config_file or overrides or preset != "default":
            raise click.UsageError("--run inspects a trained model as it is; drop --config/--set/--preset")
        opened = open_run(task, run, runs_dir)
    else:
        config = resolve_config(task, preset, config_file, overrides)
    import_tensorflow_quietly()
    import keras

    from lstmkit import precision
    from lstmkit.diagnostics import format_reports, recurrent_layer_reports
    from lstmkit.layers.regularized_lstm import gpu_visible

    if run is not None:
        model = opened.model
        source = f"run {run}"
    else:
        bound = task.bind(config)
        with precision.dtype_policy(config.train.precision):
            model = bound.bind(preprocessing=bound.placeholder_preprocessing()).build_model()
        source = "config" + (f" {config_file}" if config_file else "") + (" with --set" if overrides else "")
    click.echo(f"model: {model.name} ({source}), {model.count_params():,} parameters")
    here = "a GPU is visible" if gpu_visible() else "no GPU here: every layer runs on the CPU"
    click.echo(f"backend: {keras.config.backend()}; {here}")
    policy = precision.model_precision(model)
    click.echo(f"precision: {policy}" + ("" if run is not None else
                                         f" ({precision.resolve(config.train.precision)[1]})"))
    if policy != "float32":
        float32_layers = precision.layers_in_float32(model)
        click.echo("    float32 layers: " + (", ".join(float32_layers) or "none"))
    for line in format_reports(recurrent_layer_reports(model)) or ["no recurrent layers"]:
        click.echo(line)


def main(argv=None) -> None:
    """Run the CLI; every user mistake is one line on stderr and exit code 2."""
    from lstmkit.errors import UserError

    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except click.UsageError as error:
        # command_path starts with the program's name: "cli.py train", "lstmkit train".
        verb = error.ctx.command_path.split()[1:] if error.ctx else []
        click.echo(f"Error: {error.format_message()} (see: {hints.help_for(*verb)})", err=True)
        sys.exit(2)
    except click.ClickException as error:
        click.echo(f"Error: {error.format_message()}", err=True)
        sys.exit(2)
    except UserError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
