"""Train a tiny tagger on 150 NetSurfP-2.0 chains; masks stay out of loss and metrics;
export, predict and bad input."""

import json

import numpy as np
import pytest
import tensorflow as tf

from lstmkit.tasks.protein_ss import data


def loaded(run_dir):
    """The finished run, its task bound to the run's config and preprocessing."""
    from lstmkit.run import Run
    from lstmkit.tasks.protein_ss.task import TASK

    return Run.from_folder(TASK, run_dir)


@pytest.mark.slow
def test_loss_goes_down_and_metrics_count_scored_residues_only(protein_run, netsurfp_small):
    rows = (protein_run / "history.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    history = [dict(zip(header, map(float, row.split(",")))) for row in rows[1:]]
    assert history[-1]["loss"] < history[0]["loss"]
    metrics = json.loads((protein_run / "metrics.json").read_text())["test"]
    chains = [chain for chain in data.read_netsurfp(netsurfp_small) if chain.split == "test"]
    assert metrics["chains"] == 25
    assert metrics["residues"] == sum(sum(chain.mask) for chain in chains)  # unresolved residues left out
    assert metrics["q3"] == metrics["accuracy"] and 0 < metrics["per_chain_accuracy"] < 1
    assert 0 < metrics["sov"] < 1


@pytest.mark.slow
def test_unscored_residues_change_neither_loss_nor_metrics(protein_run):
    """Relabel every unscored position: a leak would move the figures."""
    from lstmkit.tasks.protein_ss.task import NOT_SCORED

    run = loaded(protein_run)
    model = run.model
    task = run.task.bind(preprocessing=run.task.placeholder_preprocessing())
    sequences = tf.constant(["MKVLAAGIVGLLLAAHS", "GSHMTTEK"])
    labels = np.array([[0, 1, 2, 2, NOT_SCORED, 0, 0, 1, 1, 2, 2, 0, 0, 0, 1, NOT_SCORED, 2],
                       [NOT_SCORED, NOT_SCORED, 0, 1, 2, 0, 1, 2] + [NOT_SCORED] * 9])
    other = np.where(labels == NOT_SCORED, NOT_SCORED, labels)
    dataset = tf.data.Dataset.from_tensor_slices((sequences, tf.ragged.constant(
        [row[: len(seq)] for row, seq in zip(labels.tolist(), ["x" * 17, "x" * 8])]))).map(lambda s, y: (s, y))
    base = task.evaluate(model, dataset)
    loss = task.loss()
    predictions = model(sequences, training=False)
    padded = tf.constant(other)
    reference = float(loss(padded, predictions))
    # The same labels with the unscored positions moved to a real class: the loss differs,
    # so the ignored positions really are ignored when they are NOT_SCORED.
    leaked = float(loss(tf.constant(np.where(labels == NOT_SCORED, 0, labels)), predictions))
    assert reference != pytest.approx(leaked)
    assert base["residues"] == int((labels != NOT_SCORED).sum())
    metric = task.metrics()[0]
    metric.update_state(padded, predictions)
    assert float(metric.result()) == pytest.approx(base["accuracy"], abs=1e-6)


@pytest.mark.parametrize("batch, length", [(1, 30), (3, 120)])
@pytest.mark.slow
def test_export_matches_the_model_at_two_batch_sizes_and_lengths(protein_run, tmp_path, batch, length):
    from lstmkit.export import export_run

    run = loaded(protein_run)
    model = run.model
    version = export_run(run, tmp_path)
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    rng = np.random.default_rng(length)
    sequences = ["".join(rng.choice(list(data.ALPHABET[:20]), size=length - 7 * i)) for i in range(batch)]
    outputs = serve(sequence=tf.constant(sequences))
    expected = model(tf.constant(sequences), training=False).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    structures = [s.decode() for s in outputs["structure"].numpy()]
    assert [len(s) for s in structures] == [len(s) for s in sequences]
    assert structures[0] == "".join("HEC"[i] for i in expected[0, :len(sequences[0])].argmax(-1))


@pytest.mark.slow
def test_predict_aligns_structure_under_sequence_and_refuses_bad_input(protein_run, run_cli):
    runs = protein_run.parent.parent
    code, out, err = run_cli("predict", "protein_ss", "mkvlaag", "GSHM", "--runs-dir", runs)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "MKVLAAG" and len(lines[1]) == 7 and set(lines[1]) <= set("HEC")
    assert lines[2] == "GSHM" and len(lines[3]) == 4
    code, out, err = run_cli("predict", "protein_ss", "MKV", "--format", "json", "--runs-dir", runs)
    record = json.loads(out)
    assert len(record["probabilities"]) == 3 and sum(record["probabilities"][0].values()) == pytest.approx(1)
    code, out, err = run_cli("predict", "protein_ss", "MK1V", "A" * 40_000, "--runs-dir", runs)
    assert code == 2 and "Traceback" not in err
    assert out == ""  # both refused: neither is predicted
    errors = err.strip().splitlines()
    assert len(errors) == 2 and "'1' at residue 3" in errors[0] and "40,000 residues" in errors[1]
    assert len(errors[1]) < 200  # the sequence itself is shortened in the message


def test_training_on_a_test_set_alone_is_refused(run_cli, shared_data, tmp_path):
    code, out, err = run_cli("train", "protein_ss", "--preset", "tiny", "--data",
                             shared_data / "protein_ts115" / "TS115_HHblits.csv", "--runs-dir", tmp_path)
    assert code == 2 and "no training chains" in err and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_predict_reads_fasta_records(protein_run, run_cli, tmp_path):
    runs = protein_run.parent.parent
    fasta = tmp_path / "seqs.fasta"
    fasta.write_text(">one\nMKVL\nAAG\n>two\nGSHM\n")
    code, out, err = run_cli("predict", "protein_ss", "--fasta", fasta, "--runs-dir", runs)
    assert code == 0, err
    assert out.strip().splitlines()[0::2] == ["MKVLAAG", "GSHM"]
    fasta.write_text(">one\nMKVL\n>empty\n>three\nGG\n")
    code, out, err = run_cli("predict", "protein_ss", "--fasta", fasta, "--runs-dir", runs)
    assert code == 2 and err.strip() == f"Error: {fasta}: record empty has no sequence; remove it or add one"


@pytest.mark.slow
def test_evaluate_on_ts115_prints_q3_sov_and_writes_a_confusion_png(protein_run, run_cli, shared_data):
    code, out, err = run_cli("evaluate", "protein_ss", "--data", shared_data / "protein_ts115" / "TS115_HHblits.csv",
                             "--split", "test", "--runs-dir", protein_run.parent.parent)
    assert code == 0, err
    assert "115 examples" in out and "scored residues" in out and "q3" in out and "sov" in out
    # An outside file gets a report of its own, named after it, with the PNG beside it.
    (report,) = protein_run.glob("evaluation-test-TS115_HHblits.csv-*.json")
    assert (protein_run / report.name.replace("evaluation", "confusion_matrix").replace(".json", ".png")).is_file()
    # The confusion matrix is a table: each row a state and one count per state,
    # however many digits the counts have.
    lines = out.splitlines()
    rows = lines[lines.index("confusion matrix (rows: true, columns: predicted)") + 2:][:3]
    assert [row.split()[0] for row in rows] == ["H", "E", "C"] and all(len(row.split()) == 4 for row in rows)
    assert max(int(count) for row in rows for count in row.split()[1:]) >= 1000  # wider than the labels
