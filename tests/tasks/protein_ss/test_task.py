"""The protein task on the bound contract: its declarations, and predict's first step (bad
sequences set aside, the rest kept)."""

import dataclasses

import pytest

from lstmkit.errors import UserError
from lstmkit.task import ExtraPredictInputs, Objective, predict_inputs
from lstmkit.tasks.protein_ss.config import TINY
from lstmkit.tasks.protein_ss.task import TASK, ProteinPreprocessing


def test_declarations():
    assert TASK.objective == Objective("val_accuracy", "max")
    assert TASK.report.headline == "q3" and TASK.report.counts == {"residues": "scored residues"}
    assert TASK.report.plots == ("confusion_matrix",)  # evaluate's result holds the matrix and labels
    assert isinstance(TASK, ExtraPredictInputs)
    assert [option.name for option in predict_inputs(TASK).files] == ["fasta"]
    assert not predict_inputs(TASK).options and not predict_inputs(TASK).file_is_one_input


def test_binding_returns_new_objects_and_reads_the_config():
    bound = TASK.bind(TINY)
    assert bound is not TASK and bound.config is TINY
    assert bound.label_names() == ["H", "E", "C"]
    assert bound.placeholder_preprocessing() == ProteinPreprocessing("HEC", 0)
    eight = TASK.bind(dataclasses.replace(TINY, states=8))
    assert eight.label_names() == list("HGIEBTSC")
    with pytest.raises(TypeError, match="not bound to a config"):
        TASK.label_names()


def test_preprocess_sets_bad_sequences_aside_and_keeps_the_rest_in_order():
    task = TASK.bind(TINY, ProteinPreprocessing("HEC"))
    prepared = task.preprocess([" mkv ", "MK1V", "GSHM", "A" * 40_000], {})
    assert prepared.items == [" mkv ", "GSHM"]
    assert [s.decode() for s in prepared.inputs.numpy()] == ["MKV", "GSHM"]
    assert list(prepared.rejected) == ["MK1V", "A" * 40_000]
    assert "'1' at residue 3" in prepared.rejected["MK1V"]
    assert prepared.rejected["A" * 40_000] == "40,000 residues; at most 10,000 are accepted (cut it into domains first)"
    everything_refused = task.preprocess(["MK1V"], {})
    assert everything_refused.items == [] and everything_refused.inputs is None
    assert list(everything_refused.rejected) == ["MK1V"]


def test_a_model_that_reads_profiles_cannot_predict_from_sequences():
    task = TASK.bind(TINY, ProteinPreprocessing("HEC", 21))
    with pytest.raises(UserError, match=r"reads sequence profiles \(PSSM\) as well as sequences"):
        task.preprocess(["MKV"], {})


def test_postprocess_aligns_the_structure_under_the_sequence():
    import numpy as np

    task = TASK.bind(TINY, ProteinPreprocessing("HEC"))
    outputs = np.array([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [1 / 3] * 3]])  # padded to 4
    (record,) = task.postprocess([" mkv"], outputs, {})
    assert record["sequence"] == "MKV" and record["structure"] == "HEC" and record["text"] == "MKV\nHEC"
    assert len(record["probabilities"]) == 3 and record["probabilities"][1]["E"] == pytest.approx(0.8)
