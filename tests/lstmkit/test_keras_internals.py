"""lstmkit.keras_internals: the version guards of its process-wide patches, that no other
module reaches into ``keras.src`` / ``keras_tuner.src``, and that pyproject pins the
ranges the private code was checked against."""

import ast
import json
import logging

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from lstmkit import keras_internals
from lstmkit.errors import UserError

# The standard library reads TOML from Python 3.11 on; lstmkit also runs on 3.10.
tomllib = pytest.importorskip("tomllib")
from tests.conftest import ROOT

PRIVATE = ("keras.src", "keras_tuner.src")


def _fake_versions(monkeypatch, **versions):
    real = keras_internals.installed_version
    monkeypatch.setattr(keras_internals, "installed_version",
                        lambda package: versions.get(package) or real(package))


@pytest.mark.parametrize("version, checked", [
    ("3.15.1", True), ("3.11.0", True), ("3.15.9", True),
    ("3.10.2", False), ("3.16.0", False), ("3.16.0rc1", False), ("4.0.0", False),
])
def test_keras_versions_inside_and_outside_the_checked_range(monkeypatch, version, checked):
    _fake_versions(monkeypatch, keras=version)
    assert keras_internals.unchecked_version("keras", keras_internals.KERAS_CHECKED) == (None if checked else version)


def test_the_multi_worker_fix_refuses_another_keras_and_patches_nothing(monkeypatch):
    from keras.src.backend.tensorflow import trainer

    before = (trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build)
    _fake_versions(monkeypatch, keras="3.16.0")
    with pytest.raises(UserError, match=r"written for keras>=3\.11,<3\.16, but keras 3\.16\.0 is installed") as error:
        keras_internals.patch_trainer_for_multi_worker()
    assert "\n" not in str(error.value)
    assert (trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build) == before


def test_train_multiworker_on_another_keras_is_one_line_before_any_work(run_cli, monkeypatch, tmp_path):
    import tensorflow as tf

    def no_cluster_here():
        # Without the refusal the strategy would wait for the other worker (forever).
        raise AssertionError("multi-worker training started on an unchecked keras")

    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", no_cluster_here)
    _fake_versions(monkeypatch, keras="3.16.0")
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}, "task": {"type": "worker", "index": 0}}))
    # The data folder holds no data (reading it would fail): the refusal must come first.
    (tmp_path / "no-data").mkdir()
    code, out, err = run_cli("train", "sentiment", "--preset", "tiny", "--data", tmp_path / "no-data",
                             "--strategy", "multiworker", "--runs-dir", tmp_path / "runs")
    assert code == 2, err
    assert "keras 3.16.0 is installed" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "keras" in line]) == 1
    assert not (tmp_path / "runs").exists()


def test_the_oracle_timeout_is_set_on_a_checked_keras_tuner(monkeypatch):
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client, "TIMEOUT", 3600)  # restored after the test
    assert keras_internals.bound_oracle_calls(42.0) is True
    assert oracle_client.TIMEOUT == 42.0


def test_the_oracle_timeout_is_skipped_with_a_warning_on_another_keras_tuner(monkeypatch, caplog):
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client, "TIMEOUT", 3600)
    _fake_versions(monkeypatch, keras_tuner="1.5.0")
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        assert keras_internals.bound_oracle_calls(42.0) is False
    assert oracle_client.TIMEOUT == 3600
    assert "keras-tuner 1.5.0" in caplog.text and "an hour" in caplog.text


def _private_accesses(path) -> list[str]:
    """Each import of, attribute path into or module name string of Keras's or Keras
    Tuner's private package in the Python file ``path``, as "line: what"."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # node.module alone misses "from keras import src".
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names = [f"{node.value.id}.{node.attr}"]  # keras.src.backend after import keras
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]  # importlib.import_module("keras.src...")
        private = [name for name in names
                   if any(name == prefix or name.startswith(prefix + ".") for prefix in PRIVATE)]
        if private:
            found.append(f"{node.lineno}: {private[0]}")
    return found


def test_only_keras_internals_reaches_into_private_keras_code():
    files = sorted((ROOT / "lstmkit").rglob("*.py")) + sorted((ROOT / "tasks").rglob("*.py"))
    internals = ROOT / "lstmkit" / "keras_internals.py"
    assert internals in files and len(files) > 20
    # The check sees what it looks for: the one module allowed to reach in does.
    assert len(_private_accesses(internals)) >= 6
    offenders = {str(path.relative_to(ROOT)): found for path in files if path != internals
                 for found in [_private_accesses(path)] if found}
    assert offenders == {}


def test_the_checker_catches_each_way_in(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("import keras\nimport keras_tuner.src.protos\nfrom keras import src\n"
                      "from keras.src import backend\nx = keras.src.backend\n"
                      "m = importlib.import_module('keras.src.backend.torch.rnn')\n"
                      "# keras.src in a comment is fine\nfrom keras import tree\n")
    assert [found.split(":")[0] for found in _private_accesses(source)] == ["2", "3", "4", "5", "6"]


def test_pyproject_pins_the_ranges_the_private_code_was_checked_against():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {requirement.name: requirement.specifier for requirement in map(Requirement, dependencies)}
    assert pins["keras"] == SpecifierSet(keras_internals.KERAS_CHECKED)
    assert pins["keras-tuner"] == SpecifierSet(keras_internals.KERAS_TUNER_CHECKED)


def _nested_model():
    """Layers inside layers every way lstmkit's models have them: a model in a model, a
    bidirectional wrapper (with its cells), a layer keeping sublayers in attributes
    (attention pooling) and one layer used twice."""
    import keras

    from lstmkit.layers import RegularizedLSTM, SequencePooling

    inner = keras.Sequential([keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(5)], name="inner")
    ids = keras.Input(shape=(7,), dtype="int32")
    x = keras.layers.Embedding(20, 5, mask_zero=True)(ids)
    x = keras.layers.Bidirectional(RegularizedLSTM(4, return_sequences=True))(x)
    x = SequencePooling("attention")(x)
    x = inner(x)
    shared = keras.layers.Dense(5, name="shared")
    x = shared(shared(x))
    return keras.Model(ids, keras.layers.Dense(2)(x))


def test_all_layers_lists_what_keras_flattens_without_the_model_itself():
    from lstmkit.layers import RegularizedLSTM, SequencePooling

    model = _nested_model()
    layers = keras_internals.all_layers(model)
    assert layers == model._flatten_layers(include_self=False)
    assert model not in layers and len({id(layer) for layer in layers}) == len(layers)
    # Reached only through attributes: the pooling's attention layers and the wrapper's
    # forward and backward copies of the LSTM.
    (pooling,) = [layer for layer in layers if isinstance(layer, SequencePooling)]
    assert {id(pooling.attention_hidden), id(pooling.attention_score)} <= {id(layer) for layer in layers}
    assert sum(isinstance(layer, RegularizedLSTM) for layer in layers) == 2  # the wrapper's two copies
    assert [layer.name for layer in layers].count("shared") == 1


def test_on_another_keras_all_layers_falls_back_to_public_attributes_and_finds_the_same(monkeypatch, caplog):
    import keras

    model = _nested_model()
    # Sequential.layers leaves out its InputLayer (which has no weights and no mask).
    expected = {id(layer) for layer in model._flatten_layers(include_self=False)
                if not isinstance(layer, keras.layers.InputLayer) or layer in model.layers}
    assert len(expected) == len(model._flatten_layers(include_self=False)) - 1
    assert {id(layer) for layer in keras_internals.public_layers(model)} == expected
    monkeypatch.setattr(type(model), "_flatten_layers", lambda *args, **kwargs: pytest.fail(
        "Keras's private flatten was called on an unchecked keras"))
    monkeypatch.setattr(keras_internals, "_WARNED", set())
    _fake_versions(monkeypatch, keras="3.16.0")
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        layers = keras_internals.all_layers(model)
        keras_internals.all_layers(model)
    assert {id(layer) for layer in layers} == expected
    assert caplog.text.count("keras 3.16.0 is not one lstmkit was checked with") == 1


def test_the_precision_and_the_doctor_read_layers_through_the_helper(monkeypatch):
    from lstmkit import diagnostics, precision

    model = _nested_model()
    seen = []
    real = keras_internals.all_layers
    monkeypatch.setattr(keras_internals, "all_layers", lambda model: seen.append(model) or real(model))
    assert precision.model_precision(model) == "float32"
    assert diagnostics.recurrent_layer_reports(model)
    assert seen == [model, model]


def test_the_retry_queue_is_read_on_a_checked_keras_tuner_only(monkeypatch, caplog):
    import keras_tuner

    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_loss", max_trials=2, seed=0)
    assert keras_internals.trials_to_retry(oracle) == []
    oracle._retry_queue.append("00")
    retries = keras_internals.trials_to_retry(oracle)
    assert retries == ["00"] and retries is not oracle._retry_queue  # a copy: the chief's threads change it
    monkeypatch.setattr(keras_internals, "_WARNED", set())
    _fake_versions(monkeypatch, keras_tuner="1.5.0")
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        assert keras_internals.trials_to_retry(oracle) is None
    assert "keras-tuner 1.5.0 is not one lstmkit was checked with" in caplog.text


def test_the_search_chief_refuses_another_keras_tuner(monkeypatch):
    assert keras_internals.oracle_servicer_class().__name__ == "OracleServicer"
    _fake_versions(monkeypatch, keras_tuner="1.5.0")
    for call in (keras_internals.oracle_servicer_class, lambda: keras_internals.add_oracle_servicer(None, None)):
        with pytest.raises(UserError, match=r"written for keras-tuner>=1\.4\.7,<1\.5, but keras-tuner 1\.5\.0 is "
                                            r"installed; install 'keras-tuner>=1\.4\.7,<1\.5'"):
            call()


def test_no_other_module_reads_the_private_members_the_helpers_wrap():
    files = sorted((ROOT / "lstmkit").rglob("*.py")) + sorted((ROOT / "tasks").rglob("*.py"))
    wrapped = ("_flatten_layers", "_retry_queue")
    offenders = {str(path.relative_to(ROOT)): [node.attr for node in ast.walk(ast.parse(path.read_text()))
                                               if isinstance(node, ast.Attribute) and node.attr in wrapped]
                 for path in files if path.name != "keras_internals.py"}
    assert {path: found for path, found in offenders.items() if found} == {}
