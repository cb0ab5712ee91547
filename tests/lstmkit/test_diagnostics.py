import keras

from lstmkit.diagnostics import format_reports, recurrent_layer_reports
from lstmkit.layers import RegularizedLSTM


def test_reports_cover_plain_keras_lstms_wrappers_and_masks():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(RegularizedLSTM(3, return_sequences=True, weight_drop=0.5))(x)
    x = keras.layers.LSTM(3, return_sequences=True, recurrent_dropout=0.1, activation="relu")(x)
    x = keras.layers.GRU(3)(x)
    reports = recurrent_layer_reports(keras.Model(tokens, x))
    assert [(r.kind, r.fused_on_gpu) for r in reports] == [
        ("RegularizedLSTM", True), ("RegularizedLSTM", True), ("LSTM", False), ("GRU", None)]
    assert reports[0].path.endswith("/forward") and reports[1].path.endswith("/backward")
    lstm_reasons = " ".join(reports[2].reasons)
    assert "recurrent_dropout=0.1" in lstm_reasons and "activation=relu" in lstm_reasons
    assert all("right-padded" in r.notes[-1] for r in reports[:3])
    assert "step loop (cpu_kernel='auto')" in reports[0].notes[0]
    wide = RegularizedLSTM(512, weight_drop=0.5)
    wide.build((None, None, 4))
    wide_report, = recurrent_layer_reports(keras.Sequential([keras.Input((None, 4)), wide]))
    assert "sequence kernel" in wide_report.notes[0]
    assert "not an LSTM" in reports[3].notes[0]
    lines = format_reports(reports)
    assert lines[0].endswith("fused cuDNN kernel on GPU")
    assert sum(line.startswith("    because:") for line in lines) == 2
