"""The command line as a new user meets it: help, and one clear line for every mistake."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

COMMANDS = ["train", "evaluate", "predict", "generate", "export", "tune", "doctor"]


@pytest.mark.parametrize("command", [[]] + [[name] for name in COMMANDS])
def test_help_for_every_command(run_cli, command):
    code, out, _ = run_cli(*command, "--help")
    assert code == 0 and out.startswith("Usage:")


def test_help_is_instant_because_tensorflow_is_not_imported():
    probe = "import sys, cli\ntry:\n    cli.main(['train', '--help'])\nexcept SystemExit:\n    pass\nprint('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("False")


def test_installed_console_script_is_the_same_cli(tmp_path):
    script = Path(sys.executable).parent / "lstmkit"
    assert script.exists(), "install the package (pip install -e .) to get the lstmkit command"
    result = subprocess.run([str(script), "train", "nope"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "'nope'" in result.stderr and "sentiment" in result.stderr


def _assert_one_line_error(code, out, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_task(run_cli):
    _assert_one_line_error(*run_cli("train", "poetry"), "'poetry'", "sentiment")


@pytest.mark.parametrize(
    "setup, fragments",
    [
        (lambda tmp: str(tmp / "missing"), ["does not exist", "--data takes"]),
        (lambda tmp: _write(tmp / "empty.csv", b""), ["is empty"]),
        (lambda tmp: _write(tmp / "cols.csv", b"review_text,score\nnice,1\n"), ["no text column", "--set data.text_column"]),
        (lambda tmp: _write(tmp / "latin1.tsv", b"sentence\tlabel\ncaf\xe9\t1\n"), ["not UTF-8", "re-encode"]),
        (lambda tmp: _write(tmp / "three.tsv", b"sentence\tlabel\ngood\t1\nmeh\tneutral\n"), ["'neutral'", "0/1, neg/pos"]),
        # A quote left open swallows the rest of the file into one field (csv's own error before).
        (lambda tmp: _write(tmp / "open.csv", b'text,label\ngood,1\n"bad,0\n' + b"meh,0\n" * 200_000),
         ["open.csv line 3: a field longer than 1,048,576 characters", "quote"]),
    ],
)
def test_bad_data_gives_one_line_and_writes_nothing(run_cli, tmp_path, setup, fragments):
    source = setup(tmp_path)
    runs = tmp_path / "runs"
    result = run_cli("train", "sentiment", "--preset", "tiny", "--data", source, "--runs-dir", runs)
    _assert_one_line_error(*result, *fragments)
    assert not runs.exists()


def test_unknown_set_key_and_bad_value(run_cli, tmp_path):
    runs = tmp_path / "runs"
    _assert_one_line_error(*run_cli("train", "sentiment", "--set", "lstm.size=3", "--runs-dir", runs),
                           "unknown config key 'lstm.size'", "lstm.units")
    _assert_one_line_error(*run_cli("train", "sentiment", "--set", "train.epochs=ten", "--runs-dir", runs),
                           "train.epochs must be of type int")
    _assert_one_line_error(*run_cli("train", "sentiment", "--config", tmp_path / "nope.json"),
                           "does not exist")
    assert not runs.exists()


def test_offline_tfds_fails_fast_with_a_local_files_hint(run_cli, tmp_path, offline, caplog):
    import time

    # An earlier, interrupted download leaves an empty dataset folder (TFDS warns about it).
    (tmp_path / "tfds" / "imdb_reviews" / "plain_text" / "1.0.0").mkdir(parents=True)
    started = time.perf_counter()
    result = run_cli("train", "sentiment", "--runs-dir", tmp_path / "runs")
    _assert_one_line_error(*result, "tfds:imdb_reviews", "--data")
    assert time.perf_counter() - started < 30
    # pytest captures log records, so check them too: nothing else may reach the terminal.
    assert [record.getMessage() for record in caplog.records if record.levelname in ("WARNING", "ERROR")] == []
    assert not (tmp_path / "runs").exists()


def test_commands_without_a_trained_run(run_cli, tmp_path):
    _assert_one_line_error(*run_cli("predict", "sentiment", "hello", "--runs-dir", tmp_path),
                           "no finished run", "python cli.py train sentiment")
    _assert_one_line_error(*run_cli("export", "sentiment", "--run", "nope", "--runs-dir", tmp_path), "no run 'nope'")
    _assert_one_line_error(*run_cli("train", "sentiment", "--resume", "latest", "--runs-dir", tmp_path),
                           "no unfinished run")


def test_a_real_process_exits_2_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "train", "sentiment", "--data", str(tmp_path / "missing")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def _write(path, content):
    path.write_bytes(content)
    return str(path)


def test_doctor_names_every_reason_a_layer_leaves_the_fused_kernel(run_cli):
    code, out, err = run_cli("doctor", "sentiment", "--preset", "tiny")
    assert code == 0, err
    assert out.count("fused cuDNN kernel on GPU") == 2  # forward and backward of one layer
    code, out, err = run_cli("doctor", "sentiment", "--preset", "tiny", "--set", "lstm.zoneout_cell=0.1",
                             "--set", "lstm.recurrent_dropout=0.2", "--set", "lstm.weight_drop=0.5")
    assert code == 0, err
    assert out.count("step loop (no fused kernel)") == 2
    assert out.count("because: zoneout") == 2 and out.count("because: recurrent_dropout=0.2") == 2
    assert "weight_drop" not in out.replace("weight_drop regularizes", "")


def test_doctor_builds_the_language_model_without_data(run_cli):
    code, out, err = run_cli("doctor", "textgen", "--set", "lstm.layers=2")
    assert code == 0, err
    assert "model: textgen" in out
    assert out.count("fused cuDNN kernel on GPU") == 2  # one line per layer


def test_textgen_offline_default_data_says_how_to_use_local_text(run_cli, tmp_path, offline):
    result = run_cli("train", "textgen", "--runs-dir", tmp_path / "runs")
    _assert_one_line_error(*result, "tfds:tiny_shakespeare", "--data builtin")
    assert not (tmp_path / "runs").exists()


def _fifo(folder):
    path = folder / "fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command, fragments", [
    (["train", "textgen", "--data", "/dev/zero"], ["/dev/zero is a device, not a regular file"]),
    (["train", "protein_ss", "--data", "/dev/zero"], ["/dev/zero is a device, not a regular file"]),
    (["train", "sentiment", "--config", "/dev/zero"], ["/dev/zero is a device, not a regular file"]),
    (["predict", "sentiment", "--file", "/dev/zero"], ["/dev/zero is a device, not a regular file"]),
    (["train", "sentiment", "--config", "{tmp}"], ["is a folder; expected a file"]),
    (["train", "sentiment", "--config", "{tmp}/deep.json"], ["nested too deeply"]),
    (["train", "textgen", "--preset", "tiny", "--data", "{tmp}/empty-files"], ["holds no text"]),
])
def test_paths_that_are_no_data_give_one_line_and_write_nothing(run_cli, tmp_path, command, fragments):
    """Before: MemoryError (/dev/zero), IsADirectoryError and RecursionError tracebacks;
    textgen trained on the newlines between 1,000 empty files."""
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "empty-files").mkdir()
    for number in range(1_000):
        (tmp_path / "empty-files" / f"{number}.txt").touch()
    runs = tmp_path / "runs"
    command = [part.format(tmp=tmp_path) for part in command]
    _assert_one_line_error(*run_cli(*command, "--runs-dir", runs), *fragments)
    assert not runs.exists()


@pytest.mark.parametrize("command", [["train", "textgen", "--data"], ["train", "protein_ss", "--data"],
                                     ["train", "sentiment", "--config"], ["predict", "sentiment", "--file"]])
def test_a_fifo_is_refused_at_once(tmp_path, command):
    """Before: reading a FIFO nobody writes to waited forever (the timeout bounds this test)."""
    fifo = _fifo(tmp_path)
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), *command, str(fifo),
                             "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=120)
    _assert_one_line_error(result.returncode, result.stdout, result.stderr, "is a FIFO, not a regular file")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_gives_one_line(run_cli, tmp_path):
    for name in ("corpus.txt", "config.json"):
        (tmp_path / name).write_text("{}")
        (tmp_path / name).chmod(0)
    runs = tmp_path / "runs"
    _assert_one_line_error(*run_cli("train", "textgen", "--data", tmp_path / "corpus.txt", "--runs-dir", runs),
                           "permission denied")
    _assert_one_line_error(*run_cli("train", "sentiment", "--config", tmp_path / "config.json", "--runs-dir", runs),
                           "permission denied")
    assert not runs.exists()


@pytest.mark.parametrize("setting, fragment", [
    ("lstm.units=100000000", "lstm.units must be in [1, 8192], got 100000000"),
    ("embedding_dim=2000000000", "embedding_dim must be in [1, 8192], got 2000000000"),
    ("train.batch_size=100000000000000000000", "train.batch_size must be in [1, 65536]"),
    ("train.shuffle_buffer=1000000000000000000", "train.shuffle_buffer must be in [1, 10000000]"),
    ("train.learning_rate=inf", "train.learning_rate must be in (0, 10], got inf"),
    ("train.global_clipnorm=nan", "train.global_clipnorm must be in [0, 1000000], got nan"),
    (f"train.epochs={10**30}", "train.epochs must be in [1, 100000]"),
])
def test_out_of_range_settings_give_one_line_before_any_data_is_read(run_cli, tmp_path, setting, fragment):
    """Before: tracebacks, a segfault (shuffle_buffer), or training that exited 0 (inf, nan, 10**30).
    The data path does not exist: the config is refused before it is looked at."""
    runs = tmp_path / "runs"
    result = run_cli("train", "sentiment", "--data", tmp_path / "missing", "--set", setting, "--runs-dir", runs)
    _assert_one_line_error(*result, fragment)
    assert not runs.exists()
