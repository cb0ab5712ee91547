"""``doctor``: which recurrent layers of a model take the fused (cuDNN) kernel on GPU, and
which CPU kernel each runs."""

from __future__ import annotations

import dataclasses

from lstmkit import keras_internals


@dataclasses.dataclass
class RecurrentLayerReport:
    path: str
    kind: str
    fused_on_gpu: bool | None  # None: not an LSTM, not checked
    reasons: list[str]
    notes: list[str]


def _walk(layer, path):
    import keras

    if isinstance(layer, keras.layers.Bidirectional):
        yield from _walk(layer.forward_layer, f"{path}/forward")
        yield from _walk(layer.backward_layer, f"{path}/backward")
    elif isinstance(layer, keras.layers.RNN):  # keras.layers.LSTM and its subclasses too
        yield path, layer
    elif hasattr(layer, "layers"):
        for child in layer.layers:
            yield from _walk(child, f"{path}/{child.name}" if path else child.name)


def recurrent_layer_reports(model) -> list[RecurrentLayerReport]:
    """One report per recurrent layer of ``model`` (inside Bidirectional wrappers too)."""
    import keras

    from lstmkit.layers.regularized_lstm import RegularizedLSTM, keras_lstm_obstacles

    masked = any(isinstance(layer, keras.layers.Embedding) and layer.mask_zero
                 for layer in keras_internals.all_layers(model))
    reports = []
    for path, layer in _walk(model, ""):
        if isinstance(layer, RegularizedLSTM):
            reasons = layer.fused_kernel_obstacles()
        elif isinstance(layer, keras.layers.LSTM):
            reasons = keras_lstm_obstacles(layer)
        else:
            reports.append(RecurrentLayerReport(path, type(layer).__name__, None, [],
                                                ["not an LSTM: lstmkit checks LSTM layers only"]))
            continue
        notes = []
        if isinstance(layer, RegularizedLSTM):
            kernel = {"sequence": "sequence kernel (weight gradients after the loop)",
                      "step": "step loop"}[layer.cpu_kernel_choice()]
            notes.append(f"on CPU with TensorFlow: {kernel} (cpu_kernel={layer.cpu_kernel!r})")
        if masked:
            notes.append("masked input: the fused kernel needs right-padded sequences "
                         "(left padding raises an error on GPU)")
        reports.append(RecurrentLayerReport(path, type(layer).__name__, not reasons, reasons, notes))
    return reports


def format_reports(reports: list[RecurrentLayerReport]) -> list[str]:
    lines = []
    for report in reports:
        verdict = {True: "fused cuDNN kernel on GPU", False: "step loop (no fused kernel)",
                   None: "not checked"}[report.fused_on_gpu]
        lines.append(f"{report.path} ({report.kind}): {verdict}")
        lines.extend(f"    because: {reason}" for reason in report.reasons)
        lines.extend(f"    note: {note}" for note in report.notes)
    return lines
