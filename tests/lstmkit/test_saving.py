import re
import subprocess
import sys
from pathlib import Path

from lstmkit.saving import CUSTOM_OBJECT_MODULES

PACKAGE = Path(__file__).resolve().parents[2] / "lstmkit"


def modules_registering_keras_objects() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if re.search(r"register_keras_serializable\(", path.read_text(encoding="utf-8")) and path.name != "saving.py":
            found.add(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    return found


def test_every_module_with_custom_objects_is_imported_before_loading():
    """In a process that has imported nothing else, registering imports every lstmkit
    module that defines a Keras custom object (a new module must join the list)."""
    defining = modules_registering_keras_objects()
    assert "lstmkit.metrics" in defining and "lstmkit.layers.regularized_lstm" in defining
    script = ("import sys; from lstmkit.saving import register_custom_objects; register_custom_objects(); "
              "print('\\n'.join(sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent, timeout=120)
    assert defining <= set(result.stdout.split()), defining - set(result.stdout.split())
    assert len(CUSTOM_OBJECT_MODULES) >= 2


def test_a_model_with_a_custom_metric_loads_in_a_new_process(tmp_path):
    import keras

    from lstmkit.metrics import MaskedAccuracy

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(loss="sparse_categorical_crossentropy", metrics=[MaskedAccuracy(ignore_class=-1)])
    model.save(tmp_path / "model.keras")
    path = tmp_path / "model.keras"
    script = f"from lstmkit.saving import load_model; load_model({str(path)!r})"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
