"""The TFDS CullPDB/CB513 profile builder, offline: files in the published layout are put
in TFDS's manual folder (real CB513 chains, random profiles), read back, trained on with
their profiles, exported and served."""

import gzip
import json
import socket

import numpy as np
import pytest
import tensorflow as tf

from lstmkit.errors import UserError
from lstmkit.tasks.protein_ss import cullpdb_profile, data

# The layout as the dataset's README states it, written out here on purpose (not taken
# from the module under test): residues one-hot in this order then NoSeq, labels one-hot
# in this order then NoSeq, terminals, accessibility, profile in alphabetical order.
README_RESIDUES = ["A", "C", "E", "D", "G", "F", "I", "H", "K", "M", "L", "N", "Q", "P", "S", "R", "T", "W",
                   "V", "Y", "X"]
README_LABELS = ["L", "B", "E", "G", "I", "H", "S", "T"]
CULLPDB_ROWS, CB513_ROWS, VALIDATION_ROWS = 14, 4, 3


def encode(chains, rng):
    """Chains as the published N x (700*57) arrays; returns the array and the profiles."""
    array = np.zeros((len(chains), 700, 57))
    profiles = []
    for row, chain in enumerate(chains):
        length = len(chain.sequence)
        for position, (residue, state) in enumerate(zip(chain.sequence, chain.ss8)):
            array[row, position, README_RESIDUES.index(residue if residue in README_RESIDUES else "X")] = 1
            array[row, position, 22 + README_LABELS.index("L" if state == "C" else state)] = 1
        array[row, length:, 21] = 1  # NoSeq
        array[row, length:, 30] = 1
        array[row, :length, 33:35] = 0.5  # accessibility: never read as a feature
        profiles.append(rng.random((length, 21)))
        array[row, :length, 35:56] = profiles[-1]
    return array.reshape(len(chains), -1), profiles


def write_gz(path, array):
    with gzip.open(path, "wb") as handle:
        np.save(handle, array)


@pytest.fixture(scope="module")
def cullpdb_manual(shared_data, tmp_path_factory):
    """A TFDS data folder whose manual folder holds the two files; no download host."""
    chains = [chain for chain in data.read_hhblits_csv(shared_data / "protein_cb513" / "CB513_HHblits.csv")
              if len(chain.sequence) <= 300][: CULLPDB_ROWS + CB513_ROWS]
    rng = np.random.default_rng(0)
    cullpdb, cullpdb_profiles = encode(chains[:CULLPDB_ROWS], rng)
    cb513, cb513_profiles = encode(chains[CULLPDB_ROWS:], rng)
    folder = tmp_path_factory.mktemp("tfds")
    manual = folder / "downloads" / "manual"
    manual.mkdir(parents=True)
    write_gz(manual / "cullpdb+profile_5926_filtered.npy.gz", cullpdb)
    write_gz(manual / "cb513+profile_split1.npy.gz", cb513)
    with pytest.MonkeyPatch.context() as patch:
        patch_tfds_offline(patch, folder)
        patch.setattr(cullpdb_profile, "VALIDATION_CHAINS", VALIDATION_ROWS)
        yield {"chains": chains, "profiles": cullpdb_profiles + cb513_profiles, "folder": folder}


def patch_tfds_offline(patch, folder):
    from tensorflow_datasets.core import constants

    from lstmkit import data as lstmkit_data

    patch.setenv("TFDS_DATA_DIR", str(folder))
    patch.setattr(constants, "DATA_DIR", str(folder))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    patch.setattr(lstmkit_data, "DOWNLOAD_PROBE", closed.getsockname())
    closed.close()


def test_builder_reads_the_published_layout_from_the_manual_folder_offline(cullpdb_manual):
    chains = data.read_source("tfds:cullpdb_profile")
    splits = [chain.split for chain in chains]
    assert splits.count("train") == CULLPDB_ROWS - VALIDATION_ROWS
    assert splits.count("validation") == VALIDATION_ROWS and splits.count("test") == CB513_ROWS
    by_id = {chain.id: chain for chain in chains}
    for index, original in enumerate(cullpdb_manual["chains"]):
        key = f"cullpdb|{index}" if index < CULLPDB_ROWS else f"cb513|{index - CULLPDB_ROWS}"
        chain = by_id[key]
        expected = "".join(r if r in README_RESIDUES else "X" for r in original.sequence)
        assert chain.sequence == expected
        assert chain.ss8 == original.ss8 and chain.ss3 == original.ss3
        assert chain.mask is None  # every residue of this data is scored
        np.testing.assert_allclose(chain.profile, cullpdb_manual["profiles"][index], atol=1e-6)


def test_without_files_or_network_it_fails_fast_naming_the_manual_folder(offline):
    import time

    started = time.perf_counter()
    with pytest.raises(UserError, match=r"cannot download tfds:cullpdb_profile.*cb513\+profile_split1.*manual"):
        data.read_source("tfds:cullpdb_profile")
    assert time.perf_counter() - started < 30


@pytest.fixture(scope="module")
def profile_run(cullpdb_manual, tmp_path_factory):
    from lstmkit import cli

    runs = tmp_path_factory.mktemp("runs")
    try:
        cli.main(["train", "protein_ss", "--preset", "tiny", "--data", "tfds:cullpdb_profile", "--runs-dir", str(runs),
                  "--seed", "5", "--set", "train.epochs=2"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    (run_dir,) = (runs / "protein_ss").iterdir()
    return run_dir


@pytest.mark.slow
def test_a_model_trained_with_profiles_reads_them(profile_run):
    from lstmkit.run import Run
    from lstmkit.tasks.protein_ss.task import TASK

    preprocessing = json.loads((profile_run / "preprocessing.json").read_text())
    assert preprocessing["profile_features"] == 21
    run = Run.from_folder(TASK, profile_run)
    assert run.preprocessing.profile_features == 21
    model = run.model
    sequence = tf.constant(["MKVLAAGIVG"])
    first = model({"sequence": sequence, "profile": tf.zeros([1, 10, 21])}, training=False)
    second = model({"sequence": sequence, "profile": tf.ones([1, 10, 21])}, training=False)
    assert not np.allclose(first.numpy(), second.numpy())
    metrics = json.loads((profile_run / "metrics.json").read_text())["test"]
    assert metrics["chains"] == CB513_ROWS and 0 < metrics["q3"] < 1


@pytest.mark.parametrize("batch, length", [(1, 30), (3, 90)])
@pytest.mark.slow
def test_export_takes_sequences_and_profiles(profile_run, tmp_path, batch, length):
    from lstmkit.export import export_run
    from lstmkit.run import Run
    from lstmkit.tasks.protein_ss.task import TASK

    run = Run.from_folder(TASK, profile_run)
    model = run.model
    version = export_run(run, tmp_path)
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    rng = np.random.default_rng(length)
    sequences = ["".join(rng.choice(list(data.ALPHABET[:20]), size=length - 7 * i)) for i in range(batch)]
    profile = rng.random((batch, length, 21)).astype(np.float32)
    expected = model({"sequence": tf.constant(sequences), "profile": tf.constant(profile)}, training=False).numpy()
    # A client may pad profiles past the longest sequence: the extra rows are cut off.
    padded = np.concatenate([profile, np.ones((batch, 5, 21), np.float32)], axis=1)
    outputs = serve(sequence=tf.constant(sequences), profile=tf.constant(padded))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    assert [len(s) for s in outputs["structure"].numpy()] == [len(s) for s in sequences]


@pytest.mark.slow
def test_profile_model_refuses_data_and_inputs_without_profiles(profile_run, run_cli, shared_data):
    runs = profile_run.parent.parent
    code, out, err = run_cli("predict", "protein_ss", "MKVLAAG", "--runs-dir", runs)
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "profiles" in err
    code, out, err = run_cli("evaluate", "protein_ss", "--data", shared_data / "protein_ts115" / "TS115_HHblits.csv",
                             "--split", "test", "--runs-dir", runs)
    assert code == 2 and "Traceback" not in err and "has none" in err


@pytest.mark.slow
def test_the_server_answers_a_sequence_with_its_profile(profile_run, tmp_path):
    """The whole path in fresh processes: `cli.py export`, then `cli.py serve`, then a
    TensorFlow Serving REST request carrying a sequence and its profile rows."""
    import subprocess
    import sys

    from lstmkit.run import Run
    from lstmkit.tasks.protein_ss.task import TASK
    from tests.conftest import ROOT
    from tests.lstmkit.serving.test_app import Server

    base = tmp_path / "saved_models"
    exported = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "export", "protein_ss", "--run", str(profile_run),
         "--base-path", str(base)], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    sequence = "MKVLAAGIVGLLLAHE"
    profile = np.random.default_rng(3).random((len(sequence), 21)).astype(np.float32)
    model = Run.from_folder(TASK, profile_run).model
    expected = model({"sequence": tf.constant([sequence]), "profile": tf.constant(profile[None])},
                     training=False).numpy()[0]
    server = Server(base)
    try:
        status, answer = server.request("/v1/models/protein_ss:predict",
                                        {"instances": [{"sequence": sequence, "profile": profile.tolist()}]})
        assert status == 200, answer
        (prediction,) = answer["predictions"]
        np.testing.assert_allclose(np.array(prediction["probabilities"]), expected, atol=1e-5)
        assert len(prediction["structure"]) == len(sequence)
        # The profile decides the answer: zeros give other probabilities.
        zero_profile = np.zeros_like(profile).tolist()
        status, zeros = server.request("/v1/models/protein_ss:predict",
                                       {"instances": [{"sequence": sequence, "profile": zero_profile}]})
        assert status == 200 and not np.allclose(np.array(zeros["predictions"][0]["probabilities"]), expected)
    finally:
        server.stop()
